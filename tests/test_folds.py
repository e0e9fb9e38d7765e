"""K-fold cross-validation (--folds): folds of whole groups or stratified, every row scored once by the fold run
that did not train on it, figures per group, and a kept model trained on every row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.cli import main
from training.data import DatasetError, fold_of_rows


def test_folds_of_groups_are_disjoint_and_even():
    groups = ["a"] * 30 + ["b"] * 10 + ["c"] * 12 + ["d"] * 9 + ["e"] * 11 + ["f"] * 8
    fold = fold_of_rows(torch.zeros(len(groups), dtype=torch.long), 3, seed=0, groups=groups)
    for g in set(groups):
        assert len({fold[i] for i, x in enumerate(groups) if x == g}) == 1     # a group is in one fold
    sizes = np.bincount(fold, minlength=3)
    assert sizes.min() >= 20 and set(fold.tolist()) == {0, 1, 2}                # the largest group alone is one
    with pytest.raises(DatasetError, match="6 groups; each fold needs one"):
        fold_of_rows(torch.zeros(len(groups), dtype=torch.long), 7, seed=0, groups=groups)


def test_stratified_folds_share_each_label_evenly():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 21)
    fold = fold_of_rows(labels, 5, seed=3)
    for label in range(3):
        counts = np.bincount(fold[labels.numpy() == label], minlength=5)
        assert counts.max() - counts.min() <= 1, (label, counts)


def test_a_cross_validated_speech_run_records_its_out_of_fold_scores(tmp_path):
    from test_speech import TINY, make_audio_parquet

    from demo.predictor import Predictor

    data, out = make_audio_parquet(tmp_path / "words", per_label=10), tmp_path / "run"
    summary = main(["speech", "--dataset", str(data), "--output", str(out), "--group-column", "speaker_id",
                    "--folds", "5", *TINY, "--epochs", "2"])
    config = json.loads((out / "config.json").read_text())
    metrics, rows = config["metrics"], config["dataset"]["num_train"]
    assert config["dataset"]["validation"] == {"kind": "folds", "split": "train", "fraction": None, "by": "speaker_id",
                                               "seed": 0, "folds": 5}
    assert "5-fold cross-validation by speaker_id" in config["dataset"]["validation_split"]
    assert metrics["num_examples"] == rows == config["dataset"]["num_validation"] == 20     # every row, once
    assert sorted(metrics["by_group"]) == [f"spk{k}" for k in range(5)]
    folds = metrics["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3, 4, 5] and sum(f["num_examples"] for f in folds) == rows
    assert sorted(g for f in folds for g in f["groups"]) == [f"spk{k}" for k in range(5)]   # each speaker once
    right = sum(v["accuracy"] * v["num_examples"] for v in metrics["by_group"].values())
    assert right / rows == pytest.approx(metrics["accuracy"], abs=1e-4)
    assert metrics["epoch"] == 2 and config["train_args"]["keep"] == "last"   # the kept model: every row, 2 epochs
    planned = main(["speech", "--dataset", str(data), "--output", str(tmp_path / "plan"), "--group-column",
                    "speaker_id", "--folds", "5", *TINY, "--epochs", "2", "--dry-run"])["train_args"]
    assert planned["keep"] == "last" and planned["folds"] == 5                 # --dry-run plans what the run keeps
    assert "unsure" in metrics and config["unsure_threshold"] == metrics["unsure"]["threshold"]
    assert [h["epoch"] for h in summary["history"]] == [1, 2] and "val_accuracy" not in summary["history"][0]
    assert not list(tmp_path.glob(".run-folds-*"))                                  # the fold runs are gone
    Predictor.load(out)   # loads and serves like any checkpoint
    with pytest.raises(SystemExit, match="cross-validated .5 folds.: the model kept trained on every row"):
        main(["evaluate", "--checkpoint", str(out), "--dataset", str(data), "--split", "validation", "--workers", "0"])
    with pytest.raises(SystemExit, match="no held-out rows to score again"):
        main(["calibrate", "--checkpoint", str(out), "--workers", "0"])


def test_folds_refuse_a_dataset_with_its_own_validation_split(tmp_path):
    from conftest import make_image_parquet

    data = make_image_parquet(tmp_path / "colours", train_per_label=4, val_per_label=2)
    with pytest.raises(SystemExit, match="--folds 3: .* has a 'validation' split"):
        main(["image", "--dataset", str(data), "--output", str(tmp_path / "out"), "--folds", "3", "--from-scratch",
              "--quiet", "--workers", "0"])


def test_on_several_datasets_the_folds_are_the_first_ones_and_the_others_always_train(tmp_path):
    from test_speech import TINY, make_audio_parquet

    first = make_audio_parquet(tmp_path / "a", per_label=8, speakers=("p", "q", "r", "s"))
    other = make_audio_parquet(tmp_path / "b", per_label=6, speakers=("x", "y"))
    out = tmp_path / "run"
    main(["speech", "--dataset", str(first), "--dataset", str(other), "--output", str(out), "--group-column",
          "speaker_id", "--folds", "4", *TINY])
    config = json.loads((out / "config.json").read_text())
    metrics, sources = config["metrics"], config["dataset"]["sources"]
    assert metrics["num_examples"] == 16 == config["dataset"]["num_validation"]       # the first dataset's rows
    assert sorted(metrics["by_group"]) == ["p", "q", "r", "s"] and list(metrics["by_dataset"]) == [sources[0]["id"]]
    assert all(f["num_train"] == 16 - f["num_examples"] + 12 for f in metrics["folds"])   # + every row of the other
    assert config["dataset"]["num_train"] == 28                                         # the kept model: all rows
