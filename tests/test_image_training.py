"""`python -m training image` and `python -m training evaluate`, run in-process on generated datasets.

The data goes through the same `datasets.load_dataset` path a Hub id takes: an `imagefolder` of class
subfolders and a folder of parquet files in the Hub layout.
"""

from __future__ import annotations

import json
import math
import socket
from datetime import datetime
from pathlib import Path

import pytest
import torch
from conftest import IMAGE_LABELS, make_imagefolder, image_png, write_image_parquet
from PIL import Image
from safetensors.torch import load_file

from training import engine
from training.checkpoint import load_model, load_resume
from training.cli import main
from training.tasks import image as image_task

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--quiet", "--width", "8"]
REPORT_FILES = {"model.safetensors", "config.json", "resume.pt", "metrics.json", "confusion_matrix.png",
                "training_curves.png", "README.md"}


def train(dataset, output, *extra) -> dict:
    return main(["image", "--dataset", str(dataset), "--output", str(output), *FAST, *extra])


@pytest.fixture(scope="module")
def parquet_run(colours_parquet, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "parquet"
    return train(colours_parquet, out, "--epochs", "1"), out


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """An imagefolder of 3 x 16 images, trained with the default --output (checkpoints/image/<name>)."""
    root = tmp_path_factory.mktemp("folder")
    dataset = make_imagefolder(root / "photos", per_label=16)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        summary = main(["image", "--dataset", str(dataset), "--epochs", "1", *FAST])
    return summary, root / "checkpoints" / "image" / "photos"


# ------------------------------------------------------------------------------------ one-epoch runs

def check_run_folder(out: Path, summary: dict, *, dataset: str, labels: list[str], num_train: int, num_val: int):
    assert REPORT_FILES <= {p.name for p in out.iterdir()}
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 2 and config["task"] == "image"
    assert config["labels"] == labels
    assert config["architecture"] == "resnet20"
    assert config["model"]["architecture"] == "resnet20" and config["model"]["image_size"] == 16
    assert config["model"]["width"] == 8
    prep = config["preprocessing"]
    assert prep["image_size"] == 16
    assert prep["mean"] == list(image_task.IMAGENET_MEAN) and prep["std"] == list(image_task.IMAGENET_STD)
    metrics = config["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    assert metrics["epoch"] == 1 and metrics["num_examples"] == num_val
    assert set(metrics["per_label"]) == set(labels)
    assert sum(v["support"] for v in metrics["per_label"].values()) == num_val
    for scores in metrics["per_label"].values():
        assert {"precision", "recall", "f1", "support"} <= set(scores)
    assert config["dataset"]["id"] == dataset
    assert (config["dataset"]["num_train"], config["dataset"]["num_validation"]) == (num_train, num_val)
    train_args = config["train_args"]
    assert train_args["epochs"] == 1 and train_args["batch_size"] == 8 and train_args["image_size"] == 16
    assert train_args["dataset"] == dataset
    created = datetime.fromisoformat(config["created"])
    assert created.tzinfo is not None

    written = json.loads((out / "metrics.json").read_text())
    assert written["best"] == metrics == summary["best"]
    assert [h["epoch"] for h in written["history"]] == [1]
    assert math.isfinite(written["history"][0]["train_loss"])
    assert written["history"][0]["val_accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-5)

    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and f"value: {round(metrics['accuracy'], 4)}" in card

    for name in ("confusion_matrix.png", "training_curves.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 200
            assert len(im.convert("L").getcolors(1 << 16)) > 10      # a drawing, not a blank canvas

    # The checkpoint loads and classifies.
    model, loaded_config, task_config = load_model(out, "cpu")
    (batch,) = image_task.prepare(task_config, image_png(0, 16))
    assert model(batch).shape == (1, len(labels))


def test_imagefolder_run(folder_run):
    summary, out = folder_run
    # imagefolder sorts its label names; 10% of each label (2 of 16) is held out for validation.
    check_run_folder(out, summary, dataset=str(out.parents[2] / "photos"), labels=sorted(IMAGE_LABELS),
                     num_train=42, num_val=6)
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["validation_split"].startswith("train (held out 0.1")


def test_parquet_run(parquet_run, colours_parquet):
    summary, out = parquet_run
    check_run_folder(out, summary, dataset=str(colours_parquet), labels=list(IMAGE_LABELS), num_train=24, num_val=9)
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["validation_split"] == "validation"


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as info:
        main(["image", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--model", "--pretrained", "--epochs", "--batch-size", "--lr", "--weight-decay",
                 "--image-size", "--augment", "--seed", "--max-train-samples", "--max-eval-samples",
                 "--val-fraction", "--image-column", "--label-column", "--output", "--device", "--resume",
                 "--patience", "--workers"):
        assert flag in text, flag


# ------------------------------------------------------------------------------------------- resume

def final_weights(out: Path) -> dict:
    return load_resume(out)["model"]


# airbench's recipe adds state beyond the optimizer (Lookahead's slow weights, the data-set whitening) and
# runs in bf16: a resumed run must still end where the uninterrupted one did.
AIRBENCH = ("--model", "airbench", "--lookahead", "--norm-lr-scale", "8", "--momentum", "0.85", "--crop-padding", "2",
            "--precision", "bf16")


@pytest.mark.parametrize("recipe", [(), AIRBENCH], ids=["resnet20", "airbench"])
def test_resume_continues_from_the_saved_epoch(colours_parquet, tmp_path, monkeypatch, recipe):
    args = ("--epochs", "3", "--seed", "5", *recipe)
    whole = train(colours_parquet, tmp_path / "whole", *args)

    # The same run, interrupted (Ctrl-C) during the validation of epoch 2.
    real_evaluate, calls = engine.evaluate, []

    def evaluate_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    with monkeypatch.context() as mp:
        mp.setattr(engine, "evaluate", evaluate_then_interrupt)
        with pytest.raises(SystemExit) as info:
            train(colours_parquet, tmp_path / "cut", *args)
    assert "--resume" in str(info.value.code)
    state = load_resume(tmp_path / "cut")
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [1]

    # Resumed: only epochs 2 and 3 are trained.
    real_train, trained = engine.train_one_epoch, []

    def recording_train(*a, **k):
        trained.append(k["epoch"] + 1)
        return real_train(*a, **k)

    monkeypatch.setattr(engine, "train_one_epoch", recording_train)
    resumed = train(colours_parquet, tmp_path / "cut", *args, "--resume")
    assert trained == [2, 3]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["history"] == resumed["history"]

    # ... and it ends where the uninterrupted run ended.
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert [h[key] for h in resumed["history"]] == pytest.approx([h[key] for h in whole["history"]], abs=1e-5), key
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].double(), b[name].double(), rtol=0, atol=1e-6), name
    best_a = load_file(tmp_path / "whole" / "model.safetensors")
    best_b = load_file(tmp_path / "cut" / "model.safetensors")
    for name in best_a:
        assert torch.allclose(best_a[name].double(), best_b[name].double(), rtol=0, atol=1e-6), name


def test_resume_without_state_starts_afresh(colours_parquet, tmp_path):
    summary = train(colours_parquet, tmp_path / "new", "--epochs", "1", "--resume")
    assert [h["epoch"] for h in summary["history"]] == [1]


# ------------------------------------------------------------------------------------ early stopping

def test_patience_stops_when_validation_cannot_improve(tmp_path, monkeypatch):
    # Every image is the same grey: the model predicts one label for all of them, and with a balanced
    # validation split accuracy is exactly 1/3 at every epoch, whatever the weights. A tie in accuracy goes
    # to the lower validation loss, which the weights still move (by how much depends on the CPU's
    # rounding), so the loss is held fixed too: no epoch after the first can be better.
    grey = image_png((128, 128, 128), 16, noise=0)
    root = tmp_path / "grey"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", [(grey, i % 3) for i in range(24)])
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", [(grey, i % 3) for i in range(6)])
    real_evaluate = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: (real_evaluate(*a, **k)[0], 1.0))
    summary = train(root, tmp_path / "out", "--epochs", "6", "--patience", "1")
    assert [h["val_accuracy"] for h in summary["history"]] == pytest.approx([1 / 3, 1 / 3], abs=1e-4)
    assert summary["best"]["epoch"] == 1
    assert load_resume(tmp_path / "out")["epoch"] == 2


# ------------------------------------------------------------------------------------------ NaN loss

def test_nan_loss_stops_with_a_message_and_keeps_the_previous_checkpoint(colours_parquet, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_evaluate, real_make_batch = engine.evaluate, image_task.make_batch
    state = {"evaluated": 0, "snapshot": None}

    def evaluate(*a, **k):
        state["evaluated"] += 1
        return real_evaluate(*a, **k)

    def make_batch(config, data, lengths, *, train, generator=None):
        (x,) = real_make_batch(config, data, lengths, train=train, generator=generator)
        if train and state["evaluated"] >= 1:        # epoch 2: the inputs go bad
            if state["snapshot"] is None:            # what epoch 1 left on disk
                kept = ("model.safetensors", "config.json", "resume.pt")
                state["snapshot"] = {n: (out / n).read_bytes() for n in kept}
            x = torch.full_like(x, float("nan"))
        return (x,)

    monkeypatch.setattr(engine, "evaluate", evaluate)
    monkeypatch.setattr(image_task.TASK, "make_batch", make_batch)
    with pytest.raises(SystemExit) as info:
        train(colours_parquet, out, "--epochs", "3")
    message = str(info.value.code)
    assert "loss became nan" in message and "epoch 2" in message and "--lr" in message
    assert state["snapshot"] is not None
    for name, data in state["snapshot"].items():
        assert (out / name).read_bytes() == data, f"{name} changed after the NaN"
    assert load_resume(out)["epoch"] == 1
    model, config, _ = load_model(out, "cpu")
    assert config["metrics"]["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())


def test_diverging_learning_rate_stops_with_a_message(colours_parquet, tmp_path):
    with pytest.raises(SystemExit) as info:
        train(colours_parquet, tmp_path / "out", "--epochs", "2", "--lr", "1e30")
    message = str(info.value.code)
    assert "loss became" in message and "epoch 1" in message and "lower --lr" in message
    assert not (tmp_path / "out" / "model.safetensors").exists()    # nothing good to keep, nothing bad saved


# ------------------------------------------------------------------------------------ pretrained offline

def test_pretrained_offline_is_a_clear_error_never_a_random_init(colours_parquet, tmp_path, monkeypatch):
    torch_home = tmp_path / "torch_home"
    torch_home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)     # in case anything called set_dir
    assert Path(torch.hub.get_dir()) == torch_home / "hub"
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the tests never use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        train(colours_parquet, out, "--epochs", "1", "--model", "mobilenet_v3_small", "--pretrained")
    message = str(info.value.code)
    assert message.startswith("error: --pretrained") and "offline" in message
    assert "without --pretrained" in message and "--weights PATH" in message
    assert not (out / "model.safetensors").exists()
    assert not list(torch_home.rglob("*.pth"))

    with pytest.raises(SystemExit, match="resnet20 has no pretrained weights"):
        train(colours_parquet, out, "--epochs", "1", "--pretrained")


# ------------------------------------------------------------------------------------------- evaluate

def test_evaluate_prints_one_json_object_and_writes_reports(parquet_run, colours_parquet, tmp_path, capsys):
    _, out = parquet_run
    capsys.readouterr()
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(colours_parquet), "--split", "validation",
                   "--workers", "0", "--report-dir", str(tmp_path / "report")])
    printed = json.loads(capsys.readouterr().out)      # the whole of stdout is one JSON object
    assert printed == json.loads(json.dumps(report))
    assert {"accuracy", "macro_f1", "per_label", "num_examples"} <= set(printed)
    assert printed["num_examples"] == 9 and printed["split"] == "validation"
    assert set(printed["per_label"]) == set(IMAGE_LABELS)
    # The same model on the same rows: the accuracy recorded at training time.
    config = json.loads((out / "config.json").read_text())
    assert printed["accuracy"] == pytest.approx(config["metrics"]["accuracy"], abs=1e-6)
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == printed
    with Image.open(tmp_path / "report" / "confusion_matrix.png") as im:
        assert im.format == "PNG"

    main(["evaluate", "--checkpoint", str(out), "--dataset", str(colours_parquet), "--split", "train",
          "--workers", "0", "--max-samples", "10"])
    assert json.loads(capsys.readouterr().out)["num_examples"] == 10


def test_evaluate_errors_are_clear(parquet_run, colours_parquet, tmp_path):
    _, out = parquet_run
    with pytest.raises(SystemExit, match="no 'test' split"):
        main(["evaluate", "--checkpoint", str(out), "--dataset", str(colours_parquet), "--split", "test",
              "--workers", "0"])
    with pytest.raises(SystemExit, match="config.json: missing"):
        main(["evaluate", "--checkpoint", str(tmp_path), "--dataset", str(colours_parquet), "--workers", "0"])
