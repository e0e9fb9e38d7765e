"""The text task's plain command against its variants, on real data a user might bring: accuracy and wall time.

    .venv/bin/python bench/text_defaults.py                      # the plain command vs --model rnn, trec few-shot
    .venv/bin/python bench/text_defaults.py --variants           # every architecture, fine-tuned or frozen
    .venv/bin/python bench/text_defaults.py --data emotion --variants --max-train-samples 2000

trec: 30 questions per type (6 types) drawn from ../shared/data/trec's train split with `--sample-seed`,
written as a text,label CSV, as a user's own file would be; each run is `python -m training text
--dataset that.csv` in its own process (its validation rows carved from the 180 as the plain command
does), scored with `python -m training evaluate` on trec's test split (499 questions, never seen).
emotion: ../shared/data/emotion, trained on (`--max-train-samples` of) its train split and scored on its
validation split (2,000), as the shipped model is.

"plain" is the command with no flag but the data (the engine applies the text task's default recipe); "rnn"
is `--from-scratch`: the from-scratch network of earlier releases with its defaults. Wall time is each training process's, start to exit (imports included), on `--threads` threads;
the load average at the start of each run is printed beside it (on a shared machine others' work slows it).
Prints a table and appends JSON lines to `--log`; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}

# name -> flags beyond the data. "plain": none (the engine applies the text task's recipe: the encoder with a
# GRU head, its embeddings frozen and all six layers fine-tuned); "rnn": --from-scratch, the recurrent network
# of earlier releases with its defaults. The others name what differs from the plain command; the recipe
# still sets every flag they do not give. -frozen: only the head trains; -full: the embeddings train too.
VARIANTS = {
    "plain": [],
    "rnn": ["--from-scratch"],
    "minilm-gru-frozen": ["--model", "minilm-gru", "--frozen-layers", "6"],
    "minilm-gru-tuned": ["--model", "minilm-gru", "--frozen-layers", "0"],
    "minilm-gru-full": ["--model", "minilm-gru", "--train-embeddings"],
    "minilm-linear": ["--model", "minilm-linear"],
    "minilm-linear-frozen": ["--model", "minilm-linear", "--frozen-layers", "6"],
    "minilm-linear-full": ["--model", "minilm-linear", "--train-embeddings"],
    # The shipped emotion models as bases: --transfer-from keeps the base's network (and tokenizer) and its
    # body's weights, with a new head; the recipe still sets the schedule.
    "from-emotion": ["--transfer-from", "checkpoints/text/emotion"],
    "from-emotion-minilm": ["--transfer-from", "checkpoints/text/emotion-minilm"],
}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("trec", "emotion"), default="trec")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--variants", action="store_true", help="every variant, not only plain and rnn")
    p.add_argument("--only", nargs="*", default=None, help="these variants (names in VARIANTS)")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="training seeds (--seed) per variant")
    p.add_argument("--epochs", type=int, default=None, help="encoder variants: epochs (default: the recipe's)")
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--extra", nargs="*", default=[], help="flags added to every run (e.g. --epochs 3)")
    p.add_argument("--log", type=Path, default=REPO / "bench" / "text_defaults.jsonl")
    return p


def trec_sample(shared: Path, per_class: int, seed: int, folder: Path) -> Path:
    """`per_class` questions of each type from trec's train split, drawn with `seed`, as a text,label CSV."""
    import datasets
    import numpy as np

    train = datasets.load_dataset(str(shared / "trec"), split="train")
    names = train.features["label"].names
    labels = np.array(train["label"])
    rng = np.random.default_rng(seed)
    rows = [i for k in range(len(names)) for i in rng.choice(np.flatnonzero(labels == k), per_class, replace=False)]
    path = folder / f"trec_{per_class}_per_class_seed{seed}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([train[int(i)]["text"], names[train[int(i)]["label"]]] for i in rows)
    return path


def load_average() -> float:
    return os.getloadavg()[0]


def train_and_score(name: str, flags: list[str], dataset: str, score_on: tuple[str, str] | None, out: Path,
                    threads: int) -> dict:
    """One training process, then its score: trec's test split through `evaluate`, or emotion's validation."""
    load = load_average()
    cmd = [sys.executable, "-m", "training", "text", "--dataset", dataset, "--output", str(out), "--threads",
           str(threads), "--workers", "0", "--quiet", *flags]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=ENV, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    config = json.loads((out / "config.json").read_text())
    metrics = config["metrics"]
    accuracy, macro_f1 = metrics["accuracy"], metrics["macro_f1"]
    if score_on is not None:
        report = subprocess.run([sys.executable, "-m", "training", "evaluate", "--checkpoint", str(out), "--dataset",
                                 score_on[0], "--split", score_on[1], "--workers", "0"], cwd=REPO, env=ENV, check=True,
                                capture_output=True, text=True)
        scored = json.loads(report.stdout)
        accuracy, macro_f1 = scored["accuracy"], scored["macro_f1"]
    size = (out / "model.safetensors").stat().st_size / 2**20
    return {"variant": name, "accuracy": round(accuracy, 4), "macro_f1": round(macro_f1, 4), "wall_s": round(wall, 1),
            "train_s": config["training_seconds"], "epochs": config["train_args"]["epochs"],
            "best_epoch": metrics.get("epoch"), "weights_mb": round(size, 1), "load_avg": round(load, 2),
            "architecture": config["architecture"], "flags": flags}


def main() -> None:
    args = get_args_parser().parse_args()
    names = args.only or (list(VARIANTS) if args.variants else ["plain", "rnn"])
    with tempfile.TemporaryDirectory(prefix="text-defaults-") as tmp:
        tmp = Path(tmp)
        if args.data == "trec":
            dataset, score_on = str(trec_sample(args.shared, args.per_class, args.sample_seed, tmp)), (
                str(args.shared / "trec"), "test")
            where = f"trec, {args.per_class} per class (sample seed {args.sample_seed}), scored on its test split"
        else:
            dataset, score_on = str(args.shared / "emotion"), None
            where = f"emotion, {args.max_train_samples or 'all'} train rows, scored on its validation split"
        base = (["--max-train-samples", str(args.max_train_samples)] if args.max_train_samples else []) + args.extra
        rows = []
        for name in names:
            for seed in args.seeds:
                flags = VARIANTS[name] + (["--epochs", str(args.epochs)] if args.epochs and name != "rnn" else [])
                row = train_and_score(name, [*base, *flags, "--seed", str(seed)], dataset, score_on,
                                      tmp / f"{name}-{seed}", args.threads)
                row.update(data=where, seed=seed)
                rows.append(row)
                print(f"{name:<22} seed {seed}: accuracy {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
                      f"{row['wall_s']:7.1f} s (load {row['load_avg']:.2f})  {row['weights_mb']:6.1f} MB",
                      file=sys.stderr, flush=True)
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    print(f"\n{where}; {args.threads} threads")
    print(f"{'variant':<22}{'seed':>5}{'accuracy':>10}{'macro-F1':>10}{'wall s':>9}{'load':>6}{'MB':>7}")
    for r in rows:
        print(f"{r['variant']:<22}{r['seed']:>5}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['wall_s']:>9.1f}"
              f"{r['load_avg']:>6.2f}{r['weights_mb']:>7.1f}")


if __name__ == "__main__":
    main()
