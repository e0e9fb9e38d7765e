"""Training speed: the real engine against a minimal loop over the same model (the limit), per task.

    .venv/bin/python bench/train.py [--tasks image text speech] [--samples 2000] [--epochs 2] [--threads 2]
    .venv/bin/python bench/train.py --samples 512 --tasks text      # a quick run

For each task, the engine (`training.cli.main`, in this process) trains on `--samples` rows of
`--data/<dataset>` (../shared/data by default; small generated datasets when it is absent: CIFAR-sized
random images, short sentences, one-second tone clips). A wrapper around `engine.train_one_epoch` captures
what the engine trains with (model, decoded tensors, optimizer settings, loss weights) and, after each
engine epoch, runs the limit on a copy of the same model in the same process with the same threads: the
epoch's batches already prepared in memory as model-input tensors (no augmentation, no indexing, no
feature extraction), the same batch size, loss and optimizer step (`training.optim.make_optimizer`, the same
schedule, gradient clipping), and the same memory format as the engine's batches. The last epoch of each
(the first warms up) gives samples per wall second and per CPU second of this process; the ratio engine /
limit has the goal >= 0.9 on CPU. On a shared machine read the CPU-second ratio (with --threads 1 it counts
work, not waiting for a core); the wall ratio swings with the other load between the two epochs.

Then the time from the command to the first training step: `python -m training <task> ...` in a
subprocess, with an empty tensor cache (decoding included) and again with the cache filled. The engine
records `seconds_to_first_step` from the start of `engine.run`; the start-up of the interpreter and the
imports before it are the process's wall time minus the engine's `total_seconds`.

Prints a table; asserts nothing. The machine is shared and noisy: `--repeat` and read the medians.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DATASETS = {"image": "cifar10", "text": "emotion", "speech": "speech_commands"}


# ------------------------------------------------------------------------------------------------ data

def generated(task: str, root: Path, n: int) -> Path:
    """A small dataset for `task` when ../shared/data is absent (a user's machine)."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / f"generated_{task}"
    if folder.exists():
        return folder
    if task == "image":   # imagefolder: CIFAR-sized PNGs in class subfolders
        from PIL import Image
        for i in range(n):
            d = folder / f"label{i % 10}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    elif task == "text":   # one CSV with text and label columns, emotion-like sentences
        import csv
        words = "i feel so happy sad angry afraid loved surprised today when my friend called me again".split()
        folder.mkdir(parents=True)
        with open(folder / "train.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for i in range(n):
                w.writerow([" ".join(rng.choice(words, rng.integers(5, 40))), f"label{i % 6}"])
    else:   # parquet in Hub layout: one-second 16 kHz clips as FLAC bytes, as speech_commands holds them
        import pyarrow as pa
        import pyarrow.parquet as pq
        import soundfile as sf
        rows = []
        for i in range(n):
            t = np.arange(16_000) / 16_000
            wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * (i % 10)) * t) + 0.01 * rng.standard_normal(16_000)
            buf = io.BytesIO()
            sf.write(buf, wave.astype(np.float32), 16_000, format="FLAC")
            rows.append({"audio": {"bytes": buf.getvalue(), "path": f"{i}.flac"}, "label": f"label{i % 10}"})
        (folder / "data").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / "data" / "train-00000-of-00001.parquet")
    return folder


def dataset_for(task: str, data: Path, scratch: Path, n: int) -> str:
    real = data / DATASETS[task]
    return str(real) if real.is_dir() else str(generated(task, scratch, n))


def command(task: str, dataset: str, args, output: Path, epochs: int) -> list[str]:
    return [task, "--dataset", dataset, "--max-train-samples", str(args.samples), "--max-eval-samples",
            str(args.eval_samples), "--epochs", str(epochs), "--threads", str(args.threads), "--output",
            str(output), "--quiet", *shlex.split(args.extra_args)]


# ------------------------------------------------------------------------------------------- the limit

def prepared_epoch(captured: dict) -> list:
    """The epoch's batches as model inputs, computed before timing starts: the limit does no data work."""
    task, config, train = captured["task"], captured["config"], captured["train"]
    data, lengths, labels = captured["data"], captured["lengths"], captured["labels"]
    import torch

    bs = train.batch_size
    steps = len(labels) // bs if len(labels) > bs else 1
    # The memory format the engine's training batches arrive in: the image task's GPU-style crop+flip
    # yields channels_last tensors, and oneDNN's convolutions are faster on them on CPU too, so an NCHW
    # limit would be slower than the engine itself (measured: engine / limit 1.2-1.8).
    probe = task.make_batch(config, data[:bs], lengths[:bs], train=True, generator=torch.Generator().manual_seed(0))
    nhwc = [x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            for x in probe]
    batches = []
    for step in range(steps):
        idx = slice(step * bs, (step + 1) * bs)
        inputs = task.make_batch(config, data[idx], lengths[idx], train=False)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) if cl else x.clone() for x, cl in zip(inputs, nhwc))
        batches.append((inputs, labels[idx].clone()))
    return batches


