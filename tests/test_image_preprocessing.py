"""Image decoding and preprocessing invariants (training/tasks/image/), on images generated here."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from training.tasks import image as task
from training.tasks.image import ImageConfig, InputError, load_image, make_batch, random_crop_flip, to_uint8
from training.tasks.image import decode

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def encoded(im: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def pixels(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


def noise_rgb(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


# ------------------------------------------------------------------------------------ modes -> RGB

def test_grey_l_becomes_rgb_with_equal_channels():
    grey = np.random.default_rng(1).integers(0, 256, (12, 20), dtype=np.uint8)
    out = load_image(encoded(Image.fromarray(grey, "L")))
    assert out.size == (20, 12)
    p = pixels(out)
    for c in range(3):
        np.testing.assert_array_equal(p[..., c], grey)


def test_la_alpha_composited_over_white():
    lum = Image.new("L", (10, 6), 100)
    alpha = Image.new("L", (10, 6), 128)
    out = pixels(load_image(encoded(Image.merge("LA", [lum, alpha]))))
    expected = 100 * 128 / 255 + 255 * (1 - 128 / 255)     # 177.5
    assert np.abs(out - expected).max() <= 1


def test_rgba_transparent_is_white_and_opaque_keeps_its_colour():
    im = Image.new("RGBA", (8, 4), (10, 20, 30, 0))
    im.paste((10, 20, 30, 255), (0, 0, 4, 4))              # left half opaque, right half transparent
    p = pixels(load_image(encoded(im)))
    assert (p[:, :4] == (10, 20, 30)).all()
    assert (p[:, 4:] == 255).all()


def palette_image(transparent_index: int | None) -> bytes:
    im = Image.new("P", (6, 4), 0)
    im.putpalette([200, 10, 10, 10, 180, 30] + [0, 0, 0] * 254)
    im.paste(1, (3, 0, 6, 4))                              # right half: palette entry 1 (green)
    kwargs = {} if transparent_index is None else {"transparency": transparent_index}
    return encoded(im, "PNG", **kwargs)


def test_palette_without_transparency_gives_the_palette_colours():
    src = palette_image(None)
    assert Image.open(io.BytesIO(src)).mode == "P"
    p = pixels(load_image(src))
    assert (p[:, :3] == (200, 10, 10)).all()
    assert (p[:, 3:] == (10, 180, 30)).all()


def test_palette_with_transparency_gives_white_where_transparent():
    src = palette_image(0)
    opened = Image.open(io.BytesIO(src))
    assert opened.mode == "P" and "transparency" in opened.info
    p = pixels(load_image(src))
    assert (p[:, :3] == 255).all()
    assert (p[:, 3:] == (10, 180, 30)).all()


def test_one_bit_becomes_black_and_white_rgb():
    bits = np.zeros((8, 8), dtype=bool)
    bits[::2, ::3] = True
    src = encoded(Image.fromarray(bits).convert("1"))
    assert Image.open(io.BytesIO(src)).mode == "1"
    p = pixels(load_image(src))
    np.testing.assert_array_equal(p[..., 0], np.where(bits, 255, 0))
    assert (p[..., 0] == p[..., 1]).all() and (p[..., 1] == p[..., 2]).all()


def test_sixteen_bit_png_is_scaled_to_eight_bits_not_clipped():
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(4, 16)
    src = encoded(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(src)).mode.startswith("I")  # a real 16-bit PNG
    p = pixels(load_image(src))
    np.testing.assert_allclose(p[..., 0], ramp / 257.0, atol=1.0)   # 65535 / 255 = 257
    assert p.min() == 0 and p.max() >= 254


def test_cmyk_jpeg_becomes_rgb():
    src = encoded(Image.new("CMYK", (16, 8), (0, 255, 255, 0)), "JPEG", quality=95)   # pure red
    assert Image.open(io.BytesIO(src)).mode == "CMYK"
    p = pixels(load_image(src))
    assert np.abs(p - (255, 0, 0)).max() <= 8


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (10, 6), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    src = buf.getvalue()
    assert Image.open(io.BytesIO(src)).n_frames == 3
    p = pixels(load_image(src))
    assert np.abs(p - (255, 0, 0)).max() <= 4


def test_every_source_kind_is_accepted(tmp_path):
    src = encoded(noise_rgb(5, 7))
    path = tmp_path / "x.png"
    path.write_bytes(src)
    expected = pixels(load_image(src))
    for source in (path, str(path), bytearray(src), {"bytes": src, "path": None},
                   {"bytes": None, "path": str(path)}, Image.open(io.BytesIO(src))):
        np.testing.assert_array_equal(pixels(load_image(source)), expected)


# ---------------------------------------------------------------------------------- EXIF orientation

def exif_rotated_jpeg() -> bytes:
    """Stored 40 wide x 20 high, left half red, right half blue, tagged Orientation=6 (rotate 90 CW)."""
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(im, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("as_pil", [False, True])
def test_exif_orientation_is_applied(as_pil):
    src = exif_rotated_jpeg()
    stored = Image.open(io.BytesIO(src))
    assert stored.size == (40, 20) and stored.getexif().get(0x0112) == 6
    out = load_image(stored if as_pil else src)
    assert out.size == (20, 40)                            # transposed
    p = pixels(out)
    # Rotating 90 degrees clockwise brings the stored left (red) half to the top.
    assert np.abs(p[5, 10] - (255, 0, 0)).max() <= 30
    assert np.abs(p[35, 10] - (0, 0, 255)).max() <= 30


# --------------------------------------------------------------------------------------- bad inputs

def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR claiming width x height (1-bit grey) + IEND: a few dozen bytes, no pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def error_of(source) -> str:
    with pytest.raises(InputError) as info:
        load_image(source)
    message = str(info.value)
    assert message and "Traceback" not in message
    return message.lower()


def test_text_bytes_are_not_an_image():
    assert "not an image" in error_of(b"hello, this is a text file and not a picture\n" * 3)


def test_zero_bytes_say_empty(tmp_path):
    assert "empty" in error_of(b"")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "empty" in error_of(empty)


def test_missing_file_and_nothing_given(tmp_path):
    assert "missing" in error_of(tmp_path / "nope.png")
    assert "no image" in error_of(None)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_says_truncated(fmt):
    whole = encoded(noise_rgb(40, 48), fmt)
    assert load_image(whole).size == (48, 40)
    message = error_of(whole[: len(whole) // 2])
    assert "truncated" in message or "damaged" in message


@pytest.fixture
def no_decoding(monkeypatch):
    """Make any pixel decoding fail loudly: the size checks must come before it."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded before the size check")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_huge_dimensions_refused_from_the_header(no_decoding):
    # 200 megapixels: past PIL's own bomb limit, refused at open.
    assert "too large" in error_of(png_header_only(20000, 10000))
    # 80 megapixels: under PIL's limit, over ours; the message gives the size.
    message = error_of(png_header_only(10000, 8000))
    assert "10000x8000" in message and "megapixels" in message


