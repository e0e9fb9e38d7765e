"""What the plain training commands give a user on their own small data, beside the from-scratch defaults.

    .venv/bin/python bench/defaults.py [--data ../shared/data] [--only image text speech] [--seed 0] [--threads 2]

Each set is laid out as a user's own would be, trained by `python -m training <task> --dataset <it>` with no
other flag (the default recipe, chosen from the data) and again with `--from-scratch` (the settings' own
defaults), in a subprocess, each run carving its own validation rows; then scored by `python -m training
evaluate` (the demo's path) on rows no run saw:
- image: hymenoptera's training photos (ants, bees: 245 real photos, longer side <= 500 px) as class folders;
  scored on its 153 validation photos;
- text: 30 questions per TREC coarse type (6 types, drawn with the seed) as a text,label CSV; scored on TREC's
  499 test questions;
- speech: one Free Spoken Digit speaker's 10 clips per digit (drawn with the seed, the speaker the seed-th in
  name order) as an audio folder of WAVs; scored on that speaker's other 400 clips.
Wall time is the training command's, on this machine's cores (`--threads` torch threads). Prints a Markdown
table for bench/RESULTS.md; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with hymenoptera/, trec/ and fsdd/ (default: ../shared/data)")
    p.add_argument("--only", nargs="+", choices=("image", "text", "speech"), default=("image", "text", "speech"))
    p.add_argument("--seed", type=int, default=0, help="which rows and which speaker are drawn")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every run (default: %(default)s)")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs' folders here (default: a temporary one)")
    return p


# ------------------------------------------------------------------------------------------- the sets

def image_set(data: Path, folder: Path, seed: int) -> tuple[Path, list[str]]:
    """hymenoptera/train as the user's class folders (links to the photos); scored on hymenoptera/validation."""
    photos = folder / "photos"
    for label in sorted((data / "hymenoptera" / "train").iterdir()):
        (photos / label.name).mkdir(parents=True)
        for path in sorted(label.iterdir()):
            (photos / label.name / path.name).symlink_to(path)
    return photos, ["--dataset", str(data / "hymenoptera"), "--split", "validation"]


def text_set(data: Path, folder: Path, seed: int) -> tuple[Path, list[str]]:
    """30 TREC training questions per coarse type as a CSV; scored on TREC's test split."""
    import csv

    import datasets

    train = datasets.load_dataset(str(data / "trec"), split="train")
    names = train.features["label"].names
    by_label: dict[int, list[str]] = {}
    for text, label in zip(train["text"], train["label"]):
        by_label.setdefault(label, []).append(text)
    rng = random.Random(seed)
    path = folder / "questions.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, texts in sorted(by_label.items()):
            writer.writerows((t, names[label]) for t in rng.sample(texts, 30))
    return path, ["--dataset", str(data / "trec"), "--split", "test"]


def speech_set(data: Path, folder: Path, seed: int) -> tuple[Path, list[str]]:
    """One FSDD speaker: 10 clips per digit as WAVs in digit folders; their other clips as a test split."""
    import io

    import datasets
    import soundfile as sf

    ds = datasets.load_dataset(str(data / "fsdd"), split="train").cast_column("audio", datasets.Audio(decode=False))
    speaker = sorted(set(ds["speaker"]))[seed % len(set(ds["speaker"]))]
    mine = ds.filter(lambda row: row["speaker"] == speaker)
    names, rng = mine.features["label"].names, random.Random(seed)
    rows = list(range(len(mine)))
    rng.shuffle(rows)
    chosen, counts = set(), {}
    for i in rows:
        label = mine[i]["label"]
        if counts.get(label, 0) < 10:
            counts[label] = counts.get(label, 0) + 1
            chosen.add(i)
    clips = folder / "digits"
    for i in sorted(chosen):
        row = mine[i]
        samples, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        (clips / names[row["label"]]).mkdir(parents=True, exist_ok=True)
        sf.write(clips / names[row["label"]] / f"{i:04d}.wav", samples, rate, subtype="PCM_16")
    held = folder / "held_out"
    (held / "data").mkdir(parents=True)
    mine.select([i for i in range(len(mine)) if i not in chosen]).to_parquet(str(held / "data" / "test-00000-of-00001.parquet"))
    print(f"speech: speaker {speaker}, {len(chosen)} clips to train on, {len(mine) - len(chosen)} held out", file=sys.stderr)
    return clips, ["--dataset", str(held), "--split", "test"]


SETS = {"image": image_set, "text": text_set, "speech": speech_set}


# ------------------------------------------------------------------------------------------------ runs

def train_and_score(task: str, dataset: Path, score: list[str], out: Path, extra: list[str], threads: int) -> dict:
    """Wall time of the training command, its recipe (from config.json) and its accuracy on the held-out rows."""
    train = [sys.executable, "-m", "training", task, "--dataset", str(dataset), "--output", str(out),
             "--threads", str(threads), "--quiet", *extra]
    start = time.perf_counter()
    subprocess.run(train, cwd=REPO, env=ENV, check=True)
    seconds = time.perf_counter() - start
    report = subprocess.run([sys.executable, "-m", "training", "evaluate", "--checkpoint", str(out), *score],
                            cwd=REPO, env=ENV, check=True, capture_output=True, text=True).stdout
    config = json.loads((out / "config.json").read_text())
    return {"accuracy": json.loads(report)["accuracy"], "seconds": seconds, "architecture": config["architecture"],
            "recipe": (config.get("recipe") or {}).get("name", "none (--from-scratch)"),
            "validation": config["metrics"]["accuracy"]}


def main(argv=None) -> None:
    args = get_args_parser().parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for task in args.only:
            folder = root / task
            folder.mkdir(parents=True, exist_ok=True)
            dataset, score = SETS[task](args.data, folder, args.seed)
            for name, extra in (("plain command", []), ("--from-scratch", ["--from-scratch"])):
                result = train_and_score(task, dataset, score, folder / name.strip("-").replace(" ", "-"), extra,
                                         args.threads)
                rows.append((task, name, result))
                print(task, name, json.dumps(result), file=sys.stderr, flush=True)
    print("| set | command | held-out accuracy | validation (its own carve) | wall time | what it trained |")
    print("|---|---|---|---|---|---|")
    for task, name, r in rows:
        print(f"| {task} | {name} | {r['accuracy']:.1%} | {r['validation']:.1%} | {r['seconds']:.0f} s | "
              f"{r['architecture']}: {r['recipe']} |")


if __name__ == "__main__":
    main()
