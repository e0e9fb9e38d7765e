"""From a decoded image to the model's input: the uint8 training cache, normalisation and batches.

Training decodes every image once into a uint8 cache at `image_size` (resize the shorter side, centre
crop); augmentation then runs per batch on the training device. The demo's `prepare` goes through the
same `load_image`, `to_uint8` and normalisation.
"""

from __future__ import annotations

import torch

from training.tasks.image.augment import cutout, random_crop_flip, trivial_augment
from training.tasks.image.config import ImageConfig
from training.tasks.image.decode import load_image, to_uint8


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
