"""Image classification: the model, the preprocessing and the image decoding, defined once.

Training decodes every image once into a uint8 cache at `image_size` (resize the shorter side, centre
crop); augmentation then runs per batch on the training device. The demo calls `prepare`, which goes
through the same `load_image` and `to_uint8` and the same normalisation.
"""

from __future__ import annotations

import argparse
import io
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from training.tasks import config_from_fields

NAME = "image"
INPUT_COLUMNS = ("img", "image")
INPUT_FLAG = "--image-column"
ARCHITECTURES = ("resnet20", "airbench", "resnet18", "mobilenet_v3_small", "efficientnet_b0")
TORCHVISION_ARCHITECTURES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")
AUGMENTATIONS = ("none", "crop-flip", "trivialaugment")
# ImageNet statistics: what torchvision's pretrained weights expect, and close enough to CIFAR's
# (0.49, 0.48, 0.45 / 0.25, 0.24, 0.26) that a model trained from scratch loses nothing by sharing them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Decoding limits: a 20000x10000 PNG is a few KB on disk and 600 MB in memory. Checked from the header,
# before any pixel is decoded.
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024

# Settings that only change training, not the model: --init-from takes them from this run's arguments.
TRAIN_FIELDS = ("augment", "crop_padding", "cutout")

# Engine defaults for this task: SGD + Nesterov with a one-cycle schedule is the standard CIFAR recipe
# (torchvision references, airbench); label smoothing 0.1 adds about half a point at short schedules.
DEFAULTS = dict(epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, optimizer="sgd", label_smoothing=0.1,
                warmup_fraction=0.15)


class ImageInputError(ValueError):
    """An input that is not a usable image; the message says why in words."""


@dataclass
class ImageConfig:
    architecture: str = "resnet20"
    image_size: int = 32
    width: int = 16                  # resnet20 only: channels of the first stage (16, 32, 64 per stage)
    pretrained: bool = False         # trained from torchvision's ImageNet weights (recorded, not re-downloaded)
    small_input_stem: bool = False   # resnet18 only: 3x3 stride-1 stem, no max-pool, for images <= 64 px
    augment: str = "crop-flip"
    crop_padding: int = 0            # pixels of reflect padding for the random crop; 0 = image_size / 8
    tta: int = 0                     # airbench only: test-time views (0 none, 1 + mirror, 2 + shifted mirrors)
    widths: tuple = (64, 256, 256)   # airbench only: channels of its three conv groups (airbench94's)
    cutout: int = 0                  # train time: side of a random square set to the mean colour; 0 = off
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("image")
    g.add_argument("--model", default="resnet20", choices=ARCHITECTURES,
                   help="resnet20: compact CIFAR-style residual network trained from scratch; the others are "
                        "torchvision backbones (default: %(default)s)")
    g.add_argument("--pretrained", action="store_true",
                   help="start from torchvision's ImageNet weights (downloaded once; needs network)")
    g.add_argument("--image-size", type=int, default=32, help="side of the square model input (default: %(default)s)")
    g.add_argument("--width", type=int, default=16, help="resnet20 base width (default: %(default)s)")
    g.add_argument("--augment", default="crop-flip", choices=AUGMENTATIONS,
                   help="train-time augmentation: random crop with padding + flip, optionally TrivialAugment "
                        "(default: %(default)s)")
    g.add_argument("--crop-padding", type=int, default=0,
                   help="random-crop translation in pixels; 0 = a eighth of --image-size (default: %(default)s)")
    g.add_argument("--cutout", type=int, default=0, metavar="PIXELS",
                   help="train-time cutout (DeVries & Taylor, 2017): a random square of this side inside each "
                        "image is set to the mean colour; airbench96 uses 12 at 32x32 (default: off)")
    g.add_argument("--tta", type=int, default=2, choices=(0, 1, 2),
                   help="airbench only: average the logits over the mirror (1) and one-pixel shifts (2) in "
                        "eval, in validation and in the demo alike (default: %(default)s)")
    g.add_argument("--widths", type=parse_widths, default=(64, 256, 256), metavar="W1,W2,W3",
                   help="airbench only: channels of its three conv groups; airbench95's wider network is "
                        "128,384,384 (default: 64,256,256)")
    g.add_argument("--image-column", default=None, help="input column (default: auto, img or image)")


def parse_widths(text: str) -> tuple:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give three positive channel counts, e.g. 128,384,384")
    return widths