def test_huge_valid_one_bit_png_is_refused_before_decoding(monkeypatch):
    src = encoded(Image.new("1", (10000, 8000)))            # a real, valid 80-megapixel PNG of ~10 KB
    assert len(src) < 100_000
    calls = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *a, **k: calls.append(self.size) or original(self))
    message = error_of(src)
    assert "10000x8000" in message and not calls


def test_file_over_the_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(encoded(noise_rgb(32, 32)))
    monkeypatch.setattr(decode, "MAX_FILE_BYTES", 1000)
    assert "mb" in error_of(path)
    assert load_image(path.read_bytes()).size == (32, 32)   # the same bytes within the limit are fine


# --------------------------------------------------------------------------------- to_uint8 / encode

def stripes(h: int, w: int, vertical: bool) -> Image.Image:
    """Three equal stripes, red | green | blue (side by side if vertical, else stacked)."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    n = w if vertical else h
    for i, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        sl = slice(i * n // 3, (i + 1) * n // 3)
        if vertical:
            a[:, sl] = colour
        else:
            a[sl, :] = colour
    return Image.fromarray(a, "RGB")


@pytest.mark.parametrize("h,w,vertical", [(32, 96, True), (96, 32, False), (24, 40, True)])
def test_to_uint8_resizes_the_shorter_side_and_crops_the_centre(h, w, vertical):
    x = to_uint8(stripes(h, w, vertical), 16)
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and x.is_contiguous()
    if h * 3 == w or w * 3 == h:     # the crop keeps the green middle third (edges may blend)
        inner = x[:, 2:-2, 2:-2]
        assert (inner[1] >= 250).all() and (inner[0] <= 5).all() and (inner[2] <= 5).all()


def test_to_uint8_keeps_a_square_image_of_the_right_size_unchanged():
    im = noise_rgb(16, 16, seed=3)
    np.testing.assert_array_equal(to_uint8(im, 16).permute(1, 2, 0).numpy(), np.asarray(im))


@pytest.mark.parametrize("size", [8, 16, 32])
def test_encode_and_prepare_shapes_for_non_square_inputs(size):
    config = ImageConfig(image_size=size)
    raw = encoded(noise_rgb(21, 50))
    x = task.encode(config, raw)
    assert x.shape == (3, size, size) and x.dtype == torch.uint8
    (batch,) = task.prepare(config, raw)
    assert batch.shape == (1, 3, size, size) and batch.dtype == torch.float32
    torch.testing.assert_close(batch, task.normalize(config, x.unsqueeze(0)))


# -------------------------------------------------------------------------------------- make_batch

def uint8_batch(b: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def test_make_batch_eval_is_the_documented_normalisation():
    config = ImageConfig(image_size=16)
    x = uint8_batch()
    (out,) = make_batch(config, x, torch.full((6,), 3), train=False)
    assert out.shape == (6, 3, 16, 16) and out.dtype == torch.float32
    mean = np.array(config.mean).reshape(1, 3, 1, 1)
    std = np.array(config.std).reshape(1, 3, 1, 1)
    expected = (x.numpy() / 255.0 - mean) / std
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("augment", ["crop-flip", "trivialaugment", "none"])
def test_make_batch_train_shapes(augment):
    config = ImageConfig(image_size=16, augment=augment)
    x = uint8_batch()
    (out,) = make_batch(config, x, torch.full((6,), 3), train=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    (plain,) = make_batch(config, x, torch.full((6,), 3), train=False)
    if augment == "none":
        torch.testing.assert_close(out, plain)
    else:
        assert not torch.equal(out, plain)


# -------------------------------------------------------------------------------- random_crop_flip

def test_random_crop_flip_invariants():
    x = uint8_batch(b=48, size=16, seed=7)
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    again = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                                   # reproducible with a fixed generator
    assert not torch.equal(out, random_crop_flip(x, torch.Generator().manual_seed(1)))

    pad = 16 // 8
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    seen = set()
    for i in range(len(x)):
        found = None
        for oy in range(2 * pad + 1):
            for ox in range(2 * pad + 1):
                crop = padded[i, :, oy:oy + 16, ox:ox + 16]
                for flip in (False, True):
                    if np.array_equal(out[i].numpy(), crop[:, :, ::-1] if flip else crop):
                        found = (oy, ox, flip)
        assert found is not None, f"sample {i} is not a (flipped) crop of its reflect-padded input"
        seen.add(found)
    # It does augment: several offsets and both flip states over 48 samples.
    assert len({s[:2] for s in seen}) > 3 and {s[2] for s in seen} == {False, True}
