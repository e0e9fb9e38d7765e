"""Image decoding, defined once for training and the demo: any file a user or a dataset gives -> RGB, checked.

`load_image` reads the header first and refuses what would be too large to decode safely, or is in a
format not named in IMAGE_FORMATS; `to_uint8` resizes the shorter side and centre-crops to the model's
square input, refusing a shape whose resized copy would be too large. A change to what these compute
changes what every checkpoint sees: bump `ImageTask.feature_version` with it (refusing an input changes
nothing that is computed).
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
# The resize to the model's square scales the shorter side to its size, so the resized copy grows with the
# side ratio, not with the input: a 7 KB PNG of 300000x8 pixels became 4,800,000x128 for a 128-pixel model
# (1.8 GB as uint8; measured, the server's peak memory rose 2.1 GB). A shape whose resized copy would be
# over MAX_RESIZED_PIXELS, or whose sides differ more than MAX_ASPECT times (the centre square would be a
# hundredth of it), is refused before the resize.
MAX_RESIZED_PIXELS = 16_000_000
MAX_ASPECT = 100
# The formats decoded, by Pillow's names, and the file extensions they go by: nothing else is opened,
# whatever a file is called (Pillow knows 40 formats, EPS among them, which runs Ghostscript). A phone's
# JPEG with a depth map (MPO) opens as JPEG.
IMAGE_FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "GIF": (".gif",), "WEBP": (".webp",),
                 "BMP": (".bmp",), "TIFF": (".tif", ".tiff")}
IMAGE_EXTENSIONS = tuple(e for extensions in IMAGE_FORMATS.values() for e in extensions)
# 16-bit, 32-bit and float images are scaled to 8 bits in float64 this many pixels at a time: the whole image
# at once took 24 bytes a pixel (1.3 GB for 50 megapixels, measured), a slice takes 16 MB.
SCALE_PIXELS = 1 << 20


def load_image(source):
    """Decode `source` (a path, bytes, a `datasets` {"bytes", "path"} dict or a PIL image) to an RGB image.

    The format (IMAGE_FORMATS) and the pixel count are checked from the header before decoding. EXIF
    orientation is applied; palette,
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
            image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
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
        raise InputError("This file is not an image that can be read: images are read as PNG, JPEG, GIF, WebP, "
                         "BMP or TIFF.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"The image is too large to decode safely (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"The image file is damaged or truncated and cannot be decoded ({e}).") from None
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image):
    """Any PIL mode to RGB: alpha composited over white, 16-bit and float scaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = Image.fromarray(scaled_to_8_bits(image, 16 if image.mode.startswith("I;16") else 0), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def scaled_to_8_bits(image, bits: int):
    """A 16-bit, 32-bit or float image as uint8 (H, W): scaled by 65535 (16-bit, or any value over 255) or 255,
    clipped to [0, 255] and truncated, in float64, SCALE_PIXELS at a time (the same numbers as at once)."""
    import numpy as np

    a = np.asarray(image)
    hi = 65535.0 if bits == 16 or a.max() > 255 else 255.0
    out = np.empty(a.shape, dtype=np.uint8)
    rows = max(1, SCALE_PIXELS // max(1, a.shape[1]))
    for top in range(0, a.shape[0], rows):
        part = a[top:top + rows].astype(np.float64)
        out[top:top + rows] = np.clip(part / hi * 255.0, 0, 255).astype("uint8")
    return out


def check_fit(height: int, width: int, size: int) -> None:
    """Refuse a shape whose resize to `size` (shorter side) would pass MAX_ASPECT or MAX_RESIZED_PIXELS."""
    short, long = sorted((height, width))
    ratio = long / max(short, 1)
    if ratio > MAX_ASPECT:
        raise InputError(f"The image is {width}x{height} pixels: one side is {ratio:,.0f} times the other, and "
                         f"images up to {MAX_ASPECT}:1 are classified (the model sees a square from the centre). "
                         "Please crop it nearer to a square.")
    if size * int(size * ratio) > MAX_RESIZED_PIXELS:
        raise InputError(f"The image is {width}x{height} pixels: resized for this model ({size} pixels on its "
                         f"shorter side) it would pass {MAX_RESIZED_PIXELS // 1_000_000} megapixels. Please crop "
                         "it nearer to a square.")


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 3, size, size): the shorter side resized to `size` (antialiased bilinear),
    then the centre cropped. The one resize of the image task: the training cache, validation batches on
    the training device and the demo's photos all go through it. A shape `check_fit` refuses raises
    InputError before anything is resized."""
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        check_fit(h, w, size)
        x = TF.resize(x, size, antialias=True)
        x = TF.center_crop(x, [size, size])
    return x.contiguous()


def to_uint8(image, size: int) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor (3, size, size) through `fit_square`."""
    from torchvision.transforms.v2 import functional as TF

    return fit_square(TF.pil_to_tensor(image), size)
