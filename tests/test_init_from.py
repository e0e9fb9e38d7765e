"""--init-from: a run that starts from an earlier checkpoint's weights (and tokenizer), with this run's
training-only settings; and --cutout, the augmentation such a second run may add."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import make_image_parquet, task_settings
from safetensors.torch import load_file

from training.cli import main
from training.errors import SettingsError
from training.tasks import get_task
from training.tasks import image as image_task

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--quiet", "--width", "8", "--epochs", "1"]
FROZEN = ["--lr", "0", "--weight-decay", "0"]   # a run that cannot move the weights it starts from


def train(dataset, output, *extra) -> dict:
    return main(["image", "--dataset", str(dataset), "--output", str(output), *FAST, *extra])


def refused(dataset, output, *extra) -> str:
    """The CLI's error message for a run it refuses; nothing is written to `output`."""
    with pytest.raises(SystemExit) as exit_info:
        train(dataset, output, *extra)
    assert not (Path(output) / "model.safetensors").exists()
    return str(exit_info.value.code)


def trained_tensors(folder: Path) -> dict:
    """The learned tensors of a checkpoint (BatchNorm's running statistics move even at lr 0)."""
    return {k: v for k, v in load_file(folder / "model.safetensors").items() if "running" not in k
            and "num_batches" not in k}


@pytest.fixture(scope="module")
def first(colours_parquet, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "first"
    train(colours_parquet, out)
    return out


def test_the_run_starts_from_the_checkpoints_weights_and_records_it(colours_parquet, first, tmp_path):
    second = tmp_path / "second"
    train(colours_parquet, second, "--init-from", str(first), "--cutout", "4", "--seed", "3", *FROZEN)
    start = trained_tensors(first)
    assert trained_tensors(second).keys() == start.keys()
    for name, tensor in trained_tensors(second).items():
        assert torch.equal(tensor, start[name]), name
    # without --init-from the same arguments start from a fresh network
    fresh = tmp_path / "fresh"
    train(colours_parquet, fresh, "--seed", "3", *FROZEN)
    assert any(not torch.equal(t, start[k]) for k, t in trained_tensors(fresh).items())

    config = json.loads((second / "config.json").read_text())
    recorded = json.loads((first / "config.json").read_text())
    assert config["model"]["cutout"] == 4 and recorded["model"]["cutout"] == 0   # this run's training setting
    assert config["train_args"]["init_from"] == str(first)
    parent = config["init_from"]
    assert parent["checkpoint"] == str(first)
    assert parent["metrics"]["accuracy"] == recorded["metrics"]["accuracy"]
    assert parent["train_args"] == recorded["train_args"]
    assert parent["training_seconds"] == recorded["training_seconds"]
    assert "init_from" not in recorded
    card = (second / "README.md").read_text()
    assert f"started from the checkpoint `{first}`: {recorded['training_seconds']} s" in card
    total = config["training_seconds"] + recorded["training_seconds"]
    assert f"training time {config['training_seconds']} s ({total:.1f} s with the runs it started from)" in card


def test_the_model_arguments_must_match_the_checkpoint(colours_parquet, first, tmp_path):
    message = refused(colours_parquet, tmp_path / "x", "--init-from", str(first), "--width", "16")
    assert message.startswith(f"error: --init-from {first}: give the model arguments it was trained with")
    assert message.endswith("differ in width 8 (this run: 16).")


def test_a_continued_run_may_change_the_input_resolution(colours_parquet, first, tmp_path):
    """A staged run (train small, then continue larger: FixRes) keeps the network and changes image_size,
    which the checkpoint and its preprocessing then record; every network here pools globally."""
    second = tmp_path / "second"
    train(colours_parquet, second, "--init-from", str(first), "--image-size", "24", *FROZEN)
    config = json.loads((second / "config.json").read_text())
    assert config["model"]["image_size"] == config["preprocessing"]["image_size"] == 24
    assert json.loads((first / "config.json").read_text())["model"]["image_size"] == 16
    assert trained_tensors(second).keys() == trained_tensors(first).keys()


def test_validation_rows_carved_another_way_are_refused(first, tmp_path):
    """A carved validation split must hold the same rows, or the second run learns what the first was
    validated on (its validation accuracy would then flatter it)."""
    folder = make_image_parquet(tmp_path / "carved", train_per_label=10, val_per_label=0)
    train(folder, tmp_path / "a")
    message = refused(folder, tmp_path / "b", "--init-from", str(tmp_path / "a"), "--seed", "1")
    assert "held out its validation rows with other arguments: --seed 0 (this run: 1)" in message
    message = refused(folder, tmp_path / "b", "--init-from", str(tmp_path / "a"), "--val-fraction", "0.3")
    assert "--val-fraction 0.1 (this run: 0.3)" in message
    train(folder, tmp_path / "b", "--init-from", str(tmp_path / "a"))   # the same rows: accepted
    assert json.loads((tmp_path / "b" / "config.json").read_text())["dataset"]["validation_split"].startswith(
        "train (held out 0.1")
    # a dataset with its own validation split (`first`'s) may use any seed
    train(first_dataset(first), tmp_path / "c", "--init-from", str(first), "--seed", "5")


def first_dataset(first: Path) -> str:
    return json.loads((first / "config.json").read_text())["dataset"]["id"]


def test_a_checkpoint_of_other_labels_or_another_task_is_refused(first, tmp_path):
    other = make_image_parquet(tmp_path / "other", train_per_label=8, val_per_label=3, labels=("red", "blue"))
    assert "its labels ['red', 'green', 'blue'] are not this dataset's ['red', 'blue']" in refused(
        other, tmp_path / "x", "--init-from", str(first))
    config = json.loads((first / "config.json").read_text())
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "config.json").write_text(json.dumps({**config, "task": "text"}))
    assert "a text checkpoint, not an image one" in refused(other, tmp_path / "y", "--init-from", str(tmp_path / "text"))


