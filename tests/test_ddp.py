"""`torchrun --nproc_per_node 2 -m training image ...`: two CPU processes (gloo), DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, image_rows, write_image_parquet

from training.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_two_process_gloo_run(tmp_path, capsys):
    root = tmp_path / "colours"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", image_rows(8))
    # 7 validation rows: rank 0 scores 4, rank 1 scores 3; only the sum across ranks counts all 7.
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", image_rows(3, seed=500)[:7])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training", "image", "--dataset", str(root), "--output", str(out), "--device", "cpu",
           "--epochs", "1", "--image-size", "16", "--batch-size", "4", "--width", "8", "--workers", "0", "--quiet",
           "--from-scratch"]
    # The timeout only keeps a hung rendezvous from hanging the suite.
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
                   and not p.is_relative_to(root))
    assert files == sorted(f"out/{n}" for n in ("model.safetensors", "config.json", "resume.pt", "metrics.json",
                                                 "confusion_matrix.png", "training_curves.png", "README.md"))

    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["metrics"]["num_examples"] == 7 and metrics["best"]["num_examples"] == 7
    assert {k: v["support"] for k, v in config["metrics"]["per_label"].items()} == {"red": 3, "green": 2, "blue": 2}
    assert config["hardware"].startswith("2 x cpu") and metrics["hardware"].startswith("2 x cpu")
    assert config["dataset"]["num_train"] == 24

    # One process scoring the whole split agrees with what the two ranks reported together.
    capsys.readouterr()
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(root), "--split", "validation",
                   "--workers", "0"])
    assert report["num_examples"] == 7
    assert report["accuracy"] == pytest.approx(config["metrics"]["accuracy"], abs=1e-6)
    assert report["per_label"] == config["metrics"]["per_label"]
