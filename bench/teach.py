"""Teach: how long a taught model takes on this machine, and how good it is, on real staged data.

    .venv/bin/python bench/teach.py [--speed] [--quality] [--data ../shared/data] [--seed 0]
    .venv/bin/python bench/teach.py --quality --only sound --seed 2     # another held-out speaker

Every figure comes from `demo.teach.teach(project, output)`, the function the Teach tab calls, on a
`Project` built from the staged datasets (../shared/data) exactly as a visitor's would be: sample files
in a folder (PNG images, WAV clips; the clips decoded with soundfile and written as WAV) or lines of text,
drawn with `--seed`. The process first imports and loads what `app.py` loads at start-up, so a run pays
what a visitor's first teach pays in the running app; torch teaches with the app's own thread count (cores /
concurrent requests, as the tab does; `--teach-threads` to compare).

--speed: wall time from the call to `teach()` to its return (writing the samples as a dataset, decoding,
building the model, training until the recipe's --patience stops it, the model card), epochs run, the best
epoch and the time from the call to the end of that epoch (from `Hooks.on_epoch`), the time to the first
step (from `Hooks.on_step`), this process's CPU seconds, and the 1-minute load average at the call (on a
shared machine they show what else ran). Goals: 3 image classes x 30 photos <= 60 s; 3 words x 10 clips + 20 s of background noise
<= 30 s; 3 text classes x 50 lines <= 30 s.

--quality: teach, then score the taught model with `demo.predictor.Predictor` (the demo's own path, one
input at a time, the app's serving threads) on data it never saw:
- image: 20 CIFAR-10 training images per class (all 10 classes), scored on the validation rows the
  shipped checkpoints/image/cifar10 held out (`training.evaluate.recorded_splits`), `--image-eval` per class;
- sound: 10 Free Spoken Digit clips per digit from the speakers it trains on, scored on every clip of one
  held-out speaker (the `--seed`-th in name order);
- text: 30 emotion training sentences per label, scored on the emotion validation split (`--text-eval`
  rows, drawn with the seed; 0: all 2,000).
The teach's own validation score (demo.teach.VAL_FRACTION of the samples, held out by teach itself, their
count in brackets) is printed beside it.

Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHECKPOINTS = REPO / "checkpoints"
NOISE_SECONDS = 20.0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", action="store_true", help="time the three speed configurations")
    p.add_argument("--quality", action="store_true", help="teach on staged data and score on held-out data")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with cifar10/, emotion/, fsdd/, speech_commands/ (default: ../shared/data)")
    p.add_argument("--seed", type=int, default=0, help="which classes and samples are drawn")
    p.add_argument("--only", nargs="+", choices=("image", "sound", "text"), default=("image", "sound", "text"),
                   help="which projects to run (default: all three)")
    p.add_argument("--repeat", type=int, default=1, help="speed: run each configuration this many times")
    p.add_argument("--teach-threads", type=int, default=0,
                   help="torch threads while teaching (default: the app's, cores / concurrent requests, as the Teach tab)")
    p.add_argument("--image-eval", type=int, default=100,
                   help="quality: held-out CIFAR-10 images per class (0: all 500)")
    p.add_argument("--text-eval", type=int, default=0, help="quality: emotion validation rows (0: all 2,000)")
    return p


# ------------------------------------------------------------------------------------------------ data

def load_split(folder: Path, split: str = "train"):
    """One split of a staged dataset; audio stays encoded bytes (decoded with soundfile below)."""
    import datasets

    ds = datasets.load_dataset(str(folder), split=split)
    if "audio" in ds.column_names:
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
    return ds


def rows_by_label(labels: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        out.setdefault(int(y), []).append(i)
    return out


def decode_audio(audio: dict):
    """(samples, sample rate) of a staged clip's encoded bytes, as training/tasks/speech/audio.py reads them."""
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(audio["bytes"]), dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def write_wav(samples, rate: int, path: Path) -> str:
    import soundfile as sf

    sf.write(path, samples, rate, subtype="PCM_16")
    return str(path)


