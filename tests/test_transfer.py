"""--transfer-from (every weight of a checkpoint of other labels but its classifier head), in each task;
the engine's hooks for a caller other than the command line (progress and cancel); and --time-limit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_image_parquet, task_settings
from safetensors.torch import load_file, save_file

from training import checkpoint as ckpt
from training import engine
from training.cli import main
from training.records import TrainingError, head_keys
from training.tasks import get_task

from test_init_from import FAST, FROZEN, refused, train

pytestmark = pytest.mark.usefixtures("torch_one_thread")

RUNNING = ("running_mean", "running_var", "num_batches_tracked")   # BatchNorm statistics move even at lr 0


def read(folder: Path, name: str = "config.json") -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def head_of(folder: Path) -> set[str]:
    """The classifier head's keys in the checkpoint in `folder`, as its task names the head."""
    model, config, _ = ckpt.load_model(folder)
    return head_keys(model, get_task(config["task"]).head(model))


def split(folder: Path, *, running: bool = False) -> tuple[dict, dict]:
    """(body, head) tensors of a checkpoint; the body without BatchNorm statistics unless `running`."""
    weights, head = load_file(folder / "model.safetensors"), head_of(folder)
    body = {k: v for k, v in weights.items() if k not in head and (running or not k.endswith(RUNNING))}
    return body, {k: v for k, v in weights.items() if k in head}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


@pytest.fixture(scope="module")
def source(colours_parquet, tmp_path_factory) -> Path:
    """A 3-label image checkpoint (red, green, blue)."""
    out = tmp_path_factory.mktemp("runs") / "source"
    train(colours_parquet, out)
    return out


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory) -> Path:
    """A 2-label image dataset whose labels are not the source's."""
    return make_image_parquet(tmp_path_factory.mktemp("hub") / "warmcool", train_per_label=8, val_per_label=3,
                              labels=("warm", "cool"))


# ------------------------------------------------------------------------------------------------ image

def test_the_body_comes_from_the_checkpoint_and_the_head_is_new(source, two_labels, tmp_path):
    out = tmp_path / "taught"
    train(two_labels, out, "--transfer-from", str(source), *FROZEN)
    body, head = split(out)
    source_body, source_head = split(source)
    assert_same(body, source_body)
    assert head.keys() == source_head.keys() == {"fc.weight", "fc.bias"}
    assert head["fc.weight"].shape[0] == 2 and source_head["fc.weight"].shape[0] == 3
    # the head is a fresh one, as a run from scratch with the same seed starts it; that run's body is not the source's
    fresh = tmp_path / "fresh"
    train(two_labels, fresh, *FROZEN)
    fresh_body, fresh_head = split(fresh)
    assert_same(head, fresh_head)
    assert any(not torch.equal(t, source_body[k]) for k, t in fresh_body.items())


def test_the_run_records_what_it_was_transferred_from(source, two_labels, tmp_path):
    out = tmp_path / "taught"
    summary = train(two_labels, out, "--transfer-from", str(source))
    config, recorded = read(out), read(source)
    assert config["labels"] == ["warm", "cool"] and config["train_args"]["transfer_from"] == str(source)
    assert config["transferred_from"] == {
        "checkpoint": str(source), "labels": ["red", "green", "blue"], "architecture": "resnet20",
        "metrics": {"accuracy": recorded["metrics"]["accuracy"], "macro_f1": recorded["metrics"]["macro_f1"]},
        "dataset": {"id": recorded["dataset"]["id"], "hub_id": None}}
    assert "init_from" not in config and "pretrained" not in config
    metrics = read(out, "metrics.json")
    assert metrics["stages"] == [] and summary["stages"] == []   # other labels: the source's epochs are not this run's
    assert len(metrics["history"]) == 1
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"Transfer-learned from the checkpoint `{source}` (labels red, green, blue;" in card
    assert "Transfer-learned" not in (source / "README.md").read_text(encoding="utf-8")


def test_the_source_pretrained_weights_record_and_license_carry_over(source, two_labels, tmp_path):
    pretrained = {"source": "somewhere", "sha256": "ab" * 32, "license": "Apache-2.0"}
    copy = tmp_path / "pretrained_source"
    shutil.copytree(source, copy)
    (copy / "config.json").write_text(json.dumps({**read(source), "pretrained": pretrained}))
    train(two_labels, tmp_path / "taught", "--transfer-from", str(copy))
    config = read(tmp_path / "taught")
    assert config["pretrained"] == pretrained and config["transferred_from"]["pretrained"] == pretrained
    assert "weights license Apache-2.0" in (tmp_path / "taught" / "README.md").read_text(encoding="utf-8")


