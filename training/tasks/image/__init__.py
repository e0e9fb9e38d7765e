"""Image classification, defined once for training and the demo.

    config.py       ImageConfig: the settings, which are also the `image` command's flags
    decode.py       any image file -> checked RGB (size limits, EXIF, palettes, alpha) -> uint8 square
    preprocess.py   the training cache, normalisation, batches (augmented on the training device)
    augment.py      random crop + flip, TrivialAugment, cutout
    models.py       ResNet-20, airbench's network, timm and torchvision backbones (with ImageNet weights)
    recipe.py       the default recipe: a pretrained backbone, resolution and schedule chosen from the data
    explain.py      Grad-CAM over what the model saw
"""

from __future__ import annotations

import torch
from torch import nn

from training.tasks.base import InputError, Task, TeachRecipe
from training.tasks.image.augment import cutout, random_crop_flip, scale_crop_flip, trivial_augment
from training.tasks.image.config import (ARCHITECTURES, IMAGENET_MEAN, IMAGENET_STD, PRETRAINED_ARCHITECTURES,
                                         TORCHVISION_ARCHITECTURES, ImageConfig, check, parse_widths)
from training.tasks.image.decode import MAX_FILE_BYTES, MAX_PIXELS, fit_square, load_image, to_rgb, to_uint8
from training.tasks.image.explain import cam_layer, cam_overlay, grad_cam
from training.tasks.image.models import AirbenchNet, CifarResNet, build_model, classifier_head
from training.tasks.image.preprocess import encode, make_batch, normalize, prepare
from training.tasks.image.recipe import recipe as image_recipe

__all__ = ["ARCHITECTURES", "IMAGENET_MEAN", "IMAGENET_STD", "MAX_FILE_BYTES", "MAX_PIXELS",
           "PRETRAINED_ARCHITECTURES", "TASK", "TORCHVISION_ARCHITECTURES", "AirbenchNet", "CifarResNet",
           "ImageConfig", "ImageTask", "InputError", "build_model", "cam_layer", "cam_overlay", "check",
           "classifier_head", "cutout", "encode", "fit_square", "grad_cam", "load_image", "make_batch", "normalize",
           "parse_widths", "prepare", "random_crop_flip", "scale_crop_flip", "to_rgb", "to_uint8", "trivial_augment"]

VIEWS = {1: "the image and its mirror image", 2: "the image, its mirror image and one-pixel shifts of both"}


