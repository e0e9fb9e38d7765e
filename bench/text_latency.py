"""Latency of one text prediction, as the demo serves it: `python bench/text_latency.py [checkpoint] [--threads N]`.

Loads the checkpoint once with the demo's Predictor, warms up, then times single sentences (tokenise +
forward + softmax) and, separately, the occlusion explanation. Prints medians and p90 in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = ["i feel wonderful today", "i am so angry that they cancelled my flight again without telling anyone",
             "i was terrified walking home alone in the dark last night",
             "i miss my grandmother so much and i feel so lonely without her"]


def timed(fn, arg, repeats: int) -> list[float]:
    out = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(arg[i % len(arg)])
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    print(f"{name}: median {statistics.median(ms):.2f} ms, p90 {ms[int(0.9 * len(ms))]:.2f} ms over {len(ms)} runs")


def main() -> None:
    import torch

    from demo.predictor import Predictor

    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", nargs="?", default="checkpoints/text/emotion")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.load(args.checkpoint, "cpu")
    timed(predictor.predict, SENTENCES, 10)   # warm-up: first calls allocate
    print(f"{args.checkpoint} on cpu, {args.threads} thread(s)")
    report("predict (one sentence)", timed(predictor.predict, SENTENCES, args.repeats))
    report("explain (occlusion)", timed(predictor.explain, SENTENCES, max(10, args.repeats // 5)))


if __name__ == "__main__":
    main()
