"""The image networks: ResNet-20 (CIFAR), airbench's network, and torchvision backbones."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.tasks.image.config import ImageConfig
from training.weights import build_architecture, load_pretrained


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-20 of He et al. (2016), section 4.2: 3 stages of 3 basic blocks, widths w, 2w, 4w.

    0.27 M parameters at width 16; 91-92% on CIFAR-10 with a long schedule.
    """

    def __init__(self, num_labels: int, width: int = 16, blocks_per_stage: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_labels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class ShiftOnlyNorm(nn.BatchNorm2d):
    """BatchNorm with a fixed scale of 1 (only the shift is learned) and fast-moving running statistics:
    airbench's choice (its ablations: a learned scale adds nothing at this depth; momentum 0.4 makes the
    running statistics track the weights, which move quickly under its high learning rate)."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad = False


def identity_conv(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution whose first `cin` filters start as the identity (airbench: the network starts close
    to a shallow one, which trains faster than a random deep one)."""
    conv = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


class ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(identity_conv(cin, cout), nn.MaxPool2d(2), ShiftOnlyNorm(cout), nn.GELU(),
                         identity_conv(cout, cout), ShiftOnlyNorm(cout), nn.GELU())


class AirbenchNet(nn.Module):
    """The network of Keller Jordan's cifar10-airbench (airbench94, MIT licence): a frozen 2x2 whitening
    convolution set from the training data's patch covariance, three conv-pool groups (widths 64, 256, 256
    by default), and a max-pooled linear head scaled by 1/9. 2 M parameters; airbench reports 94% on
    CIFAR-10 in 10 epochs, and 95% in 15 with widths 128, 384, 384 (airbench95, 4.6 M parameters).

    In eval mode the logits average the image, its mirror and two one-pixel shifts of both (`tta`: 0 off,
    1 mirror, 2 mirror + shifts), so validation, `evaluate` and the demo all score the same function.
    """

    def __init__(self, num_labels: int, widths=(64, 256, 256), tta: int = 2):
        super().__init__()
        self.tta = tta
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)   # 24 = 2 signs x 3 channels x 2 x 2 patches
        self.whiten.weight.requires_grad = False
        self.layers = nn.Sequential(ConvGroup(24, widths[0]), ConvGroup(widths[0], widths[1]),
                                    ConvGroup(widths[1], widths[2]))
        self.fc = nn.Linear(widths[2], num_labels, bias=False)

    def single_view(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.gelu(self.whiten(x)))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1)) / 9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.tta == 0:
            return self.single_view(x)

        def mirrored(v: torch.Tensor) -> torch.Tensor:
            return 0.5 * (self.single_view(v) + self.single_view(v.flip(-1)))

        if self.tta == 1:
            return mirrored(x)
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return 0.5 * mirrored(x) + 0.25 * (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:]))

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Whitening filters from the 2x2 patches of `images` (normalised, N x 3 x H x W): eigenvectors of
        the patch covariance scaled by 1/sqrt(eigenvalue), with both signs so GELU keeps the information."""
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2)
        flat = patches.reshape(len(patches), -1)
        values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat))
        vectors = vectors.T.reshape(-1, 3, 2, 2).flip(0) / torch.sqrt(values.flip(0) + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat((vectors, -vectors)).to(self.whiten.weight))


def build_model(config: ImageConfig, num_labels: int, *, pretrained: bool = False) -> nn.Module:
    """The network of `config` with `num_labels` outputs. With `pretrained` (a fresh run, not a resume or a
    checkpoint) a config that asks for it starts from ImageNet weights (training/weights.py), and
    `config.pretrained_from` records where they came from."""
    if config.architecture == "resnet20":
        return CifarResNet(num_labels, config.width)
    if config.architecture == "airbench":
        return AirbenchNet(num_labels, widths=config.widths, tta=config.tta)
    model = build_architecture(config.architecture, num_labels)   # timm or torchvision, never hand-copied
    if config.small_input_stem:
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    if pretrained and config.pretrained:
        config.pretrained_from = load_pretrained(model, config.architecture, config.weights)
        # The new head starts at zero (as in BiT, Kolesnikov et al. 2020): every label equally likely, and
        # no large random logits for the first steps to push back through the pretrained body (measured:
        # timm's default head init starts EfficientNet-Lite0's loss at 6 for 10 labels, not ln 10 = 2.3).
        for p in classifier_head(model).parameters():
            nn.init.zeros_(p)
    return model


def classifier_head(model: nn.Module) -> nn.Module:
    """The layer that maps features to labels, which a pretrained network gets new (and which
    --freeze-backbone leaves trainable alone)."""
    if hasattr(model, "get_classifier"):    # timm
        return model.get_classifier()
    for name in ("fc", "classifier"):        # ResNet-20, airbench, torchvision's ResNets / MobileNets
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"no classifier head found in {type(model).__name__}")
