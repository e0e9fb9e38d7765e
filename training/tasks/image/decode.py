"""Image decoding, defined once for training and the demo: any file a user or a dataset gives -> RGB, checked.

`load_image` reads the header first and refuses what would be too large to decode safely; `to_uint8`
resizes the shorter side and centre-crops to the model's square input. A change to what these compute
changes what every checkpoint sees: bump `ImageTask.feature_version` with it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch

from training.tasks.base import InputError

# Decoding limits: a 20000x10000 PNG is a few KB on disk and 600 MB in memory. Checked from the header,
# before any pixel is decoded.
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024


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
            raise InputError("The image file is missing.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"The file is {size / 2**20:.0f} MB; images up to {MAX_FILE_BYTES // 2**20} MB "
                                  "are accepted.")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise InputError("No image was given.")
    if not data:
        raise InputError("The file is empty (0 bytes), not an image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(f"The image is {width}x{height} pixels; at most {MAX_PIXELS // 1_000_000} "
                                      "megapixels are accepted. Please resize it.")
            if width == 0 or height == 0:
                raise InputError("The image has no pixels.")
            image.seek(0)
            image.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError("This file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP, TIFF ...).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"The image is too large to decode safely (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"The image file is damaged or truncated and cannot be decoded ({e}).") from None
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


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 3, size, size): the shorter side resized to `size` (antialiased bilinear),
    then the centre cropped. The one resize of the image task: the training cache, validation batches on
    the training device and the demo's photos all go through it."""
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        x = TF.resize(x, size, antialias=True)
        x = TF.center_crop(x, [size, size])
    return x.contiguous()


def to_uint8(image, size: int) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size) through `fit_square`."""
    from torchvision.transforms.v2 import functional as TF

    return fit_square(TF.pil_to_tensor(image), size)
