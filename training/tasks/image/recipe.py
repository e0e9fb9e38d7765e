"""The image task's default recipe (Task.recipe): a pretrained EfficientNet-Lite fine-tuned at a resolution and
for a schedule chosen from the data, which `python -m training image --dataset X` and the Teach tab share.

- The resolution comes from the images (the median shorter side of a sample of them): small images such as
  CIFAR's 32x32 are cached at their own size and enlarged on the training device, as the shipped CIFAR-10
  model was trained; photos are seen at PHOTO_SIZE.
- A handful of images per label trains the head alone on the frozen ImageNet body (a linear probe); more
  fine-tune every weight, the pretrained body at a quarter of the head's learning rate.
- Epochs scale with the number of images.
"""

from __future__ import annotations

import io
import statistics

import numpy as np
import torch

from training.tasks.base import Recipe
from training.tasks.image.config import PRETRAINED_ARCHITECTURES

# On hymenoptera's 153 validation photos at 160 px, 10 epochs: Lite0 90.8% (245 CPU s, a busy machine), Lite1
# 91.5% (614), Lite2 91.5% (324, a quiet one): one photo more for more CPU per image (bench/RESULTS.md).
BACKBONE = "efficientnet_lite0"
PHOTO_SIZE = 160          # photos: the shorter side resized to this, then the centre cropped
SMALL_SIDE = 64           # images whose shorter side is at most this are small (CIFAR: 32)
SMALL_MODEL_SIZE = 128    # ... and are enlarged to this for the network (112 while training: FixRes)
FEW_PER_LABEL = 20        # fewer training images than this for some label: a linear probe
SAMPLED = 64              # images whose headers are read to find the resolution


def image_sides(ds, column: str, count: int = SAMPLED, seed: int = 0) -> list[int]:
    """The shorter side of up to `count` images of `ds[column]`, read from their headers alone."""
    from PIL import Image

    rows = np.random.default_rng(seed).permutation(len(ds))[:count].tolist()
    sides = []
    for value in ds.select(rows)[column]:
        source = value.get("bytes") or value.get("path") if isinstance(value, dict) else value
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
                sides.append(min(image.size))
        except (OSError, ValueError, TypeError):
            continue   # an unreadable image gets its message when it is decoded
    return sides


def epochs_for(rows: int, few: bool) -> int:
    """More passes over fewer images, within the time a CPU user waits for: 20 for a linear probe (each
    epoch is forward passes), else about 3,000 images' worth, from 5 to 15 epochs."""
    if few:
        return 20
    return int(min(15, max(5, round(3000 / max(1, rows)))))


def recipe(splits, settings) -> Recipe | None:
    """The recipe for these splits; None when the user named an architecture trained from scratch."""
    given, config = settings.given or frozenset(), settings.task
    if "architecture" in given and config.architecture not in PRETRAINED_ARCHITECTURES:
        return None
    architecture = config.architecture if "architecture" in given else BACKBONE
    sides = image_sides(splits.train, splits.input_column, seed=settings.train.seed)
    side = int(statistics.median(sides)) if sides else PHOTO_SIZE
    counts = torch.bincount(splits.train_labels, minlength=len(splits.labels))
    rows, few = len(splits.train), int(counts.min()) < FEW_PER_LABEL
    task = {"architecture": architecture, "pretrained": True, "augment": "scale-crop-flip"}
    if side <= SMALL_SIDE:
        task.update(cache_size=side, image_size=SMALL_MODEL_SIZE, train_size=SMALL_MODEL_SIZE * 7 // 8, crop_scale=0.35)
        seen = f"{side} px images, cached at their size and enlarged to {SMALL_MODEL_SIZE} px"
    else:
        task.update(image_size=PHOTO_SIZE, cache_size=0, train_size=0, crop_scale=0.5 if few else 0.35)
        seen = f"photos (median shorter side {side} px) seen at {PHOTO_SIZE} px"
    epochs = epochs_for(rows, few)
    if few:
        train = dict(freeze_backbone=True, optimizer="adamw", lr=0.01, weight_decay=0.01, label_smoothing=0.1,
                     warmup_fraction=0.1, batch_size=32, epochs=epochs, patience=6)
        how = "the head alone on the frozen ImageNet body (a linear probe)"
    else:
        train = dict(optimizer="adamw", lr=2e-3, backbone_lr_scale=0.25, weight_decay=0.05, label_smoothing=0.1,
                     warmup_fraction=0.1, batch_size=64 if rows >= 10_000 else 32, epochs=epochs)
        how = "every weight, the body at a quarter of the head's learning rate"
    return Recipe(name=f"{architecture} from ImageNet weights, {epochs} epochs training {how}",
                  reason=f"{rows} training images, {len(splits.labels)} labels, {int(counts.min())} to "
                         f"{int(counts.max())} per label; {seen}", task=task, train=train)