def test_the_same_labels_get_a_new_head_too(source, colours_parquet, tmp_path):
    train(colours_parquet, tmp_path / "again", "--transfer-from", str(source), *FROZEN)
    body, head = split(tmp_path / "again")
    source_body, source_head = split(source)
    assert_same(body, source_body)
    assert any(not torch.equal(t, source_head[k]) for k, t in head.items())


def test_with_a_frozen_backbone_only_the_new_head_trains(source, two_labels, tmp_path):
    train(two_labels, tmp_path / "probe", "--transfer-from", str(source), "--freeze-backbone", "--lr", "0.05")
    train(two_labels, tmp_path / "still", "--transfer-from", str(source), *FROZEN)
    body, head = split(tmp_path / "probe", running=True)
    assert_same(body, split(source, running=True)[0])   # BatchNorm statistics included
    start = split(tmp_path / "still")[1]
    assert any(not torch.equal(t, start[k]) for k, t in head.items())


def test_transfer_is_refused_with_init_from_or_resume(source, two_labels, tmp_path):
    message = refused(two_labels, tmp_path / "x", "--transfer-from", str(source), "--init-from", str(source))
    assert message.startswith("error: --transfer-from and --init-from: give one.")
    message = refused(two_labels, tmp_path / "x", "--transfer-from", str(source), "--resume")
    assert message.startswith("error: --transfer-from and --resume: give one.")
    assert not (tmp_path / "x").exists()   # refused before anything is read or written


def test_a_checkpoint_of_another_task_or_other_model_arguments_is_refused(source, two_labels, tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "config.json").write_text(json.dumps({**read(source), "task": "text"}))
    assert "--transfer-from {}: a text checkpoint, not an image one".format(tmp_path / "text") in refused(
        two_labels, tmp_path / "x", "--transfer-from", str(tmp_path / "text"))
    message = refused(two_labels, tmp_path / "x", "--transfer-from", str(source), "--width", "16")
    assert message.startswith(f"error: --transfer-from {source}: give the model arguments it was trained with")
    assert message.endswith("differ in width 8 (this run: 16).")


def test_weights_that_do_not_fit_the_network_are_named(source, two_labels, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    weights = load_file(broken / "model.safetensors")
    weights["stem.0.weight"] = weights["stem.0.weight"][:4].contiguous()   # another shape
    del weights["layers.0.conv1.weight"]                          # missing
    weights["extra.weight"] = torch.zeros(2)                          # not in the network
    weights["fc.weight"] = torch.zeros(7, 1)                          # the head may be anything
    save_file(weights, broken / "model.safetensors")
    message = refused(two_labels, tmp_path / "x", "--transfer-from", str(broken))
    assert f"--transfer-from {broken}: its weights do not fit this network (the classifier head aside)" in message
    assert "missing: layers.0.conv1.weight" in message and "not in this network: extra.weight" in message
    assert "of another shape: stem.0.weight (4, 3, 3, 3) (this network: (8, 3, 3, 3))" in message
    assert "fc.weight" not in message


def test_an_interrupted_transfer_resumes_without_the_flag_and_keeps_its_record(source, two_labels, tmp_path):
    out = tmp_path / "taught"
    train(two_labels, out, "--transfer-from", str(source))
    main(["image", "--dataset", str(two_labels), "--output", str(out), *FAST[:-2], "--epochs", "2", "--resume"])
    assert len(read(out, "metrics.json")["history"]) == 2
    assert read(out)["transferred_from"]["checkpoint"] == str(source)


# -------------------------------------------------------------------------------------- text, speech

def test_text_keeps_the_source_tokenizer_for_other_labels(tmp_path, monkeypatch):
    from test_text import TINY, sentences, write_csv

    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    main(["text", "--dataset", str(write_csv(tmp_path / "a.csv", sentences(60))), "--output", str(tmp_path / "a"),
          *TINY])
    # other texts and labels would train another tokenizer; the transferred embeddings are indexed by the source's
    rows = [(s.upper() + " zebra quartz", "calm" if label == "joy" else "upset") for s, label in sentences(60)]
    main(["text", "--dataset", str(write_csv(tmp_path / "b.csv", rows)), "--output", str(tmp_path / "b"), *TINY,
          "--transfer-from", str(tmp_path / "a"), "--dropout", "0.5", *FROZEN])
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()
    body, head = split(tmp_path / "b")
    assert_same(body, split(tmp_path / "a")[0])
    assert {v.shape[0] for k, v in head.items()} == {2}
    config = read(tmp_path / "b")
    assert config["labels"] == ["calm", "upset"] and config["model"]["dropout"] == 0.5
    assert config["transferred_from"]["labels"] == ["anger", "fear", "joy"]


def make_words(root: Path, labels, per_label: int = 10) -> Path:
    import soundfile as sf
    from test_speech import word_clip

    for k, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / label / f"{i:03d}.wav", word_clip(k % 2, i), 8_000, subtype="PCM_16")
    return root


