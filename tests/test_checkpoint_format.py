"""config.json format 2: one typed record (training/config_record.py), the validation rows as data, older
layouts read as format 2, absurd values refused before any network is built, and `python -m training
migrate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_image_parquet
from tiny_models import image_checkpoint, text_checkpoint

from training import checkpoint as ckpt
from training.checkpoint import CheckpointError
from training.cli import main
from training.config_record import CheckpointRecord, Validation
from training.tasks import get_task

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--quiet", "--width", "8", "--epochs", "1"]
SHIPPED = sorted(p.parent for p in (REPO / "checkpoints").glob("*/*/config.json"))


def read(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def write(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def carved(tmp_path_factory):
    """(dataset, checkpoint): a run on a dataset with a train split only, 30% carved with seed 3."""
    root = tmp_path_factory.mktemp("format")
    dataset = make_image_parquet(root / "train_only", train_per_label=10, val_per_label=0)
    main(["image", "--dataset", str(dataset), "--output", str(root / "run"), "--seed", "3", "--val-fraction", "0.3",
          *FAST])
    return dataset, root / "run"


@pytest.fixture
def copy(carved, tmp_path) -> Path:
    shutil.copytree(carved[1], tmp_path / "run")
    return tmp_path / "run"


def logits(folder: Path) -> torch.Tensor:
    model, _, config = ckpt.load_model(folder)
    with torch.no_grad():
        return model(torch.randn(4, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0)))


# ---------------------------------------------------------------------------------- the validation rows

def test_a_run_records_its_validation_rows_as_data(carved):
    config = read(carved[1])
    assert config["format_version"] == ckpt.FORMAT_VERSION == 2
    assert config["dataset"]["validation"] == {"kind": "carved", "split": "train", "fraction": 0.3, "by": None,
                                               "seed": 3}
    assert config["dataset"]["validation_split"] == "train (held out 0.3, stratified)"   # for people and the card
    assert ckpt.read_record(carved[1]).dataset.validation == Validation("carved", "train", 0.3, None, 3)


def test_the_sentence_is_never_read_back(carved, copy, tmp_path):
    """Rewording the sentence changes nothing: evaluate still scores the carved rows, --init-from still
    guards them. Changing the data changes what happens."""
    dataset, _ = carved
    config = read(copy)
    config["dataset"]["validation_split"] = "some other words"
    write(copy, config)
    assert main(["evaluate", "--checkpoint", str(copy), "--dataset", str(dataset), "--workers", "0"])["split"] == \
        "validation (carved from train as recorded)"
    with pytest.raises(SystemExit, match=r"held out its validation rows with other arguments: --seed 3 \(this run: 0\)"):
        main(["image", "--dataset", str(dataset), "--output", str(tmp_path / "next"), "--init-from", str(copy),
              "--val-fraction", "0.3", *FAST])
    config["dataset"]["validation"] = {"kind": "split", "split": "validation"}
    write(copy, config)
    with pytest.raises(SystemExit, match=r"no 'validation' split; it has \['train'\]"):
        main(["evaluate", "--checkpoint", str(copy), "--dataset", str(dataset), "--workers", "0"])


# ---------------------------------------------------------------------------------------- older layouts

def as_format_1(config: dict) -> dict:
    """What format-1 code wrote for the same run: no `validation`, the sentence alone."""
    dataset = {k: v for k, v in config["dataset"].items() if k != "validation"}
    if "sources" in dataset:
        dataset["sources"] = [{k: v for k, v in s.items() if k != "validation"} for s in dataset["sources"]]
    return {**config, "format_version": 1, "dataset": dataset}


def test_a_format_1_folder_loads_as_format_2(copy):
    before = logits(copy)
    record = ckpt.read_record(copy)
    write(copy, as_format_1(read(copy)))
    assert read(copy)["format_version"] == 1
    assert ckpt.read_record(copy) == record                   # the same record, read from the older layout
    assert torch.equal(logits(copy), before)
    assert read(copy)["format_version"] == 1                  # reading rewrote nothing


GROUPED = {"validation_split": "train (held out 0.2 by speaker)"}
SEVERAL = {"validation_split": "each dataset's own (see sources)", "sources": [
    {"id": "../a", "train_split": "train", "validation_split": "train (held out 0.1 by speaker_id)", "val_rows": [0, 4]},
    {"id": "../b", "train_split": "train", "validation_split": "validation", "val_rows": [4, 6]}]}


@pytest.mark.parametrize("dataset,args,expected", [
    ({"validation_split": "validation"}, {}, [Validation("split", "validation")]),
    ({"validation_split": "test"}, {"eval_split": "test"}, [Validation("split", "test")]),
    (GROUPED, {"val_fraction": 0.2, "group_column": "speaker", "seed": 5}, [Validation("carved", "train", 0.2, "speaker", 5)]),
    (GROUPED, {}, [Validation("carved", "train", 0.2, "speaker", 0)]),          # before train_args held them
    (SEVERAL, {"val_fraction": 0.1, "seed": 2}, [Validation("carved", "train", 0.1, "speaker_id", 2),
                                                 Validation("split", "validation")]),
], ids=["own split", "eval split", "grouped", "grouped, no arguments", "several datasets"])
def test_format_1_validation_sentences_become_data(dataset, args, expected):
    record = ckpt.as_record({"format_version": 1, "task": "image", "labels": ["a", "b"], "model": {},
                             "dataset": {"id": "x", "train_split": "train", **dataset}, "train_args": args})
    assert [p.validation for p in record.dataset.parts] == expected
    assert record.dataset.carved == any(v.carved for v in expected)
    assert [p.validation.describe() for p in record.dataset.parts] == \
        [s["validation_split"] for s in dataset.get("sources", [dataset])]


@pytest.mark.parametrize("layout", ["first", "before versions and Hub ids", "staged"])
def test_older_layouts_load(copy, layout):
    """The first layout (task, labels, model, weights), one written before feature versions, Hub ids and
    package versions were recorded, and a run started from others (--init-from, nested twice)."""
    before, config = logits(copy), as_format_1(read(copy))
    if layout == "first":
        config = {k: config[k] for k in ("format_version", "task", "labels", "model")}
    elif layout == "before versions and Hub ids":
        config["preprocessing"].pop("feature_version")
        config["dataset"].pop("hub_id")
        for key in ("versions", "hardware", "created", "unsure_threshold", "training_seconds"):
            config.pop(key)
    else:
        oldest = {"checkpoint": "runs/a", "train_args": {"lr": 0.1}, "training_seconds": 3.0,
                  "metrics": {"accuracy": 0.5, "macro_f1": 0.4, "epoch": 2}}
        config["init_from"] = {"checkpoint": "runs/b", "architecture": "resnet20", "train_args": {"lr": 0.01},
                               "training_seconds": 4.0, "hardware": "cpu", "init_from": oldest,
                               "metrics": {"accuracy": 0.6, "macro_f1": 0.5, "epoch": 1}}
    write(copy, config)
    record = ckpt.read_record(copy)
    assert record.format_version == 2 and record.labels == tuple(config["labels"])
    assert torch.equal(logits(copy), before)
    if layout == "staged":
        assert [r.training_seconds for r in record.runs()[1:]] == [4.0, 3.0]
        card = main(["card", "--checkpoint", str(copy)])["card"]
        assert "It started from the checkpoint `runs/a`: 3.0 s" in Path(card).read_text(encoding="utf-8")


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_checkpoint_reads_as_format_2(folder):
    """Read as format 2 without loss: the file's every entry (a format-1 file's, plus `validation` as data
    that agrees with the arguments the run recorded; a migrated one's exactly)."""
    on_disk, record = read(folder), ckpt.read_record(folder)
    assert CheckpointRecord.from_json(record.to_json()) == record
    as_read = record.to_json()
    changed = {k for k in set(on_disk) | set(as_read) if on_disk.get(k) != as_read.get(k)}
    if on_disk["format_version"] == 2:
        assert changed == set()
    else:
        assert changed <= {"format_version", "dataset"}
        assert as_format_1({**as_read, "dataset": {**as_read["dataset"], "validation_split":
                                                   on_disk["dataset"]["validation_split"]}})["dataset"] == on_disk["dataset"]
    args = record.train_args
    for part in record.dataset.parts:
        if part.validation.carved:
            assert (part.validation.fraction, part.validation.by, part.validation.seed) == \
                (args["val_fraction"], args["group_column"], args["seed"])
    ckpt.load(folder)