class ImageTask(Task):
    name = "image"
    Config = ImageConfig
    summary = "fine-tune an image classifier"
    input_columns = ("img", "image")
    input_flag = "--image-column"
    # The defaults of a network trained from scratch (--from-scratch, or --model resnet20/airbench; the
    # default recipe sets its own): SGD + Nesterov with a one-cycle schedule is the standard CIFAR recipe
    # (torchvision references, airbench); label smoothing 0.1 adds about half a point at short schedules.
    train_defaults = dict(epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, optimizer="sgd",
                          label_smoothing=0.1, warmup_fraction=0.15)
    pipeline_tag = "image-classification"
    default_model = "cifar10"
    teach = TeachRecipe(title="Image", capture="webcam",
                        extensions=(".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"), min_per_class=5)
    explanation = "Grad-CAM heatmap over the image the model saw"

    check = staticmethod(check)

    def unused_fields(self, config: ImageConfig) -> tuple[str, ...]:
        """Each architecture's own sizes: ResNet-20's width, airbench's widths and test-time views."""
        return (("width",) if config.architecture != "resnet20" else ()) + (
            ("widths", "tta") if config.architecture != "airbench" else ())

    def recipe(self, splits, settings):
        """EfficientNet-Lite fine-tuned from ImageNet weights, at a resolution and for a schedule chosen from
        the images (training/tasks/image/recipe.py)."""
        return image_recipe(splits, settings)

    def preprocessing(self, config: ImageConfig) -> dict:
        out = {"image_size": config.image_size, "resize": "shorter side, then centre crop",
               "mean": list(config.mean), "std": list(config.std), "color_mode": "RGB",
               "train_augment": config.augment}
        if config.cache_size and config.cache_size != config.image_size:
            out["cache_size"] = config.cache_size
        if config.train_size and config.train_size != config.image_size:
            out["train_size"] = config.train_size
        return out

    encode = staticmethod(encode)
    make_batch = staticmethod(make_batch)
    build_model = staticmethod(build_model)

    def init_from_data(self, model: nn.Module, config: ImageConfig, train_x: torch.Tensor) -> None:
        """airbench's whitening filters, from the patch statistics of 5000 training images (more changes
        nothing measurable)."""
        if isinstance(model, AirbenchNet):
            model.init_whitening(normalize(config, train_x[:5000].cpu()))

    prepare = staticmethod(prepare)

    def channels_last(self, config: ImageConfig, device, bf16: bool) -> bool:
        """What cuDNN's and oneDNN's fast bf16 convolutions want; and EfficientNet-Lite0's depthwise
        convolutions in fp32 on the CPU too (measured, 2 threads, batch 64: 176 against 110 images/s
        training at 96 px, 334 against 224 in eval at 128 px)."""
        return device.type == "cuda" or bf16 or config.architecture.startswith("efficientnet_lite")

    def head(self, model: nn.Module) -> nn.Module:
        return classifier_head(model)

    def pretrained_source(self, config: ImageConfig) -> dict | None:
        return config.pretrained_from

    def explain(self, model: nn.Module, config: ImageConfig, raw):
        """Grad-CAM for the top label, drawn over the model's view of `raw` (a PIL image)."""
        image = load_image(raw)   # decoded once, for the model and for the picture
        (x,) = prepare(config, image)
        x = x.to(next(model.parameters()).device)
        return cam_overlay(config, image, grad_cam(model, x))

    def sample_input(self, config: ImageConfig):
        """A 4:3 noise photo, larger than the model's input, so warm-up runs the resize path too."""
        from PIL import Image
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 256, (480, 640, 3), dtype=torch.uint8, generator=generator)
        return Image.fromarray(pixels.numpy())

    def limitations(self, config: dict) -> list[str]:
        pre = config.get("preprocessing", {})
        size, learned = pre.get("image_size"), pre.get("cache_size") or pre.get("image_size")
        out = [f"It sees {size}x{size} pixels: a photo is resized (shorter side) and centre-cropped to that, "
               "so small or off-centre objects are lost."]
        if learned and size and learned < size:
            out.append(f"It learned from {learned}x{learned} images enlarged to {size}x{size}, so fine detail "
                       "in a photo is new to it.")
        tta = config.get("model", {}).get("tta")
        if tta in VIEWS:
            out.append(f"Its prediction is the average over {VIEWS[tta]} (test-time views), as in validation; "
                       "a single view is slightly less accurate.")
        return out

    # ------------------------------------------------------------------------------------ portability

    def example_inputs(self, config: ImageConfig) -> tuple[torch.Tensor]:
        return (torch.zeros(1, 3, config.image_size, config.image_size),)

    def onnx_input_names(self, config: ImageConfig) -> tuple[str]:
        return ("pixel_values",)

    def onnx_usage(self, config: ImageConfig) -> list[str]:
        size, mean, std = config.image_size, list(config.mean), list(config.std)
        return ["from PIL import Image",
                'image = Image.open("photo.jpg").convert("RGB")',
                f"w, h = image.size   # the shorter side to {size} px (as torchvision's resize), then the centre square",
                f"image = image.resize(({size}, int({size} * h / w)) if w <= h else (int({size} * w / h), {size}), "
                "Image.BILINEAR)",
                f"left, top = round((image.width - {size}) / 2), round((image.height - {size}) / 2)",
                f"x = np.asarray(image.crop((left, top, left + {size}, top + {size})), dtype=np.float32) / 255",
                f"x = (x - np.array({mean}, dtype=np.float32)) / np.array({std}, dtype=np.float32)",
                'inputs = {"pixel_values": x.transpose(2, 0, 1)[None]}']

    def timm_config(self, config: ImageConfig, model: nn.Module, labels: list[str]) -> dict | None:
        """timm's keys for the networks timm builds (training/weights.py SPECS: EfficientNet-Lite0 is timm's
        tf_efficientnet_lite0, whose TF "same" padding and BatchNorm eps 1e-3 timm's efficientnet_lite0
        lacks), written by timm's own `save_config_for_hf`; the resize is ours: the shorter side,
        antialiased bilinear, then the centre square (crop_pct 1)."""
        import inspect
        import json
        import tempfile
        from pathlib import Path

        from timm.models._hub import save_config_for_hf

        from training.weights import SPECS

        spec = SPECS.get(config.architecture)
        if spec is None or spec.library != "timm" or not hasattr(model, "pretrained_cfg"):
            return None
        data = {"input_size": (3, config.image_size, config.image_size), "interpolation": "bilinear",
                "crop_pct": 1.0, "crop_mode": "center", "mean": tuple(config.mean), "std": tuple(config.std)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.json"
            if "data_config" in inspect.signature(save_config_for_hf).parameters:
                save_config_for_hf(model, str(path), model_config={"label_names": list(labels)}, data_config=data)
            else:   # an older timm (1.0.29) writes the model's own pretrained_cfg, to a Path: ours, for the call
                kept = model.pretrained_cfg
                model.pretrained_cfg = {**kept, **data}
                try:
                    save_config_for_hf(model, path, model_config={"label_names": list(labels)})
                finally:
                    model.pretrained_cfg = kept
                keys = json.loads(path.read_text(encoding="utf-8"))
                written = keys["pretrained_cfg"]   # what the current timm's data_config changes beside it
                for key in ("test_input_size", "test_pool_size", "test_crop_pct", "label_offset"):
                    written.pop(key, None)
                if tuple(written["input_size"][1:]) != tuple(kept["input_size"][1:]):
                    written["pool_size"] = None
                return keys
            return json.loads(path.read_text(encoding="utf-8"))


TASK = ImageTask()