def test_speech_transfers_to_other_words(tmp_path, monkeypatch):
    from test_speech import TINY

    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    source = make_words(tmp_path / "source_words", ("down", "left", "up"))
    main(["speech", "--dataset", str(source), "--output", str(tmp_path / "a"), *TINY])
    target = make_words(tmp_path / "target_words", ("no", "yes"))
    main(["speech", "--dataset", str(target), "--output", str(tmp_path / "b"), *TINY, "--transfer-from",
          str(tmp_path / "a"), *FROZEN])
    body, head = split(tmp_path / "b")
    assert_same(body, split(tmp_path / "a")[0])
    assert head and all(v.shape[0] == 2 for k, v in head.items() if k.endswith("weight"))
    assert read(tmp_path / "b")["transferred_from"]["labels"] == ["down", "left", "up"]


# ------------------------------------------------------------------------------------- hooks, time limit

def image_settings(dataset: Path, output: Path, *extra):
    settings = task_settings("image", *FAST, "--output", str(output), *extra)
    settings.data.dataset = (str(dataset),)
    return settings


def test_hooks_report_every_step_and_epoch(colours_parquet, tmp_path):
    steps, rows = [], []
    summary = engine.run(get_task("image"), image_settings(colours_parquet, tmp_path / "out", "--epochs", "2"),
                         hooks=engine.Hooks(on_step=lambda *a: steps.append(a), on_epoch=rows.append))
    assert [s[:3] for s in steps] == [(e, s, 3) for e in (0, 1) for s in (1, 2, 3)]   # 24 rows / batch 8
    history = read(tmp_path / "out", "metrics.json")["history"]
    assert rows == history == summary["history"] and len(rows) == 2
    for epoch, row in enumerate(rows):   # the last step's running loss is the epoch's
        assert steps[3 * epoch + 2][3] == pytest.approx(row["train_loss"], abs=1e-5)


def test_should_stop_cancels_at_once(colours_parquet, tmp_path):
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) == 2

    with pytest.raises(engine.Cancelled, match="^training was cancelled$") as info:
        engine.run(get_task("image"), image_settings(colours_parquet, tmp_path / "out", "--epochs", "2"),
                   hooks=engine.Hooks(should_stop=should_stop))
    assert isinstance(info.value, TrainingError) and len(asked) == 2
    assert not (tmp_path / "out" / "model.safetensors").exists()   # no epoch finished
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_the_time_limit_stops_after_the_epoch_that_passes_it(colours_parquet, tmp_path):
    summary = train(colours_parquet, tmp_path / "limited", "--epochs", "2", "--time-limit", "0.001")
    metrics, config = read(tmp_path / "limited", "metrics.json"), read(tmp_path / "limited")
    assert len(metrics["history"]) == 1 and metrics["stopped"] == summary["stopped"] == "time limit"
    assert config["metrics"]["epoch"] == 1 and "unsure_threshold" in config   # finished as any run does
    assert config["train_args"]["time_limit"] == 0.001
    assert (tmp_path / "limited" / "README.md").is_file()
    # without it (or within it), every epoch runs
    train(colours_parquet, tmp_path / "whole", "--epochs", "2", "--time-limit", "3600")
    assert len(read(tmp_path / "whole", "metrics.json")["history"]) == 2
    assert "stopped" not in read(tmp_path / "whole", "metrics.json")