def test_a_missing_checkpoint_is_a_clear_error(colours_parquet, tmp_path):
    message = refused(colours_parquet, tmp_path / "x", "--init-from", str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in message and "config.json" in message


def test_text_keeps_the_tokenizer_its_embeddings_are_indexed_by(tmp_path, monkeypatch):
    from test_text import TINY, sentences, write_csv

    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    data = write_csv(tmp_path / "tiny.csv", sentences(60))
    main(["text", "--dataset", str(data), "--output", str(tmp_path / "a"), *TINY])
    # other texts would train another tokenizer; the second run must keep the first one's
    data2 = write_csv(tmp_path / "other.csv", [(s.upper() + " zebra quartz", l) for s, l in sentences(60)])
    main(["text", "--dataset", str(data2), "--output", str(tmp_path / "b"), *TINY, "--init-from",
          str(tmp_path / "a"), "--dropout", "0.5", "--lr", "0", "--weight-decay", "0"])
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["model"]["dropout"] == 0.5


@pytest.mark.parametrize("name", ["image", "text", "speech"])
def test_training_only_settings_name_real_model_settings(name):
    task = get_task(name)
    names = {f.name for f in fields(task.Config)}
    assert task.train_fields and set(task.train_fields) <= names
    assert set(task.fitted_fields) <= names
    assert not set(task.train_fields) & set(task.fitted_fields)


# -------------------------------------------------------------------------------------------- cutout

def test_cutout_blanks_one_square_inside_each_image():
    x = torch.ones(64, 3, 16, 16)
    out = image_task.cutout(x, 5, torch.Generator().manual_seed(0))
    blank = (out == 0).all(1)                       # b, h, w
    assert blank.sum((1, 2)).tolist() == [25] * 64  # wholly inside: never clipped by the border
    rows, cols = blank.any(2), blank.any(1)
    assert (rows.sum(1) == 5).all() and (cols.sum(1) == 5).all()   # one 5 x 5 square
    assert len({tuple(r.nonzero().flatten().tolist()) for r in rows}) > 3   # at different places
    assert torch.equal(x, torch.ones(64, 3, 16, 16))   # the input is left alone
    full = image_task.cutout(x, 16, torch.Generator().manual_seed(0))
    assert (full == 0).all()


def test_cutout_applies_in_training_only():
    config = image_task.ImageConfig(image_size=16, cutout=6, augment="none")
    data = torch.full((4, 3, 16, 16), 200, dtype=torch.uint8)
    (train,) = image_task.make_batch(config, data, torch.zeros(4), train=True, generator=torch.Generator())
    (evaluation,) = image_task.make_batch(config, data, torch.zeros(4), train=False)
    assert ((train == 0).all(1).sum((1, 2)) == 36).all()
    assert not (evaluation == 0).any()


@pytest.mark.parametrize("value", ["-1", "33"])
def test_cutout_beyond_the_image_is_refused(value):
    with pytest.raises(SettingsError, match=f"--cutout {value}: choose from 0"):
        task_settings("image", "--cutout", value)