# -------------------------------------------------------------------------------------- absurd values

def built_on(monkeypatch, task_name: str) -> list[str]:
    """The devices the task's networks get built on from now on (the loader's check builds on "meta")."""
    task, devices = get_task(task_name), []
    real = task.build_model

    def spy(*args, **kwargs):
        devices.append(str(torch.empty(0).device))
        return real(*args, **kwargs)

    monkeypatch.setattr(task, "build_model", spy)
    return devices


ABSURD = {   # name: (task, change to config.json, words of the message, the file it names)
    "a vocabulary of 10^9": ("text", lambda c: c["model"].update(vocab_size=10**9), "embedding.weight", "model.safetensors"),
    "a million labels": ("text", lambda c: c.update(labels=[f"l{i}" for i in range(10**6)]), "at most 100,000", "config.json"),
    "a negative width": ("image", lambda c: c["model"].update(width=-8), "no image network that can be built", "config.json"),
    "a huge image size": ("image", lambda c: c["model"].update(image_size=10**6), "would hold 3,000,000,000,000 values", "config.json"),
    "labels as one string": ("image", lambda c: c.update(labels="cat,dog"), "'labels': expected a list", "config.json"),
    "a label twice": ("image", lambda c: c.update(labels=["cat", "cat", "ship"]), "a label twice", "config.json"),
    "a threshold of 7": ("image", lambda c: c.update(unsure_threshold=7), "not between 0 and 1", "config.json"),
    "NaN accuracy": ("image", lambda c: c.update(metrics={"accuracy": float("nan")}), "'metrics.accuracy'", "config.json"),
    "timm's keys for other labels": ("image", lambda c: c.update(num_classes=5, num_features=8, pretrained_cfg={
        "input_size": [3, 24, 24]}), "do not match the 3 'labels'", "config.json"),
}


