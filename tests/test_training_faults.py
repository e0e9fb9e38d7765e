"""Training faults, each in a real subprocess: SIGKILL in the middle of an epoch then `--resume` ends with
the same weights as an uninterrupted run; a kill during a save never leaves a half-written file; bad data
stops the CLI with a message naming the problem.

The kills are placed by a hook, not by timing: the child runs the ordinary CLI with one function wrapped
(see HOOK), which, at the chosen point, writes a flag file and then waits to be killed. The test waits for
the flag, sends SIGKILL and waits for the process to end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, image_rows, write_image_parquet
from training.checkpoint import load_resume

ARGS = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--threads", "1", "--quiet", "--width", "8",
        "--epochs", "3", "--seed", "7"]

# Runs `python -m training` in the child with a hook. argv: <where> <output> <flag> <cli args...>
# where = "step": block at the 3rd training step after resume.pt first appears (the middle of epoch 2);
#         "save_weights" / "save_resume": block inside the first write of model.safetensors / resume.pt,
#         after half of the file's bytes are on disk.
HOOK = r"""
import sys, threading
from pathlib import Path
where, out, flag, argv = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]

def stop_here():
    flag.write_text(where)
    threading.Event().wait()        # until SIGKILL

import torch
import training.checkpoint as ckpt
import training.tasks.image as image
if where == "step":
    real_batch, seen = image.TASK.make_batch, [0]
    def make_batch(*a, **k):
        if k.get("train") and (out / "resume.pt").exists():
            seen[0] += 1
            if seen[0] == 3:
                stop_here()
        return real_batch(*a, **k)
    image.TASK.make_batch = make_batch
else:
    def half_then_stop(write):
        def writer(obj, path, *a, **k):
            write(obj, path, *a, **k)
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            stop_here()
        return writer
    if where == "save_weights":
        ckpt.save_file = half_then_stop(ckpt.save_file)
    else:
        torch.save = half_then_stop(torch.save)
from training.cli import main
main(argv)
"""


def cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_until_killed(where: str, dataset: Path, out: Path, *extra: str) -> None:
    flag = out.parent / f"{out.name}.{where}.flag"
    proc = subprocess.Popen([sys.executable, "-c", HOOK, where, str(out), str(flag), "image", "--dataset",
                             str(dataset), "--output", str(out), *ARGS, *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the hook ({proc.returncode}): {proc.stdout.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the hook was never reached")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stdout.close()


@pytest.fixture(scope="module")
def whole(colours_parquet, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("whole") / "run"
    r = cli("image", "--dataset", str(colours_parquet), "--output", str(out), *ARGS)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].double(), b[name].double(), rtol=0, atol=1e-6), name


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(colours_parquet, whole, tmp_path):
    out = tmp_path / "cut"
    run_until_killed("step", colours_parquet, out)
    state = load_resume(out)
    assert state["epoch"] == 1     # killed in epoch 2: only epoch 1 was saved
    r = cli("image", "--dataset", str(colours_parquet), "--output", str(out), *ARGS, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert [h["epoch"] for h in load_resume(out)["history"]] == [1, 2, 3]
    assert_same_weights(load_resume(whole)["model"], load_resume(out)["model"])
    assert_same_weights(load_file(whole / "model.safetensors"), load_file(out / "model.safetensors"))


@pytest.mark.parametrize("where,name", [("save_weights", "model.safetensors"), ("save_resume", "resume.pt")])
def test_a_kill_during_a_save_leaves_the_previous_file(colours_parquet, whole, tmp_path, where, name):
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    before = (out / name).read_bytes()
    run_until_killed(where, colours_parquet, out)   # a new run into the same folder, killed inside its first save
    assert (out / name).read_bytes() == before, f"{name} was changed by a save that did not finish"
    # Both files still load, and a resumed run completes.
    from training.checkpoint import load_model
    load_model(out, "cpu")
    assert load_resume(out)["epoch"] == 3
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert all(p.startswith(f".{name}.") for p in leftovers), leftovers   # only the unfinished temp file


# ------------------------------------------------------------------------------------------- bad data
# Through the CLI's main(argv) in-process (what `python -m training` runs), so each costs no interpreter start.

def cli_error(dataset, tmp_path, *extra) -> str:
    from training.cli import main

    with pytest.raises(SystemExit) as info:
        main(["image", "--dataset", str(dataset), "--output", str(tmp_path / "out"), *ARGS, *extra])
    message = str(info.value.code)
    assert message.startswith("error: ") and not (tmp_path / "out" / "model.safetensors").exists()
    return message


def test_a_label_outside_the_label_list_stops_the_cli(tmp_path, torch_one_thread):
    root = tmp_path / "d"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", image_rows(2), string_labels=True)
    odd = ("red", "green", "blue", "zebra")
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", image_rows(1, labels=odd),
                        labels=odd, string_labels=True)
    message = cli_error(root, tmp_path)
    assert "'zebra'" in message and "validation" in message


@pytest.mark.parametrize("split", ["train", "validation"])
def test_an_empty_split_stops_the_cli(tmp_path, split, torch_one_thread):
    root = tmp_path / "d"
    for s in ("train", "validation"):
        write_image_parquet(root / "data" / f"{s}-00000-of-00001.parquet", [] if s == split else image_rows(2))
    message = cli_error(root, tmp_path)
    assert f"'{split}'" in message and "empty" in message


@pytest.mark.parametrize("flag,column,expected", [
    (None, "target", ["'target'", "--label-column"]),          # no label column found by its usual names
    ("--label-column", "nope", ["nope", "'target'"]),
    ("--image-column", "nope", ["--image-column nope", "'image'"]),
])
def test_a_missing_column_stops_the_cli(tmp_path, flag, column, expected, torch_one_thread):
    path = write_image_parquet(tmp_path / "d.parquet", image_rows(2), label_column="target")
    message = cli_error(path, tmp_path, *([flag, column] if flag else []))
    assert all(e in message for e in expected), message
