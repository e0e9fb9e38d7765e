"""Property tests: random bytes to the image and audio decoders, random strings to the text path. Whatever
comes in, the result is a valid input for the model or the project's own input error, never anything else."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import REPO
from training import checkpoint as ckpt
from training.tasks import image, speech, text

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


def seeds() -> dict[str, bytes]:
    """Small valid files: mutating them reaches the decoders' inner code, where pure noise stops at the magic."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        buf = io.BytesIO()
        pixels.save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


IMAGE_SEEDS = seeds()


def audio_seeds() -> dict[str, bytes]:
    x = (0.3 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    out = {}
    for fmt, subtype in (("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"),
                         ("AIFF", "PCM_16")):
        buf = io.BytesIO()
        sf.write(buf, x, 16_000, format=fmt, subtype=subtype)
        out[f"{fmt}-{subtype}"] = buf.getvalue()
    return out


AUDIO_SEEDS = audio_seeds()


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> bytes:
    """A seed file with a few bytes overwritten, a cut, or random bytes appended."""
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data) + draw(st.binary(max_size=64))


def check_image(data: bytes) -> None:
    try:
        img = image.load_image(data)
    except image.InputError as e:
        assert str(e)
        return
    assert img.mode == "RGB" and img.width * img.height <= image.MAX_PIXELS
    x = image.to_uint8(img, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_to_the_image_decoder(data):
    check_image(data)


@FUZZ
@given(mutated(IMAGE_SEEDS))
def test_mutated_images_to_the_image_decoder(data):
    check_image(data)


def check_audio(data: bytes) -> None:
    try:
        clip = speech.load_audio(data, 16_000, 1.0)
    except speech.InputError as e:
        assert str(e)
        return
    assert clip.waveform.shape == (16_000,) and clip.waveform.dtype == torch.float32
    assert torch.isfinite(clip.waveform).all()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_to_the_audio_decoder(data):
    check_audio(data)


@FUZZ
@given(mutated(AUDIO_SEEDS))
def test_mutated_audio_to_the_audio_decoder(data):
    check_audio(data)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")   # 1e300 -> inf, then repaired
@FUZZ
@given(rate=st.integers(-10, 500_000), samples=st.integers(0, 3000), channels=st.integers(1, 70),
       dtype=st.sampled_from(["uint8", "int16", "int32", "float32", "float64"]), fill=st.sampled_from(
           ["noise", "nan", "inf", "zero", "huge"]))
def test_random_arrays_to_the_audio_decoder(rate, samples, channels, dtype, fill):
    rng = np.random.default_rng(samples)
    a = {"noise": rng.normal(0, 0.3, (samples, channels)), "nan": np.full((samples, channels), np.nan),
         "inf": np.full((samples, channels), np.inf), "zero": np.zeros((samples, channels)),
         "huge": np.full((samples, channels), 1e300)}[fill]
    with np.errstate(all="ignore"):
        a = a.astype(dtype)
    try:
        clip = speech.load_audio((rate, a), 16_000, 1.0)
    except speech.InputError as e:
        assert str(e)
        return
    assert clip.waveform.shape == (16_000,) and torch.isfinite(clip.waveform).all()


@pytest.fixture(scope="module")
def emotion():
    folder = REPO / "checkpoints" / "text" / "emotion"
    if not folder.is_dir():
        pytest.skip("no text checkpoint in checkpoints/text/")
    model, _, config = ckpt.load_model(folder, "cpu")
    return model, config


TEXTS = st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(codec=None), max_size=50),
                  st.text(alphabet=st.sampled_from(" \t\n\x00\u200b\ufeff\u3000!?.😀a"), max_size=40),
                  st.binary(max_size=200).map(lambda b: b.decode("utf-16-le", "surrogatepass")[:100]
                                              if len(b) % 2 == 0 else b.decode("latin-1")))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(TEXTS)
def test_random_strings_to_the_text_path(emotion, s):
    model, config = emotion
    try:
        ids, truncated = text.tokenize(config, s)
        inputs = text.prepare(config, s)
    except text.InputError as e:
        assert str(e)
        return
    assert 1 <= len(ids) <= config.max_tokens and inputs[0].shape == (1, len(ids))
    with torch.inference_mode():
        probs = torch.softmax(model(*inputs), -1)
    assert torch.isfinite(probs).all()
