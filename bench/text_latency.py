"""Latency of one text prediction, as the demo serves it, and what the text models cost at start-up.

    python bench/text_latency.py [checkpoint ...] [--threads N]     # predict and explain, per checkpoint
    python bench/text_latency.py --long --hostile                    # huge and hostile texts, the same path
    python bench/text_latency.py --startup [checkpoint ...]          # imports and model loading, in fresh processes

Loads each checkpoint (default: every folder under checkpoints/text/) once with the demo's Predictor, warms
up, then times single sentences (tokenise + forward + softmax) and, separately, the occlusion explanation.
Prints medians and p90 in milliseconds. Goal for one sentence on one thread: p50 < 15 ms.

--long: tokenising 200,000 characters (cut to the model's character budget first); --hostile: the texts
tests/test_text_app.py sends (emoji only, 100,000 characters, a 5,000-letter word...), through predict.
--startup: each in a fresh process, median of --runs: `import torch, gradio` (the floor); the same plus
loading and warming up each checkpoint as the app does (Predictor.load, warm_up); and, for comparison,
importing transformers' BertModel (which the encoder models do not import). Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SENTENCES = ["i feel wonderful today", "i am so angry that they cancelled my flight again without telling anyone",
             "i was terrified walking home alone in the dark last night",
             "i miss my grandmother so much and i feel so lonely without her"]
HOSTILE = {"emoji only": "😀😂🔥🎉", "100,000 characters": "i feel so happy today " * 4546, "one 5,000-letter word": "a" * 5000,
           "control characters": "i feel\x00 so\x07 happy\x1b[0m", "right to left": "أنا سعيد جدا اليوم"}


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


def seconds(code: str, runs: int) -> list[float]:
    """Wall seconds of `python -c code` in fresh processes."""
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        out.append(time.perf_counter() - t)
    return out


def startup(checkpoints: list[str], runs: int) -> None:
    floor = seconds("import torch, gradio", runs)
    rows = [("import torch, gradio", floor)]
    for folder in checkpoints:
        load = (f"import torch, gradio; from demo.predictor import Predictor; torch.set_num_threads(1); "
                f"Predictor.load({folder!r}).warm_up()")
        rows.append((f"  + load and warm up {Path(folder).name}", seconds(load, runs)))
    rows.append(("  + import transformers' BertModel (not used)",
                 seconds("import torch, gradio; from transformers.models.bert.modeling_bert import BertModel", runs)))
    base = statistics.median(floor)
    for name, values in rows:
        median = statistics.median(values)
        print(f"{name:<52} median {median:6.2f} s ({median / base:.2f}x the floor): "
              f"{', '.join(f'{v:.2f}' for v in values)}")


def main() -> None:
    import torch

    from demo.predictor import Predictor

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="*", help="checkpoint folders (default: every one under checkpoints/text/)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--long", action="store_true", help="time tokenising 200,000 characters")
    p.add_argument("--hostile", action="store_true", help="time predict on hostile texts")
    p.add_argument("--startup", action="store_true", help="time imports and loading in fresh processes")
    p.add_argument("--runs", type=int, default=3, help="--startup: processes per measure")
    args = p.parse_args()
    folders = args.checkpoint or [str(c.parent) for c in sorted((REPO / "checkpoints" / "text").glob("*/config.json"))]
    if args.startup:
        startup(folders, args.runs)
        return
    torch.set_num_threads(args.threads)
    for folder in folders:
        predictor = Predictor.load(folder, "cpu")
        timed(predictor.predict, SENTENCES, 10)   # warm-up: first calls allocate
        print(f"{folder} ({predictor.config['architecture']}) on cpu, {args.threads} thread(s)")
        report("  predict (one sentence)", timed(predictor.predict, SENTENCES, args.repeats))
        report("  explain (occlusion)", timed(predictor.explain, SENTENCES, max(10, args.repeats // 5)))
        if args.long:
            from training.tasks import text

            long = ["happy " * 20_000 + "x" * 50_000 + "😀" * 30_000]   # 200,000 characters
            report("  tokenise 200,000 characters", timed(lambda s: text.tokenize(predictor.task_config, s), long, 20))
        if args.hostile:
            for name, value in HOSTILE.items():
                report(f"  predict, {name}", timed(predictor.predict, [value], 10))


if __name__ == "__main__":
    main()
