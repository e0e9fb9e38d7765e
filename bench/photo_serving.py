"""Real photos through the demo's path: a model that learned from small images, served through the resolution it
learned at or straight from the photo, against a model trained at the photos' own resolution.

    .venv/bin/python bench/photo_serving.py [--data ../shared/data] [--threads 2] [--keep DIR]

Two EfficientNet-Lite0 runs from ImageNet weights on hymenoptera's 245 training photos (ants, bees; longer
side <= 500 px), in subprocesses:
- "learned at 32 px": the CIFAR-10 flagship's way, every photo cached at 32x32 and enlarged to 128
  (`--cache-size 32 --image-size 128 --train-size 112`, its recipe's other settings);
- "plain command": `python -m training image --dataset <photos>` with no other flag (the photo recipe, 160 px).

Each is scored on the 153 validation photos through `Predictor.predict`, the demo's own function: as shipped
(through the recorded cache size, as training saw its images), and with the cache size switched off (the
photo resized straight to the model's input). Also the bare `Predictor.predict` p50 on one thread. Prints a
Markdown table for bench/RESULTS.md; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
# The CIFAR-10 recipe's settings (recipes/image_cifar10.sh) on photos cached at 32 px.
LEARNED_AT_32 = ["--model", "efficientnet_lite0", "--pretrained", "--image-size", "128", "--cache-size", "32",
                 "--train-size", "112", "--augment", "scale-crop-flip", "--crop-scale", "0.35", "--optimizer", "adamw",
                 "--lr", "0.002", "--backbone-lr-scale", "0.25", "--weight-decay", "0.05", "--label-smoothing", "0.1",
                 "--warmup-fraction", "0.1", "--batch-size", "32", "--epochs", "10"]
RUNS = {"learned at 32 px (the CIFAR-10 recipe)": LEARNED_AT_32, "plain command (the photo recipe)": []}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with hymenoptera/ (default: ../shared/data)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every run (default: %(default)s)")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs' folders here (default: a temporary one)")
    return p


def score(folder: Path, photos: list[Path]) -> dict:
    """Accuracy through the recorded cache size and straight, and the bare p50 in ms (one thread)."""
    import torch

    from demo.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.load(folder)
    recorded = predictor.task_config.cache_size
    result = {"image_size": predictor.task_config.image_size, "cache_size": recorded}
    for name, cache in (("served", recorded), ("straight", 0)):
        predictor.task_config.cache_size = cache
        right = sum(max(p := predictor.predict(path), key=p.get) == path.parent.name for path in photos)
        result[name] = right / len(photos)
    predictor.task_config.cache_size = recorded
    times = []
    for path in photos[:60]:
        start = time.perf_counter()
        predictor.predict(path)
        times.append(time.perf_counter() - start)
    result["p50_ms"] = statistics.median(times[10:]) * 1000
    return result


def main(argv=None) -> None:
    args = get_args_parser().parse_args(argv)
    photos = sorted((args.data / "hymenoptera" / "validation").glob("*/*.jpg"))
    print("| model | trained at | through the recorded resolution (the demo) | resized straight | p50 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for i, (name, extra) in enumerate(RUNS.items()):
            out = root / f"run{i}"
            subprocess.run([sys.executable, "-m", "training", "image", "--dataset",
                            str(args.data / "hymenoptera" / "train"), "--output", str(out), "--threads",
                            str(args.threads), "--quiet", *extra], cwd=REPO, env=ENV, check=True)
            r = score(out, photos)
            seen = f"cached at {r['cache_size']}, input {r['image_size']}" if r["cache_size"] else f"{r['image_size']} px"
            print(f"| {name} | {seen} | **{r['served']:.1%}** | {r['straight']:.1%} | {r['p50_ms']:.1f} ms |",
                  flush=True)
    print(f"\n{len(photos)} validation photos; p50 of Predictor.predict on one thread, this machine.")


if __name__ == "__main__":
    main()
