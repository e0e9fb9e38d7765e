"""The "unsure" threshold: chosen on validation predictions, stored in config.json, shown by the demo."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import REPO, make_image_parquet
from training.metrics import unsure_threshold

pytestmark = pytest.mark.usefixtures("torch_one_thread")
FAST = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--quiet", "--width", "8", "--epochs", "1"]


def test_threshold_sits_above_the_coin_toss_region():
    # 40 low-confidence predictions right 25% of the time, 60 confident ones right 90% of the time.
    confidence = torch.cat([torch.linspace(0.2, 0.4, 40), torch.linspace(0.6, 0.99, 60)])
    correct = torch.cat([torch.arange(40) % 4 == 0, torch.arange(60) % 10 != 0])
    stats = unsure_threshold(confidence, correct)
    assert 0.4 < stats["threshold"] < 0.7          # at the edge of the coin-toss region, not deep past it
    assert stats["accuracy_below"] <= 0.5 < 0.85 < stats["accuracy_above"]
    assert 0.4 <= stats["fraction_below"] < 0.6


def test_never_unsure_when_low_confidence_is_still_mostly_right():
    confidence = torch.linspace(0.3, 0.99, 100)
    stats = unsure_threshold(confidence, torch.arange(100) % 3 != 0)   # right 2 times in 3 everywhere
    assert stats["threshold"] == 0.0 and stats["fraction_below"] == 0.0


def test_always_unsure_when_always_wrong():
    stats = unsure_threshold(torch.linspace(0.3, 0.99, 50), torch.zeros(50, dtype=torch.bool))
    assert stats["threshold"] == 1.0 and stats["accuracy_above"] is None


def test_training_records_it_and_calibrate_reproduces_it(tmp_path):
    from training.cli import main

    data = make_image_parquet(tmp_path / "colours", train_per_label=12, val_per_label=10)
    out = tmp_path / "run"
    summary = main(["image", "--dataset", str(data), "--output", str(out), *FAST])
    config = json.loads((out / "config.json").read_text())
    assert config["unsure_threshold"] == summary["best"]["unsure"]["threshold"]
    assert 0.0 <= config["unsure_threshold"] <= 1.0
    report = main(["calibrate", "--checkpoint", str(out), "--workers", "0"])
    assert report["threshold"] == config["unsure_threshold"] and report["num_validation"] == 30


@pytest.mark.parametrize("folder", sorted(p.parent for p in (REPO / "checkpoints").glob("*/*/config.json")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_checkpoints_carry_a_threshold(folder):
    config = json.loads((folder / "config.json").read_text())
    assert 0.0 <= config["unsure_threshold"] <= 1.0
    assert config["metrics"]["unsure"]["threshold"] == config["unsure_threshold"]


def test_result_is_unsure_below_the_threshold_and_says_what_that_means():
    from demo.predictor import Predictor, discover
    from demo.tabs.common import result_record, status_markdown

    predictor = Predictor.load(REPO / "checkpoints" / "image" / "cifar10")
    threshold = predictor.config["unsure_threshold"]
    below = predictor.config["metrics"]["unsure"]["accuracy_below"]
    assert threshold > 0
    flat = {label: 1 / len(predictor.labels) for label in predictor.labels}
    unsure = result_record(predictor, flat)
    assert unsure["unsure"] and unsure["unsure_threshold"] == threshold
    assert set(unsure["confidences"]) == set(predictor.labels)          # every label, not a top 5
    sure = result_record(predictor, {**flat, "cat": 0.99})
    assert not sure["unsure"] and sure["label"] == "cat"
    models = discover(REPO / "checkpoints", "image", "cpu")
    # The warning uses the recorded validation accuracy below the threshold, not a fixed phrase.
    message = status_markdown(models, unsure)
    assert "Unsure" in message and f"below {threshold:.0%} confidence" in message.lower()
    assert f"right {below:.0%} of the time" in message
    assert status_markdown(models, sure) == ""


def test_shown_result_dims_the_label_and_clears_on_none():
    from demo.predictor import discover
    from demo.tabs.common import UNSURE_CLASS, result_record, show_result

    models = discover(REPO / "checkpoints", "image", "cpu")
    predictor = models.get("cifar10")
    flat = {label: 1 / len(predictor.labels) for label in predictor.labels}
    label, status = show_result(models, result_record(predictor, flat))
    assert label["label"] == "Unsure guess" and label["elem_classes"] == [UNSURE_CLASS] and status["visible"]
    label, status = show_result(models, result_record(predictor, {**flat, "ship": 0.99}))
    assert label["label"] == "Prediction" and label["elem_classes"] == [] and not status["visible"]
    label, status = show_result(models, None)
    assert label["value"] is None and status["value"] == "" and not status["visible"]


def test_browser_shows_unsure_for_an_ambiguous_image(page, tmp_path):
    from PIL import Image

    # A flat dark-grey square: nothing of any label in it, so the shipped model's top confidence is low
    # (0.20 for the shipped model, airplane, below its 0.63 threshold).
    path = tmp_path / "grey.png"
    Image.new("RGB", (32, 32), (64, 64, 64)).save(path)
    from demo.predictor import Predictor
    predictor = Predictor.load(REPO / "checkpoints" / "image" / "cifar10")
    top = max(predictor.predict(path).values())
    assert top < predictor.config["unsure_threshold"], f"grey is classified with confidence {top:.2f}"
    page.get_by_role("tab", name="Image").click()
    tab = page.locator("#tab-image")
    tab.locator("input[type=file]").first.set_input_files(str(path))
    tab.get_by_text("Unsure.").wait_for()
    assert tab.locator("#image-label").get_by_text("Unsure guess").count() == 1
    # A confident prediction clears the warning again.
    sure = max(sorted((REPO / "demo" / "examples" / "image").glob("*.png")), key=lambda p: max(predictor.predict(p).values()))
    assert max(predictor.predict(sure).values()) >= predictor.config["unsure_threshold"]
    tab.locator("input[type=file]").first.set_input_files(str(sure))
    tab.get_by_text("Unsure.").wait_for(state="hidden")
    assert tab.get_by_text("Prediction", exact=True).count() >= 1