def config_from_args(args: argparse.Namespace) -> ImageConfig:
    if args.pretrained and args.model not in TORCHVISION_ARCHITECTURES:
        raise ValueError(f"--pretrained: {args.model} has no pretrained weights; choose one of "
                         f"{', '.join(TORCHVISION_ARCHITECTURES)} or train it from scratch.")
    if args.image_size < 8:
        raise ValueError(f"--image-size {args.image_size}: must be at least 8.")
    if not 0 <= args.cutout <= args.image_size:
        raise ValueError(f"--cutout {args.cutout}: choose from 0 (off) to --image-size ({args.image_size}).")
    return ImageConfig(architecture=args.model, image_size=args.image_size, width=args.width,
                       pretrained=args.pretrained, augment=args.augment, crop_padding=args.crop_padding,
                       cutout=args.cutout,
                       tta=args.tta if args.model == "airbench" else 0,
                       widths=tuple(args.widths) if args.model == "airbench" else ImageConfig.widths,
                       small_input_stem=args.model == "resnet18" and not args.pretrained and args.image_size <= 64)


def config_from_dict(d: dict) -> ImageConfig:
    config = config_from_fields(ImageConfig, d)
    config.mean, config.std, config.widths = tuple(config.mean), tuple(config.std), tuple(config.widths)
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}")
    return config


def config_to_dict(config: ImageConfig) -> dict:
    return asdict(config)


def preprocessing(config: ImageConfig) -> dict:
    return {"image_size": config.image_size, "resize": "shorter side, then centre crop", "mean": list(config.mean),
            "std": list(config.std), "color_mode": "RGB", "train_augment": config.augment}


def fit(config: ImageConfig, train_inputs) -> ImageConfig:
    return config   # nothing to learn from the data: normalisation is fixed (see IMAGENET_MEAN)


def init_from_data(model: nn.Module, config: ImageConfig, train_x: torch.Tensor) -> None:
    """Data-dependent initialisation before the first step: airbench's whitening filters, from the patch
    statistics of 5000 training images (more changes nothing measurable)."""
    if isinstance(model, AirbenchNet):
        model.init_whitening(normalize(config, train_x[:5000].cpu()))


def save_extra(config: ImageConfig, folder) -> None:
    pass


def load_extra(config: ImageConfig, folder) -> None:
    pass


def adapt_dataset(raw, args):
    return raw


# ---------------------------------------------------------------------------------------------- decoding

def load_image(source):
    """Decode `source` (a path, bytes, a `datasets` {"bytes", "path"} dict or a PIL image) to an RGB image.

    The pixel count is checked from the header before decoding. EXIF orientation is applied; palette,
    grey, 1-bit, 16-bit, CMYK and alpha images become plain RGB (transparency over white); an animated
    image gives its first frame.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError("The image file is missing.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageInputError(f"The file is {size / 2**20:.0f} MB; images up to {MAX_FILE_BYTES // 2**20} MB "
                                  "are accepted.")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise ImageInputError("No image was given.")
    if not data:
        raise ImageInputError("The file is empty (0 bytes), not an image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageInputError(f"The image is {width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} "
                                      "megapixels are accepted. Please resize it.")
            if width == 0 or height == 0:
                raise ImageInputError("The image has no pixels.")
            image.seek(0)
            image.load()
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise ImageInputError("This file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP, TIFF ...).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"The image is too large to decode safely (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageInputError(f"The image file is damaged or truncated and cannot be decoded ({e}).") from None
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image):
    """Any PIL mode to RGB: alpha composited over white, 16-bit and float scaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np
        a = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") or a.max() > 255 else 255.0
        image = Image.fromarray(np.clip(a / hi * 255.0, 0, 255).astype("uint8"), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_uint8(image, size: int) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size): shorter side resized to `size`, centre crop."""
    from torchvision.transforms.v2 import functional as TF

    x = TF.pil_to_tensor(image)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        x = TF.resize(x, size, antialias=True)
        x = TF.center_crop(x, [size, size])
    return x.contiguous()


def encode(config: ImageConfig, raw) -> torch.Tensor:
    return to_uint8(load_image(raw), config.image_size)


def normalize(config: ImageConfig, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(config.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=x.device).view(1, 3, 1, 1)
    x = (x.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


def prepare(config: ImageConfig, raw) -> tuple[torch.Tensor]:
    """One raw demo input (path, bytes or PIL image) -> a normalised batch of one."""
    return (normalize(config, encode(config, raw).unsqueeze(0)),)


# ------------------------------------------------------------------------------------------ augmentation

def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 0) -> torch.Tensor:
    """Per-sample random crop from a reflect-padded image (`pad` pixels, 0 = size / 8) and horizontal
    flip, batched."""
    b, _, h, w = x.shape
    pad = pad or max(1, h // 8)
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]       # b, h, 1
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]       # b, 1, w
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # b, h, w, c
    out = out.permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.round().to(torch.uint8)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample cutout on a normalised batch: a `size` x `size` square, wholly inside the image at a
    random place, set to 0 (the mean colour)."""
    b, _, h, w = x.shape
    top = torch.randint(0, h - size + 1, (b,), generator=generator).to(x.device)
    left = torch.randint(0, w - size + 1, (b,), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + size)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + size)[:, None, None]))
    return x.masked_fill(inside[:, None], 0.0)