def limit_epoch(captured: dict, batches: list) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second) of forward + loss + backward + optimizer step over
    `batches`, on a copy of the model."""
    import torch
    from torch import nn
    from torch.nn import functional as F
    from training.optim import make_optimizer, make_schedule

    train = captured["train"]
    model = copy.deepcopy(captured["model"])
    model.train()
    optimizer = make_optimizer(model, train)
    scheduler = make_schedule(optimizer, len(batches) * 2, train.warmup_fraction)
    weight = captured["loss_weight"]
    seen, start, cpu = 0, time.perf_counter(), time.process_time()
    for inputs, y in batches:
        loss = F.cross_entropy(model(*inputs).float(), y, weight=weight, label_smoothing=train.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        scheduler.step()
        seen += len(y)
    torch.tensor(0.0).add_(loss.detach())   # the engine reads the loss too (every 10 steps)
    return seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)


def engine_vs_limit(task_name: str, dataset: str, args, scratch: Path) -> dict:
    """Engine and limit samples per wall second and per CPU second, of the last epoch, alternating in this
    process. Per CPU second is the steadier figure on a shared machine: with one torch thread it counts the
    work done, not the time spent waiting for a core that other processes hold."""
    from training import cli, engine

    original = engine.train_one_epoch
    engine_sps, limit_sps, engine_cpu, limit_cpu = [], [], [], []

    def wrapped(model, task, config, data, lengths, labels, optimizer, scheduler, *, train, loss_weight=None, **kw):
        cpu = time.process_time()
        stats = original(model, task, config, data, lengths, labels, optimizer, scheduler, train=train,
                         loss_weight=loss_weight, **kw)
        cpu = time.process_time() - cpu
        bs = train.batch_size
        engine_sps.append(stats["samples_per_s"])
        engine_cpu.append((len(labels) // bs * bs if len(labels) > bs else len(labels)) / cpu)
        captured = dict(task=task, config=config, train=train, data=data, lengths=lengths, labels=labels,
                        model=model, loss_weight=loss_weight)
        wall, per_cpu = limit_epoch(captured, prepared_epoch(captured))
        limit_sps.append(wall)
        limit_cpu.append(per_cpu)
        return stats
    engine.train_one_epoch = wrapped
    try:
        cli.main(command(task_name, dataset, args, scratch / f"out_{task_name}", args.epochs))
    finally:
        engine.train_one_epoch = original
    return {"engine": engine_sps[-1], "limit": limit_sps[-1], "ratio": engine_sps[-1] / limit_sps[-1],
            "engine_cpu": engine_cpu[-1], "limit_cpu": limit_cpu[-1], "cpu_ratio": engine_cpu[-1] / limit_cpu[-1]}


# ------------------------------------------------------------------------------------ first step

def first_step(task: str, dataset: str, args, scratch: Path, cache: Path) -> tuple[float, float]:
    """(command -> first step, engine.run -> first step) in seconds, for one `python -m training` process."""
    out = scratch / f"first_{task}"
    env = {**os.environ, "TRIPTYCH_CACHE": str(cache)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training", *command(task, dataset, args, out, 1)], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    return wall - m["total_seconds"] + m["seconds_to_first_step"], m["seconds_to_first_step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=tuple(DATASETS), default=list(DATASETS))
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with cifar10/, emotion/, speech_commands/ (default: ../shared/data; generated if absent)")
    p.add_argument("--samples", type=int, default=2000, help="training rows per task")
    p.add_argument("--eval-samples", type=int, default=256, help="validation rows per task")
    p.add_argument("--epochs", type=int, default=2, help="engine epochs; the last is measured")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads, engine and limit (default 1: the CPU-second figures then count work only)")
    p.add_argument("--repeat", type=int, default=1, help="repeat; medians are printed")
    p.add_argument("--extra-args", default="", help="more training flags for every task's engine run, e.g. the "
                   "speech recipe's rooms and channels: \"--reverb-prob 0.5 --band-prob 0.3 --gain-db 6 --clip-prob 0.1\"")
    args = p.parse_args()

    import torch
    print(f"{os.cpu_count()} cores, --threads {args.threads}, {args.samples} samples, {args.epochs} epochs "
          f"(last measured), torch {torch.__version__}; goal engine / limit >= 0.9", flush=True)
    header = (f"{'task':<8}{'engine/s':>10}{'limit/s':>10}{'ratio':>7}{'eng/cpu-s':>10}{'lim/cpu-s':>10}{'cpu ratio':>10}"
              f"{'cmd->step cold':>16}{'warm':>7}{'engine.run->step warm':>23}")
    rows = {t: [] for t in args.tasks}
    with tempfile.TemporaryDirectory(prefix="triptych_bench_") as tmp:
        scratch = Path(tmp)
        os.environ["TRIPTYCH_CACHE"] = str(scratch / "cache")   # this run's cache, not the user's
        for r in range(args.repeat):
            print(f"run {r + 1}/{args.repeat}\n{header}", flush=True)
            for task in args.tasks:
                dataset = dataset_for(task, args.data, scratch, args.samples)
                cold_cache = scratch / f"cold_{task}_{r}"
                cold, _ = first_step(task, dataset, args, scratch, cold_cache)
                warm, warm_engine = first_step(task, dataset, args, scratch, cold_cache)
                row = {**engine_vs_limit(task, dataset, args, scratch), "cold": cold, "warm": warm,
                       "warm_engine": warm_engine}
                rows[task].append(row)
                print_row(task, row)
        if args.repeat > 1:
            print(f"median of {args.repeat} runs\n{header}")
            for task, rs in rows.items():
                print_row(task, {k: statistics.median(x[k] for x in rs) for k in rs[0]})


def print_row(task: str, r: dict) -> None:
    print(f"{task:<8}{r['engine']:>10.1f}{r['limit']:>10.1f}{r['ratio']:>7.2f}{r['engine_cpu']:>10.1f}"
          f"{r['limit_cpu']:>10.1f}{r['cpu_ratio']:>10.2f}{r['cold']:>16.2f}{r['warm']:>7.2f}"
          f"{r['warm_engine']:>23.2f}", flush=True)


if __name__ == "__main__":
    main()
