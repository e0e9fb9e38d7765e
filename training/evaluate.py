"""`python -m training evaluate`: score any checkpoint on any split of any dataset, for every task."""

from __future__ import annotations

import argparse

from training import checkpoint as ckpt
from training.cache import encode_split
from training.data import load_eval_split
from training.device import pick_device
from training.engine import evaluate
from training.metrics import from_confusion
from training.reports import write_reports
from training.tasks import get_task


def run_evaluate(args) -> dict:
    device = pick_device(args.device)
    model, config, task_config = ckpt.load_model(args.checkpoint, device)
    task = get_task(config["task"])
    labels = config["labels"]
    ds, y, column = load_eval_split(args.dataset, args.split, labels, input_candidates=task.INPUT_COLUMNS,
                                    input_column=args.input_column, label_column=args.label_column,
                                    name=args.dataset_config, revision=args.revision, max_samples=args.max_samples,
                                    adapt=getattr(task, "adapt_dataset", None), args=args)
    data, lengths = encode_split(task, task_config, ds, column, workers=args.workers, desc=f"decode {args.split}")
    cm, loss = evaluate(model, task, task_config, data, lengths, y, len(labels), batch_size=args.batch_size,
                        device=device)
    report = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
              **from_confusion(cm, labels), "loss": round(loss, 5)}
    if args.report_dir:
        write_reports(args.report_dir, report, cm, labels)
    return report


def run_calibrate(args) -> dict:
    """Choose a checkpoint's "unsure" threshold on the validation rows its training run used.

    The validation split is rebuilt from the arguments recorded in config.json (the dataset's validation
    split, or the same carved fraction with the same seed and grouping), so no training row is used.
    """
    from training.engine import calibrate, record_unsure_threshold

    device = pick_device(args.device)
    model, config, task_config = ckpt.load_model(args.checkpoint, device)
    task = get_task(config["task"])
    splits = recorded_splits(config, args.dataset, where=args.checkpoint)
    data, lengths = encode_split(task, task_config, splits.val, splits.input_column, workers=args.workers,
                                 desc="decode validation")
    stats = calibrate(model, task, task_config, data, lengths, splits.val_labels, batch_size=256, device=device)
    record_unsure_threshold(args.checkpoint, stats)
    return {"checkpoint": str(args.checkpoint), "num_validation": len(splits.val), **stats}


def recorded_splits(config: dict, dataset: str | None = None, *, where="the checkpoint"):
    """The training and validation rows of the run that trained a checkpoint, rebuilt from the arguments
    its config.json recorded (same validation split or carved fraction, seed and grouping); `dataset`
    replaces the recorded path, for the same data in another place. Labels must be the checkpoint's."""
    from training.engine import load_task_splits

    splits = load_task_splits(get_task(config["task"]), recorded_args(config), dataset=dataset)
    if splits.labels != config["labels"]:
        raise ckpt.CheckpointError(f"{where}: the dataset's labels {splits.labels} are not the "
                                   f"checkpoint's {config['labels']}.")
    return splits


def recorded_args(config: dict) -> argparse.Namespace:
    """The training arguments a checkpoint recorded, over the CLI's defaults for any it did not record."""
    from training.cli import get_args_parser

    defaults = vars(get_args_parser().parse_args([config["task"], "--dataset", "-"]))
    return argparse.Namespace(**{**defaults, **config.get("train_args", {})})
