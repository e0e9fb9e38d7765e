"""From a decoded image to the model's input: the uint8 training cache, normalisation and batches.

Training decodes every image once into a uint8 cache at `cache_size` (default `image_size`; resize the
shorter side, centre crop); each batch is then augmented and brought to the model's resolution on the
training device: validation batches by `fit_square`, training batches at `train_size` by the augmentation.
The demo's `prepare` is the validation batch of one image, so evaluation, calibration, validation and the
demo turn an image into model input by the same function.
"""

from __future__ import annotations

import torch

from training.tasks.image.augment import cutout, random_crop_flip, scale_crop_flip, trivial_augment
from training.tasks.image.config import ImageConfig
from training.tasks.image.decode import fit_square, load_image, to_uint8


def encode(config: ImageConfig, raw) -> torch.Tensor:
    """One image of the training cache, at `cache_size` (default `image_size`)."""
    return to_uint8(load_image(raw), config.cache_size or config.image_size)


def normalize(config: ImageConfig, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(config.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=x.device).view(1, 3, 1, 1)
    x = (x.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


def prepare(config: ImageConfig, raw) -> tuple[torch.Tensor]:
    """One raw demo input (path, bytes or PIL image) -> a normalised batch of one at `image_size`: the
    validation batch of the same image, decoded into a training cache row (at `cache_size`) first. A model
    that learned from 32x32 images enlarged sees a sharp photo as it saw them, not sharper: measured on
    real photos of CIFAR-10's classes, the shipped model scored 85.2% through its cache size and 79.6%
    resized straight to 128 px."""
    image = encode(config, raw).unsqueeze(0)
    return make_batch(config, image, torch.ones(1, dtype=torch.long), train=False)


def make_batch(config: ImageConfig, data: torch.Tensor, lengths: torch.Tensor, *, train: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor]:
    size = (config.train_size or config.image_size) if train else config.image_size
    if train and config.augment == "scale-crop-flip":
        data = scale_crop_flip(data, size, config.crop_scale, generator)
    elif train and config.augment != "none":
        if config.augment == "trivialaugment":
            data = trivial_augment(data)
        data = random_crop_flip(data, generator, config.crop_padding)
    x = normalize(config, fit_square(data, size))
    if train and config.cutout:
        x = cutout(x, config.cutout, generator)
    return (x,)
