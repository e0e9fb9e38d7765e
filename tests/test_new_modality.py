"""The task contract is all a new modality needs.

A tiny fourth task, "tabular" (numeric feature vectors -> a label), is defined here, outside training/
and demo/, and registered through the public registry only. It then goes through everything a built-in
task goes through: the CLI and the engine, the checkpoint, evaluate, calibrate, the model card, push,
--init-from, the feature-version check, `Predictor` and `discover`, and the demo (which builds without a
tab for it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.settings import option
from training.tasks import InputError, Task, get_task, register, task_names, unregister

CENTRES = {"low": (-2.0, -2.0), "mid": (0.0, 2.5), "high": (2.5, -0.5)}


@dataclass
class TabularConfig:
    hidden: int = option(16, "hidden units of the two-layer network")
    dropout: float = option(0.0, "dropout before the classifier", role="train")
    width: int = option(2, "numbers per row", role="fitted")
    mean: tuple = option((), role="fitted")   # per-column statistics of the training rows
    std: tuple = option((), role="fitted")


def to_row(config: TabularConfig, raw) -> torch.Tensor:
    try:
        x = torch.tensor([float(v) for v in raw], dtype=torch.float32)
    except (TypeError, ValueError):
        raise InputError("Give a list of numbers.") from None
    if x.shape != (config.width,) or not torch.isfinite(x).all():
        raise InputError(f"Give {config.width} finite numbers.")
    return x


class TabularTask(Task):
    name = "tabular"
    Config = TabularConfig
    summary = "fine-tune a classifier of numeric rows"
    input_columns = ("features",)
    input_flag = "--features-column"
    train_defaults = dict(epochs=8, batch_size=16, lr=0.05, weight_decay=0.0, optimizer="adamw")
    pipeline_tag = "tabular-classification"
    default_model = "points"
    local_files = ("scratch.bin",)
    explanation = "how much each number moved the top label"

    def fit(self, config, train_inputs):
        rows = torch.tensor(np.asarray(list(train_inputs), dtype=np.float32))
        config.width = rows.shape[1]
        config.mean, config.std = tuple(rows.mean(0).tolist()), tuple((rows.std(0) + 1e-6).tolist())
        return config

    def preprocessing(self, config):
        return {"standardise": "per column, training statistics", "width": config.width}

    def encode(self, config, raw):
        return to_row(config, raw)

    def make_batch(self, config, data, lengths, *, train, generator=None):
        return ((data - torch.tensor(config.mean)) / torch.tensor(config.std),)

    def build_model(self, config, num_labels, *, pretrained=False):
        return nn.Sequential(nn.Linear(config.width, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                             nn.Linear(config.hidden, num_labels))

    def save_extra(self, config, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "scratch.bin").write_bytes(b"training-only state")

    def prepare(self, config, raw):
        return self.make_batch(config, to_row(config, raw).unsqueeze(0), None, train=False)

    def explain(self, model, config, raw):
        (x,) = self.prepare(config, raw)
        x.requires_grad_(True)
        logits = model(x)
        logits[0, logits.argmax()].backward()
        return (x.grad * x)[0].tolist()

    def limitations(self, config):
        return [f"It reads {config['model']['width']} numbers and nothing else."]


@pytest.fixture
def tabular():
    task = register(TabularTask())
    yield task
    unregister(task.name)


def write_points(path, n_per_label: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for label, centre in CENTRES.items():
            for _ in range(n_per_label):
                f.write(json.dumps({"features": (rng.normal(size=2) * 0.5 + centre).tolist(), "label": label}) + "\n")


def test_a_task_registered_from_outside_goes_through_everything(tabular, tmp_path):
    from demo.predictor import Predictor, discover
    from training import checkpoint as ckpt
    from training.cli import main

    assert task_names()[-1] == "tabular" and get_task("tabular") is tabular
    data = tmp_path / "points.jsonl"
    write_points(data)
    out = tmp_path / "checkpoints" / "tabular" / "points"
    summary = main(["tabular", "--dataset", str(data), "--output", str(out), "--workers", "0", "--quiet",
                    "--val-fraction", "0.25", "--hidden", "8"])
    assert summary["best"]["accuracy"] >= 0.9

    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "tabular" and config["labels"] == sorted(CENTRES)
    assert config["model"]["width"] == 2 and config["model"]["hidden"] == 8 and len(config["model"]["mean"]) == 2
    assert config["preprocessing"]["feature_version"] == 1
    assert config["train_args"]["features_column"] is None and config["train_args"]["hidden"] == 8
    assert config["train_args"]["epochs"] == 8                                   # the task's own default
    model, _, task_config = ckpt.load_model(out)
    assert task_config.mean == tuple(config["model"]["mean"])

    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(data), "--split", "train", "--workers", "0"])
    assert report["num_examples"] == 3 * 40 and report["accuracy"] >= 0.9
    calibrated = main(["calibrate", "--checkpoint", str(out), "--workers", "0"])
    assert calibrated["num_validation"] == config["dataset"]["num_validation"] == 30

    card = (out / "README.md").read_text()
    assert "pipeline_tag: tabular-classification" in card and "It reads 2 numbers and nothing else." in card
    assert "A tabular classifier" in card

    predictor = Predictor.load(out)
    probs = predictor.predict([2.5, -0.5])
    assert max(probs, key=probs.get) == "high" and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(predictor.explain([2.5, -0.5])) == 2
    with pytest.raises(InputError, match="2 finite numbers"):
        predictor.predict([1.0, 2.0, 3.0])
    models = discover(tmp_path / "checkpoints", "tabular")
    assert models.names == ["points"] and models.get(None).name == "points" and not models.errors


def test_the_new_task_pushes_without_its_local_files(tabular, tmp_path):
    from training.cli import main
    from training.push import push

    data = tmp_path / "points.jsonl"
    write_points(data, 10)
    out = tmp_path / "points"
    main(["tabular", "--dataset", str(data), "--output", str(out), "--workers", "0", "--quiet", "--epochs", "1"])
    assert (out / "scratch.bin").is_file()

    class Api:
        def create_repo(self, *a, **k):
            pass

        def upload_folder(self, **k):
            self.ignored = k["ignore_patterns"]
            return "ok"

    api = Api()
    assert push(out, "you/points", api=api) == "ok"
    assert "scratch.bin" in api.ignored and "resume.pt" in api.ignored


def test_the_new_task_continues_with_init_from_and_keeps_its_rules(tabular, tmp_path):
    from training.cli import main

    data = tmp_path / "points.jsonl"
    write_points(data, 10)
    first, second = tmp_path / "first", tmp_path / "second"
    base = ["--dataset", str(data), "--workers", "0", "--quiet", "--epochs", "1"]
    main(["tabular", *base, "--output", str(first)])
    main(["tabular", *base, "--output", str(second), "--init-from", str(first), "--dropout", "0.2"])   # train-only
    config = json.loads((second / "config.json").read_text())
    assert config["init_from"]["checkpoint"] == str(first) and config["model"]["dropout"] == 0.2
    with pytest.raises(SystemExit, match="hidden 16 \\(this run: 4\\)"):
        main(["tabular", *base, "--output", str(tmp_path / "third"), "--init-from", str(first), "--hidden", "4"])


def test_a_checkpoint_of_another_feature_version_is_refused(tabular, tmp_path):
    from demo.predictor import discover
    from training import checkpoint as ckpt
    from training.cli import main

    data = tmp_path / "points.jsonl"
    write_points(data, 10)
    out = tmp_path / "checkpoints" / "tabular" / "points"
    main(["tabular", "--dataset", str(data), "--output", str(out), "--workers", "0", "--quiet", "--epochs", "1"])
    config = json.loads((out / "config.json").read_text())
    config["preprocessing"]["feature_version"] = 2
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ckpt.CheckpointError, match="preprocessing is version 2, and this code provides version 1"):
        ckpt.load_model(out)
    assert "version 2" in discover(tmp_path / "checkpoints", "tabular").errors["points"]


def test_the_demo_builds_without_a_tab_for_a_task_that_has_none(tabular, tmp_path):
    from demo.blocks import build_demo, load_models

    assert set(load_models(tmp_path, "cpu")) == {"image", "text", "speech"}
    assert build_demo(tmp_path, "cpu") is not None


def test_registering_refuses_a_taken_name_or_a_non_task():
    class Clash(TabularTask):
        name = "image"

    with pytest.raises(ValueError, match="already registered"):
        register(Clash())
    with pytest.raises(TypeError):
        register(object())
