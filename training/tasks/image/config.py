"""The image task's settings: one dataclass, whose `option` fields are also the `image` command's flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from training.errors import SettingsError
from training.settings import option
from training.weights import SPECS

ARCHITECTURES = ("resnet20", "airbench", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18",
                 "mobilenet_v3_small", "efficientnet_b0")
PRETRAINED_ARCHITECTURES = tuple(SPECS)   # ImageNet weights: training/weights.py
TORCHVISION_ARCHITECTURES = tuple(a for a in SPECS if SPECS[a].library == "torchvision")
AUGMENTATIONS = ("none", "crop-flip", "trivialaugment", "scale-crop-flip")
# ImageNet statistics: what torchvision's pretrained weights expect, and close enough to CIFAR's
# (0.49, 0.48, 0.45 / 0.25, 0.24, 0.26) that a model trained from scratch loses nothing by sharing them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AIRBENCH94_WIDTHS = (64, 256, 256)
RESNET20_WIDTH = 16


def parse_widths(text: str) -> tuple:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give three positive channel counts, e.g. 128,384,384")
    return widths


@dataclass
class ImageConfig:
    architecture: str = option("resnet20", "resnet20: compact CIFAR-style residual network; airbench: the "
                                           "cifar10-airbench network; efficientnet_lite0/1/2 (timm) and the torchvision "
                                           "backbones can start from ImageNet weights (--pretrained)",
                               flag="--model", choices=ARCHITECTURES)
    image_size: int = option(32, "side of the square model input: an image's shorter side is resized to it and "
                                 "the centre cropped, in validation and in the demo alike; a run continued with "
                                 "--init-from may change it (every network here pools globally)", role="train")
    width: int = option(RESNET20_WIDTH, "resnet20 base width (channels of its first stage: 16, 32, 64 per stage)")
    pretrained: bool = option(False, "start from ImageNet weights: --weights PATH, else an installed package that "
                                     "ships them (efficientnet_lite0/1/2), else the library's download (needs network)")
    weights: str | None = option(None, "--pretrained from this local file (safetensors, or a PyTorch state dict "
                                       "read with weights_only)", type=str, metavar="PATH", compare=False)
    pretrained_from: dict | None = option(None, role="fitted")   # the source, file hash and license used
    cache_size: int = option(0, "side of the images in the decoded training cache; 0 = --image-size. Smaller "
                                "keeps small images (CIFAR's 32x32) at their own size in memory and resizes each "
                                "batch to the model's resolution on the training device")
    train_size: int = option(0, "training resolution; 0 = --image-size. Lower than --image-size trains faster "
                                "and tests at the higher resolution, which suits the larger objects that "
                                "scale-crop-flip shows the model (FixRes)", role="train")
    small_input_stem: bool = False   # resnet18 from scratch at <= 64 px: 3x3 stride-1 stem, no max-pool (derived)
    augment: str = option("crop-flip", "train-time augmentation: crop-flip (random crop with padding + flip), "
                                       "trivialaugment (TrivialAugment, then crop-flip), scale-crop-flip (random "
                                       "resized crop + flip at --train-size)", choices=AUGMENTATIONS, role="train")
    crop_padding: int = option(0, "random-crop translation in pixels; 0 = a eighth of --image-size", role="train")
    tta: int = option(2, "airbench only: average the logits over the mirror (1) and one-pixel shifts (2) in "
                         "eval, in validation and in the demo alike", choices=(0, 1, 2))
    widths: tuple = option(AIRBENCH94_WIDTHS, "airbench only: channels of its three conv groups; airbench95's "
                                              "wider network is 128,384,384 (default: 64,256,256)",
                           type=parse_widths, metavar="W1,W2,W3")
    crop_scale: float = option(0.35, "scale-crop-flip: the smallest share of the image's area a random crop "
                                      "covers", role="train")
    cutout: int = option(0, "train-time cutout (DeVries & Taylor, 2017): a random square of this side inside "
                            "each image is set to the mean colour; airbench96 uses 12 at 32x32 (default: off)",
                         metavar="PIXELS", role="train")
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def __post_init__(self):
        """Settle what follows from the architecture: a setting that does not apply to it is not kept."""
        airbench = self.architecture == "airbench"
        self.tta = self.tta if airbench else 0
        self.widths = tuple(self.widths) if airbench else AIRBENCH94_WIDTHS
        self.width = self.width if self.architecture == "resnet20" else RESNET20_WIDTH
        if self.architecture in SPECS:   # the normalisation its ImageNet weights were trained with
            self.mean, self.std = SPECS[self.architecture].mean, SPECS[self.architecture].std
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.small_input_stem = self.architecture == "resnet18" and not self.pretrained and self.image_size <= 64


def check(config: ImageConfig) -> ImageConfig:
    """Refuse impossible settings, naming their flags."""
    if config.architecture not in ARCHITECTURES:
        raise SettingsError(f"--model {config.architecture!r}: unknown architecture; choose one of {ARCHITECTURES}.")
    if config.pretrained and config.architecture not in PRETRAINED_ARCHITECTURES:
        raise SettingsError(f"--pretrained: {config.architecture} has no pretrained weights; choose one of "
                         f"{', '.join(PRETRAINED_ARCHITECTURES)} or train it from scratch.")
    if config.weights and not config.pretrained:
        raise SettingsError("--weights: give --pretrained too (the file holds the pretrained weights to start from).")
    for flag, value in (("--image-size", config.image_size), ("--cache-size", config.cache_size or 8),
                        ("--train-size", config.train_size or 8)):
        if value < 8:
            raise SettingsError(f"{flag} {value}: must be at least 8.")
    if not 0.05 <= config.crop_scale <= 1:
        raise SettingsError(f"--crop-scale {config.crop_scale}: choose from 0.05 to 1.")
    if not 0 <= config.cutout <= config.image_size:
        raise SettingsError(f"--cutout {config.cutout}: choose from 0 (off) to --image-size ({config.image_size}).")
    return config
