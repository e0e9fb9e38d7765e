"""Train-time image augmentation, batched on the training device: random crop and flip, TrivialAugment, cutout."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

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


def scale_crop_flip(x: torch.Tensor, size: int, min_scale: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random resized crop (Inception-style scale and aspect jitter: a share of the area from
    `min_scale` to 1, aspect ratio 3/4 to 4/3) and horizontal flip, resampled straight to `size` x `size`
    by one batched bilinear `grid_sample` on the tensors' device. Returns float pixels in [0, 255]."""
    b = x.shape[0]
    area = min_scale + (1 - min_scale) * torch.rand(b, generator=generator)
    ratio = torch.exp((2 * torch.rand(b, generator=generator) - 1) * math.log(4 / 3))
    w, h = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)   # shares of the side
    cx = (2 * torch.rand(b, generator=generator) - 1) * (1 - w)   # the crop's centre, in [-1, 1] units
    cy = (2 * torch.rand(b, generator=generator) - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False).to(x.device)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
