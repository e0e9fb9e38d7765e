"""ONNX against PyTorch on every shipped checkpoint: agreement on its held-out rows, p50 on one thread, int8.

    .venv/bin/python bench/portable.py [--rows 1000] [--requests 200] [--checkpoints checkpoints]

Copies each checkpoint folder under checkpoints/ (whatever is shipped, never a fixed list) to a temporary
folder, exports it there (`python -m training export --quantize int8`: the shipped folder is not touched),
and loads it three ways: PyTorch, model.onnx and model.int8.onnx (`Predictor.load(runtime=...)`). Then:

- agreement: the validation rows the checkpoint's run held out (rebuilt from its record, as `calibrate`
  does; skipped when the data is not under the recorded path), at most `--rows` of them: the share whose
  top-1 label is PyTorch's, the largest difference in any probability, and each runtime's accuracy;
- p50 of `Predictor.predict` on one CPU thread on the task's sample input (an example file, decoding
  included, as bench/serve.py --shipped measures it), and of the model alone (`probabilities`).

Prints a Markdown table; asserts nothing. Timings on a shared machine are noisy: note its load.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
RUNTIMES = ("torch", "onnx", "onnx-int8")


def p50(fn, n: int) -> float:
    from speech_latency import timed

    timed(fn, 5)   # warm-up
    return statistics.median(timed(fn, n))


def held_out_rows(record, rows: int):
    """(raw inputs, label ids) of the checkpoint's validation rows, at most `rows`; None without the data."""
    from training.data import subsample
    from training.evaluate import recorded_splits

    try:
        splits = recorded_splits(record)
    except Exception as e:   # the data is not where the run read it: say so, measure the rest
        print(f"  {record.task}: no held-out rows ({type(e).__name__}: {str(e).splitlines()[0][:120]})", file=sys.stderr)
        return None
    if not len(splits.val):   # cross-validated, then trained on every row: nothing was held out of it
        print(f"  {record.task}: no held-out rows ({record.dataset.validation.describe()})", file=sys.stderr)
        return None
    val, labels = subsample(splits.val, splits.val_labels, rows, 0)
    return list(val[splits.input_column]), labels.tolist()


def agreement(predictors: dict, rows) -> dict:
    raw, labels = rows
    top = {rt: [] for rt in predictors}
    worst = {rt: 0.0 for rt in predictors}
    for x in raw:
        reference = predictors["torch"].predict(x)
        for rt, predictor in predictors.items():
            probs = reference if rt == "torch" else predictor.predict(x)
            top[rt].append(predictor.labels.index(max(probs, key=probs.get)))
            worst[rt] = max(worst[rt], max(abs(probs[k] - reference[k]) for k in probs))
    return {rt: {"agree": sum(a == b for a, b in zip(top[rt], top["torch"])) / len(raw), "worst": worst[rt],
                 "accuracy": sum(a == y for a, y in zip(top[rt], labels)) / len(raw)} for rt in predictors}


def measure(folder: Path, args) -> dict:
    import torch

    from demo.predictor import Predictor
    from shipped import sample_input
    from training.export import export_onnx

    work = Path(tempfile.mkdtemp(prefix="portable-")) / folder.name
    shutil.copytree(folder, work, ignore=shutil.ignore_patterns("resume.pt", "train_noise.safetensors", "*.png"))
    t = time.perf_counter()
    report = export_onnx(work, quantize="int8")
    seconds = time.perf_counter() - t
    torch.set_num_threads(1)
    predictors = {rt: Predictor.load(work, "cpu", rt) for rt in RUNTIMES}
    raw = sample_input(predictors["torch"].task.name)
    raw = str(raw) if isinstance(raw, Path) else raw
    row = {"name": f"{folder.parent.name}/{folder.name}", "export_s": seconds, "exporter": report["exporter"],
           "bytes": {rt: (work / name).stat().st_size for rt, name in
                     zip(RUNTIMES, ("model.safetensors", "model.onnx", "model.int8.onnx"))}}
    for rt, predictor in predictors.items():
        inputs = predictor.inputs(raw)
        row[rt] = {"p50": p50(lambda: predictor.predict(raw), args.requests),
                   "model_p50": p50(lambda: predictor.probabilities(inputs), args.requests)}
    rows = held_out_rows(predictors["torch"].record, args.rows)
    if rows is not None:
        row["rows"] = len(rows[0])
        for rt, found in agreement(predictors, rows).items():
            row[rt].update(found)
    shutil.rmtree(work.parent)
    return row


def table_row(r: dict) -> str:
    def cell(rt):
        x = r[rt]
        agree = (f"{x['agree']:.2%} / {x['worst']:.1e} / {x['accuracy']:.2%}" if "agree" in x else "n/a")
        return f"{x['p50']:.2f} ({x['model_p50']:.2f}) | {agree}"
    return (f"| `{r['name']}` | {r.get('rows', 0)} | {cell('torch')} | {cell('onnx')} | {cell('onnx-int8')} | "
            f"{r['bytes']['onnx'] / 1e6:.1f} / {r['bytes']['onnx-int8'] / 1e6:.1f} MB | {r['exporter']}, "
            f"{r['export_s']:.0f} s |")


HEADER = ("| checkpoint | rows | torch p50 (model) ms | torch agree / max diff / accuracy | onnx p50 (model) ms | "
          "onnx agree / max diff / accuracy | int8 p50 (model) ms | int8 agree / max diff / accuracy | onnx / int8 "
          "size | exporter, export time |\n|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1000, help="held-out rows per checkpoint, at most")
    p.add_argument("--requests", type=int, default=200, help="timed calls per runtime")
    p.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    p.add_argument("--only", nargs="*", default=None, help="task/name of the checkpoints to measure (default: all)")
    args = p.parse_args()
    from shipped import shipped

    print(HEADER, flush=True)
    for folder in shipped(args.checkpoints):
        if args.only and f"{folder.parent.name}/{folder.name}" not in args.only:
            continue
        print(table_row(measure(folder, args)), flush=True)


if __name__ == "__main__":
    main()
