"""Grad-CAM for the image networks: where the model looked, drawn over what it saw."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.tasks.image.config import ImageConfig
from training.tasks.image.decode import load_image, to_uint8
from training.tasks.image.models import AirbenchNet

def cam_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage of each architecture: its maps still have a spatial layout. airbench's
    last group pools to 3x3, so its middle group (7x7 at 32 px) is the one that can point at something."""
    if isinstance(model, AirbenchNet):
        return model.layers[1]
    if hasattr(model, "conv_head"):   # timm's EfficientNets: the stride-16 stage (8x8 maps at 128 px; the
        return model.blocks[-3]       # stride-32 maps, 4x4, can only point at a quadrant)
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
    """The photo at its own aspect ratio, its shorter side `size` pixels (the longer at most 4x that),
    dimmed; over its centre square, the model's view of it (resized and centre-cropped, as the model got
    it) enlarged, with the heatmap blended in as strongly as each region drove the prediction. What lies outside the square the model never saw."""
    import matplotlib
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    image = load_image(raw)
    w, h = image.size
    scale = min(size / min(w, h), 4 * size / max(w, h))
    width, height = max(1, round(w * scale)), max(1, round(h * scale))
    side = min(width, height)
    photo = TF.pil_to_tensor(image.resize((width, height), Image.Resampling.BICUBIC)).float() * 0.4
    view = to_uint8(image, config.image_size).float()[None]
    view = F.interpolate(view, size=(side, side), mode="bicubic", align_corners=False)[0].clamp(0, 255)
    heat = F.interpolate(cam[None, None].float().cpu(), size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    colours = torch.from_numpy(matplotlib.colormaps["jet"](heat.numpy())[..., :3]).float().permute(2, 0, 1) * 255
    top, left = (height - side) // 2, (width - side) // 2
    # The heatmap is blended in as strongly as the region mattered: where the model did not look, the
    # photo shows as it is, so the object stays visible under the colours.
    alpha = 0.65 * heat.clamp(0, 1)[None]
    photo[:, top:top + side, left:left + side] = alpha * colours + (1 - alpha) * view
    return Image.fromarray(photo.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