def trivial_augment(x: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms import v2

    op = v2.TrivialAugmentWide()
    return torch.stack([op(img) for img in x])


def make_batch(config: ImageConfig, data: torch.Tensor, lengths: torch.Tensor, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor]:
    if train and config.augment != "none":
        if config.augment == "trivialaugment":
            data = trivial_augment(data)
        data = random_crop_flip(data, generator, config.crop_padding)
    x = normalize(config, data)
    if train and config.cutout:
        x = cutout(x, config.cutout, generator)
    return (x,)


# ------------------------------------------------------------------------------------------------ models

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
    """The network of `config` with `num_labels` outputs; `pretrained` loads torchvision's ImageNet weights."""
    if config.architecture == "resnet20":
        return CifarResNet(num_labels, config.width)
    if config.architecture == "airbench":
        return AirbenchNet(num_labels, widths=config.widths, tta=config.tta)
    import torchvision

    model = torchvision.models.get_model(config.architecture, weights=None, num_classes=num_labels)
    if config.small_input_stem:
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    if pretrained:
        load_pretrained(model, config.architecture)
    return model


def load_pretrained(model: nn.Module, architecture: str) -> None:
    """Copy ImageNet weights into `model`, all but the classifier head, which keeps its fresh init."""
    import torchvision

    weights = torchvision.models.get_model_weights(architecture).DEFAULT
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, socket errors, a bad cache file: never fall back to random weights
        raise RuntimeError(
            f"--pretrained: could not get torchvision's ImageNet weights for {architecture} from {weights.url} "
            f"({type(e).__name__}: {e}). You may be offline. Train from scratch without --pretrained, or put the "
            f"file in {torch.hub.get_dir()}/checkpoints/ and run again.") from None
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing, _ = model.load_state_dict(state, strict=False)
    body_missing = [k for k in missing if not k.startswith(("fc.", "classifier."))]
    if body_missing:
        raise RuntimeError(f"--pretrained: the ImageNet weights for {architecture} do not fit: {body_missing[:3]}")


# ------------------------------------------------------------------------------------------- explanation

def cam_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage of each architecture: its maps still have a spatial layout. airbench's
    last group pools to 3x3, so its middle group (7x7 at 32 px) is the one that can point at something."""
    if isinstance(model, AirbenchNet):
        return model.layers[1]
    for name in ("layers", "layer4", "features"):   # resnet20, resnet18, mobilenet/efficientnet
        if hasattr(model, name):
            return getattr(model, name)
    raise ValueError(f"no convolutional stage found in {type(model).__name__}")


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) for a batch of one: the last stage's maps weighted by the mean
    gradient of the target logit, rectified, upsampled to the input size and scaled to [0, 1].

    Returns an (H, W) float tensor; `target` defaults to the predicted label. A model that averages
    test-time views explains its prediction on the plain view (one set of maps).
    """
    single_view = getattr(model, "single_view", None)
    if target is None and single_view is not None:      # the averaged prediction, not the plain view's
        with torch.no_grad():
            target = int(model(x)[0].argmax())
    store = {}
    hook = cam_layer(model).register_forward_hook(lambda _m, _i, out: store.__setitem__("maps", out))
    try:
        with torch.enable_grad():
            logits = (single_view or model)(x.detach())
            target = int(logits[0].argmax()) if target is None else target
            maps = store["maps"]
            grads, = torch.autograd.grad(logits[0, target], maps)
    finally:
        hook.remove()
    cam = F.relu((grads.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0].detach()
    cam = cam - cam.min()
    return cam / cam.max() if cam.max() > 0 else cam


def cam_overlay(config: ImageConfig, raw, cam: torch.Tensor, *, size: int = 256):
    """The model's view of `raw` (resized, centre-cropped), enlarged to `size`, with the heatmap over it."""
    import matplotlib
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    view = Image.fromarray(to_uint8(load_image(raw), config.image_size).permute(1, 2, 0).numpy())
    view = view.resize((size, size), Image.Resampling.BICUBIC)
    heat = F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    colours = torch.from_numpy(matplotlib.colormaps["jet"](heat.cpu().numpy())[..., :3]).float() * 255
    blend = 0.55 * colours + 0.45 * TF.pil_to_tensor(view).permute(1, 2, 0).float()
    return Image.fromarray(blend.clamp(0, 255).to(torch.uint8).numpy())