@pytest.mark.parametrize("case", ABSURD)
def test_absurd_values_fail_that_model_before_anything_is_built(case, tmp_path, monkeypatch):
    task_name, change, words, file = ABSURD[case]
    folder = (text_checkpoint if task_name == "text" else image_checkpoint)(tmp_path / "m")
    shutil.copy(folder / "config.json", tmp_path / "original.json")
    config = read(folder)
    change(config)
    write(folder, config)
    devices = built_on(monkeypatch, task_name)
    with pytest.raises(CheckpointError) as refused:
        ckpt.load(folder)
    assert words in str(refused.value) and str(folder / file) in str(refused.value), str(refused.value)
    assert "cpu" not in devices                              # nothing was built for real: no memory taken
    write(folder, read_original(folder))
    ckpt.load(folder)
    assert "cpu" in devices                                  # control: the spy does see a real build


def read_original(folder: Path) -> dict:
    return json.loads((folder.parent / "original.json").read_text(encoding="utf-8"))


def test_a_config_json_larger_than_any_checkpoints_is_not_parsed(tmp_path):
    folder = image_checkpoint(tmp_path / "m")
    config = read(folder)
    config["padding"] = "x" * ckpt.MAX_CONFIG_BYTES
    write(folder, config)
    with pytest.raises(CheckpointError, match=r"config\.json: 16 MB, more than any checkpoint's"):
        ckpt.read_record(folder)


def test_a_broken_folder_is_listed_unavailable_and_the_rest_serve(tmp_path):
    from demo.predictor import discover

    image_checkpoint(tmp_path / "image" / "good")
    bad = image_checkpoint(tmp_path / "image" / "huge")
    write(bad, {**read(bad), "model": {**read(bad)["model"], "image_size": 10**6}})
    found = discover(tmp_path, "image")
    assert set(found.predictors) == {"good"} and "values" in found.errors["huge"]


# ---------------------------------------------------------------------------------------------- migrate

def test_migrate_rewrites_a_format_1_folder_and_leaves_the_weights(copy):
    weights, before = (copy / "model.safetensors").read_bytes(), logits(copy)
    write(copy, as_format_1(read(copy)))
    (copy / "README.md").unlink()
    report = main(["migrate", "--checkpoint", str(copy)])
    assert report["format_version"] == {"before": 1, "after": 2} and report["timm"] is False
    config = read(copy)
    assert config["format_version"] == 2 and config["dataset"]["validation"]["kind"] == "carved"
    assert (copy / "model.safetensors").read_bytes() == weights and torch.equal(logits(copy), before)
    assert "held out 0.3, stratified" in (copy / "README.md").read_text(encoding="utf-8")
    assert main(["migrate", "--checkpoint", str(copy)])["format_version"] == {"before": 2, "after": 2}
    assert read(copy) == config