def pil_image(value):
    """A dataset's image value as a PIL image: decoded already, or the encoded {"bytes", "path"} dict."""
    from PIL import Image

    return Image.open(io.BytesIO(value["bytes"])) if isinstance(value, dict) else value


def image_files(ds, rows: list[int], folder: Path, column: str = "img") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in rows:
        path = folder / f"{i}.png"
        pil_image(ds[i][column]).convert("RGB").save(path)
        out.append(str(path))
    return out


def clip_files(ds, rows: list[int], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_wav(*decode_audio(ds[i]["audio"]), folder / f"{i}.wav") for i in rows]


# ------------------------------------------------------------------------------------------ teach, timed

def warm_like_the_app() -> int:
    """What `app.py` has done before a visitor can press Train: its imports, every shipped model loaded, and
    its serving threads (cores / CONCURRENCY), which the scoring below uses too. Returns that thread count."""
    import torch

    from app import CONCURRENCY
    from demo.predictor import discover

    for task in ("image", "text", "speech"):
        discover(CHECKPOINTS, task)
    threads = max(1, (os.cpu_count() or 1) // CONCURRENCY)
    torch.set_num_threads(threads)
    return threads


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_teach(project, output: Path, threads: int) -> dict:
    """teach()'s result, plus when (seconds since the call) the first step and each epoch ended. Torch
    runs `threads` threads meanwhile (0: the app's serving count, as the Teach tab does) and the serving count after."""
    import torch

    from demo.teach import teach
    from training.engine import Hooks

    marks: dict = {"epochs": []}

    def on_step(epoch, step, steps, loss):
        marks.setdefault("first_step", time.perf_counter() - t0)

    def on_epoch(row):
        marks["epochs"].append((row["epoch"], time.perf_counter() - t0, row["val_accuracy"]))

    t0 = time.perf_counter()
    load, cpu, serving = os.getloadavg()[0], cpu_seconds(), torch.get_num_threads()
    torch.set_num_threads(threads or serving)
    try:
        result = teach(project, output, checkpoints=CHECKPOINTS, hooks=Hooks(on_step=on_step, on_epoch=on_epoch))
    finally:
        torch.set_num_threads(serving)
    wall = time.perf_counter() - t0
    best_at = next((s for e, s, _ in marks["epochs"] if e == result["best_epoch"]), float("nan"))
    return {**result, "wall": wall, "cpu": cpu_seconds() - cpu, "first_step": marks.get("first_step", float("nan")),
            "best_at": best_at, "load": load, "curve": [a for _, _, a in marks["epochs"]]}


# ------------------------------------------------------------------------------------------------ speed

def image_speed_project(data: Path, rng: random.Random, folder: Path):
    from demo.teach import Project

    ds = load_split(data / "cifar10")
    names, rows = ds.features["label"].names, rows_by_label(ds["label"])
    classes = sorted(rng.sample(range(len(names)), 3))
    samples = {names[c]: image_files(ds, rng.sample(rows[c], 30), folder / names[c]) for c in classes}
    return Project("image", samples), f"CIFAR-10 {', '.join(names[c] for c in classes)}: 30 PNGs each"


def noise_recording(ds, rows: list[int], path: Path) -> str:
    """NOISE_SECONDS of the dataset's `_silence_` clips (background-noise recordings), end to end, as one WAV."""
    import numpy as np

    pieces, rate, total = [], None, 0
    for i in rows:
        samples, rate = decode_audio(ds[i]["audio"])
        pieces.append(samples)
        total += len(samples)
        if total >= NOISE_SECONDS * rate:
            break
    return write_wav(np.concatenate(pieces)[:int(NOISE_SECONDS * rate)], rate, path)


def sound_speed_project(data: Path, rng: random.Random, folder: Path):
    from demo.teach import Project

    ds = load_split(data / "speech_commands" / "v0.02")
    names, rows = ds.features["label"].names, rows_by_label(ds["label"])
    words = sorted(rng.sample([c for c, n in enumerate(names) if not n.startswith("_")], 3))
    samples = {names[c]: clip_files(ds, rng.sample(rows[c], 10), folder / names[c]) for c in words}
    silence = rng.sample(rows[names.index("_silence_")], len(rows[names.index("_silence_")]))
    noise = noise_recording(ds, silence, folder / "noise.wav")
    return (Project("speech", samples, [noise]),
            f"speech_commands {', '.join(names[c] for c in words)}: 10 WAVs each; {NOISE_SECONDS:g} s of its "
            "_silence_ clips")


def text_speed_project(data: Path, rng: random.Random, folder: Path):
    from demo.teach import Project

    ds = load_split(data / "emotion")
    names, rows = ds.features["label"].names, rows_by_label(ds["label"])
    labels = sorted(rng.sample(range(len(names)), 3))
    texts = ds["text"]
    samples = {names[c]: [texts[i] for i in rng.sample(rows[c], 50)] for c in labels}
    return Project("text", samples), f"emotion {', '.join(names[c] for c in labels)}: 50 lines each"


SPEED = (("image", image_speed_project, 60.0), ("sound", sound_speed_project, 30.0),
         ("text", text_speed_project, 30.0))


def run_speed(args, scratch: Path) -> None:
    print(f"\nSpeed: teach() wall time, {os.cpu_count()} cores, torch threads {args.teach_threads}")
    print(f"{'project':<8}{'goal s':>7}{'wall s':>8}{'met':>5}{'1st step s':>11}{'epochs':>7}{'best':>5}"
          f"{'to best s':>10}{'CPU s':>7}{'load':>6}{'val acc':>8}  samples")
    for r in range(args.repeat):
        for name, build, goal in (s for s in SPEED if s[0] in args.only):
            folder = scratch / f"speed-{name}-{r}"
            project, what = build(args.data, random.Random(args.seed), folder / "samples")
            t = timed_teach(project, folder / "model", args.teach_threads)
            print(f"{name:<8}{goal:>7.0f}{t['wall']:>8.1f}{'yes' if t['wall'] <= goal else 'no':>5}"
                  f"{t['first_step']:>11.1f}{t['epochs']:>7}{t['best_epoch']:>5}{t['best_at']:>10.1f}{t['cpu']:>7.1f}"
                  f"{t['load']:>6.1f}{t['accuracy']:>8.3f}  {what}", flush=True)


# ---------------------------------------------------------------------------------------------- quality

def score(folder: Path, items: list[tuple[object, str]]) -> tuple[dict, float]:
    """(scores of the taught model on (raw input, label) pairs: accuracy, macro_f1, per_label; seconds taken)."""
    import torch

    from demo.predictor import Predictor
    from training.metrics import confusion_matrix, from_confusion

    predictor = Predictor.load(folder)
    labels = predictor.labels
    t = time.perf_counter()
    preds = [labels.index(max((p := predictor.predict(raw)), key=p.get)) for raw, _ in items]
    seconds = time.perf_counter() - t
    targets = torch.tensor([labels.index(y) for _, y in items])
    return from_confusion(confusion_matrix(torch.tensor(preds), targets, len(labels)), labels), seconds


def image_quality(args, rng: random.Random, folder: Path) -> tuple[dict, list, str]:
    from demo.teach import Project
    from training.evaluate import recorded_splits

    config = json.loads((CHECKPOINTS / "image" / "cifar10" / "config.json").read_text(encoding="utf-8"))
    splits = recorded_splits(config, args.data / "cifar10")
    names, col = splits.labels, splits.input_column
    train, val = rows_by_label(splits.train_labels.tolist()), rows_by_label(splits.val_labels.tolist())
    samples = {names[c]: image_files(splits.train, rng.sample(rows, 20), folder / names[c], col)
               for c, rows in sorted(train.items())}
    held = [(pil_image(splits.val[i][col]), names[c]) for c, rows in sorted(val.items())
            for i in (rng.sample(rows, args.image_eval) if args.image_eval else rows)]
    return samples, held, (f"20 per class x 10; {len(held)} held-out rows of checkpoints/image/cifar10's "
                           f"validation split ({len(held) // 10} per class)")


def sound_quality(args, rng: random.Random, folder: Path) -> tuple[dict, list, str]:
    ds = load_split(args.data / "fsdd")
    names, speakers = ds.features["label"].names, ds["speaker"]
    held_out = sorted(set(speakers))[args.seed % len(set(speakers))]
    rows = rows_by_label(ds["label"])
    samples = {names[c]: clip_files(ds, rng.sample([i for i in rs if speakers[i] != held_out], 10), folder / names[c])
               for c, rs in sorted(rows.items())}
    labels = ds["label"]
    held = [(ds[i]["audio"]["bytes"], names[labels[i]]) for i, s in enumerate(speakers) if s == held_out]
    return samples, held, (f"10 per digit x 10 from 4 speakers; all {len(held)} clips of held-out speaker "
                           f"'{held_out}'")


def text_quality(args, rng: random.Random, folder: Path) -> tuple[dict, list, str]:
    train, val = load_split(args.data / "emotion"), load_split(args.data / "emotion", "validation")
    names, texts, rows = train.features["label"].names, train["text"], rows_by_label(train["label"])
    samples = {names[c]: [texts[i] for i in rng.sample(rs, 30)] for c, rs in sorted(rows.items())}
    keep = sorted(rng.sample(range(len(val)), args.text_eval)) if args.text_eval else range(len(val))
    held = [(val[i]["text"], names[val[i]["label"]]) for i in keep]
    return samples, held, f"30 per label x 6; {len(held)} rows of the emotion validation split"


QUALITY = (("image", "image", image_quality), ("sound", "speech", sound_quality), ("text", "text", text_quality))


def run_quality(args, scratch: Path, threads: int) -> None:
    from demo.teach import Project

    print(f"\nQuality: teach ({args.teach_threads} torch thread(s)) on staged data, then accuracy on held-out data "
          f"(Predictor.predict, one input at a time, {threads} thread(s) as app.py serves)")
    print(f"{'project':<8}{'held-out acc':>13}{'macro-F1':>9}{'teach val acc':>14}{'wall s':>8}{'epochs':>7}"
          f"{'best':>5}{'score s':>8}{'load':>6}  data")
    for name, task, build in (q for q in QUALITY if q[0] in args.only):
        folder = scratch / f"quality-{name}"
        samples, held, what = build(args, random.Random(args.seed), folder / "samples")
        t = timed_teach(Project(task, samples), folder / "model", args.teach_threads)
        scores, seconds = score(folder / "model", held)
        print(f"{name:<8}{scores['accuracy']:>13.3f}{scores['macro_f1']:>9.3f}"
              f"{t['accuracy']:>9.3f} ({t['num_validation']:>2}){t['wall']:>8.1f}{t['epochs']:>7}{t['best_epoch']:>5}"
              f"{seconds:>8.1f}{t['load']:>6.1f}  {what}", flush=True)
        recall = ", ".join(f"{k} {v['recall']:.2f}" for k, v in scores["per_label"].items())
        print(f"{'':<8}per-label recall: {recall}", flush=True)


def main(argv=None) -> None:
    args = get_args_parser().parse_args(argv)
    if not (args.speed or args.quality):
        args.speed = args.quality = True
    import torch

    threads = warm_like_the_app()
    args.teach_threads = args.teach_threads or threads
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, seed {args.seed}, data {args.data}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="triptych_teach_bench_") as tmp:
        if args.speed:
            run_speed(args, Path(tmp))
        if args.quality:
            run_quality(args, Path(tmp), threads)


if __name__ == "__main__":
    main()
