"""The launched app through its HTTP API (gradio_client): /classify_image, bad images, broken checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO

EXAMPLES = REPO / "demo" / "examples" / "image"


def classify(client, path, **kwargs):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/classify_image", **kwargs)


def test_classify_image_with_only_the_image(app_client):
    result = classify(app_client, EXAMPLES / "ship.png")
    confidences = result["confidences"]
    assert 1 <= len(confidences) <= 5
    assert result["label"] == confidences[0]["label"]
    assert sum(c["confidence"] for c in confidences) <= 1.0 + 1e-6
    assert [c["confidence"] for c in confidences] == sorted((c["confidence"] for c in confidences), reverse=True)


def test_shipped_model_gets_most_examples_right(app_client):
    paths = sorted(EXAMPLES.glob("*.png"))
    assert len(paths) == 10
    correct = sum(classify(app_client, p)["label"] == p.stem for p in paths)
    assert correct >= 6, f"only {correct}/10 example images classified correctly"


def test_unknown_model_name_is_a_clear_error(app_client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="nope is not in the list of choices"):
        classify(app_client, EXAMPLES / "cat.png", model_name="nope")


def test_broken_checkpoint_is_reported_and_others_serve(app_client):
    info = app_client.predict(api_name="/image_model_info")
    assert "Validation accuracy" in info
    assert "Unavailable: **zz_broken**" in info and "model.safetensors" in info
    assert classify(app_client, EXAMPLES / "cat.png")["label"]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


def _bomb() -> bytes:
    # A 20000x10000 1-bit PNG: a few kilobytes on disk, 200 megapixels once decoded.
    buf = io.BytesIO()
    Image.new("1", (20000, 10000)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


BAD = {
    "not_an_image.png": (lambda: b"hello, I am text", "not an image"),
    "zero_bytes.png": (lambda: b"", "empty"),
    "truncated.png": (lambda: _png(Image.effect_noise((64, 64), 40).convert("RGB"))[:300], "damaged or truncated"),
    "huge.png": (_bomb, "megapixels"),
}

GOOD = {
    "gray.png": lambda: _png(Image.new("L", (40, 30), 128)),
    "rgba.png": lambda: _png(Image.new("RGBA", (33, 33), (10, 200, 30, 100))),
    "cmyk.jpg": lambda: _jpeg(Image.new("CMYK", (48, 32), (0, 120, 200, 10))),
    "palette.png": lambda: _png(Image.new("RGB", (32, 32), (200, 30, 30)).convert("P")),
    "one_bit.png": lambda: _png(Image.new("1", (32, 32), 1)),
    "tall.png": lambda: _png(Image.new("RGB", (10, 300), (0, 0, 255))),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_image_gets_clear_message_and_app_keeps_serving(app_client, tmp_path, name):
    from gradio_client.exceptions import AppError

    make, expected = BAD[name]
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(AppError, match=f"(?i){expected}"):
        classify(app_client, path)
    assert classify(app_client, EXAMPLES / "frog.png")["label"]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_image_modes_are_classified(app_client, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(GOOD[name]())
    result = classify(app_client, path)
    assert result["label"] in {c["label"] for c in result["confidences"]}


def test_explain_image_returns_a_heatmap(app_client):
    from gradio_client import handle_file

    result = app_client.predict(handle_file(str(EXAMPLES / "horse.png")), api_name="/explain_image")
    with Image.open(result) as im:
        assert im.size == (256, 256)
        assert len(im.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 50   # a picture, not a flat fill
