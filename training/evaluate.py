"""`python -m training evaluate` scores any checkpoint on any split of any dataset, for every task;
`python -m training calibrate` chooses a checkpoint's "unsure" threshold on its own validation rows;
`python -m training report` draws a checkpoint's figures again from what it recorded.

Both read the data as the checkpoint's run did: its dataset adapter runs with the checkpoint's recorded
settings (e.g. a speech model trained with --keep-all-words is scored on all words, not 12 keywords).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from training import checkpoint as ckpt
from training.cache import encode_split
from training.config_record import CheckpointRecord
from training.data import MissingSplit, default_name, load_eval_split, load_task_splits, subsample
from training.device import pick_device
from training.engine import calibrate, evaluate
from training.loop import probabilities
from training.metrics import from_confusion
from training.records import record_unsure_threshold, recorded_settings
from training.reports import draw_recorded, write_reports
from training.tasks import get_task


def run_evaluate(checkpoint, dataset: str, *, split: str = "validation", dataset_config: str | None = None,
                 revision: str | None = None, input_column: str | None = None, label_column: str | None = None,
                 max_samples: int | None = None, batch_size: int = 256, device: str | None = None,
                 workers: int = 0, report_dir=None, corrupt: str | None = None, predictions=None) -> dict:
    """Score `checkpoint` on `split` of `dataset`. A dataset without a validation split, asked for
    `validation`, gives the rows the checkpoint's run carved from train for validation (as recorded).
    `corrupt` scores a corrupted copy of the rows instead (the task's `corruptions`, e.g. reverb).
    `predictions` names a JSON-lines file to write every row's probabilities to (`write_predictions`).
    Rows are decoded and batched as validation and the demo decode them (Task.encode, Task.make_batch)."""
    device = pick_device(device)
    model, config, task_config = ckpt.load(checkpoint, device)
    task = get_task(config.task)
    seed = recorded_settings(config, task).train.seed
    labels = list(config.labels)
    try:
        ds, y, column = load_eval_split(dataset, split, labels, input_candidates=task.input_columns,
                                        input_column=input_column, label_column=label_column, name=dataset_config,
                                        revision=revision, max_samples=max_samples, input_flag="--input-column",
                                        adapt=lambda raw: task.adapt_dataset(raw, task_config, seed))
        scored = split
    except MissingSplit:
        if split == "validation" and config.dataset.validation.cross_validated:
            raise MissingSplit(f"{checkpoint} was cross-validated ({config.dataset.validation.folds} folds): the model "
                               "kept trained on every row of its training split, and its recorded validation is the "
                               "fold runs' (out of fold). Score it on another split, e.g. --split test.") from None
        if split != "validation" or not config.dataset.carved:
            raise
        ds, y, column, scored = recorded_validation_rows(config, dataset, checkpoint)
        ds, y = subsample(ds, y, max_samples, 0)
    data, lengths = encode_split(task, task_config, ds, column, workers=workers, desc=f"decode {split}")
    if corrupt:
        data = task.corrupt(task_config, data, corrupt, seed)
    cm, loss = evaluate(model, task, task_config, data, lengths, y, len(labels), batch_size=batch_size, device=device)
    report = {"checkpoint": str(checkpoint), "dataset": dataset, "split": scored, "corruption": corrupt,
              **from_confusion(cm, labels), "loss": round(loss, 5)}
    if predictions:
        probs = probabilities(model, task, task_config, data, lengths, y, batch_size=batch_size, device=device)
        report["predictions"] = str(write_predictions(predictions, ds[column], y, probs, labels))
    if report_dir:
        write_reports(report_dir, report, cm, labels,
                      confusion_title=f"{Path(str(checkpoint)).name} on {default_name(str(dataset))}, {split}")
    return report


def write_predictions(path, inputs, targets, probs, labels: list[str]) -> Path:
    """One JSON line per row: its index, its input (a file's path, where the dataset keeps one; a text), the
    true and the predicted label, and every label's probability."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row, (raw, target, p) in enumerate(zip(inputs, targets.tolist(), probs.tolist())):
            source = raw.get("path") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
            f.write(json.dumps({"row": row, "input": source, "label": labels[target],
                                "predicted": labels[max(range(len(p)), key=p.__getitem__)],
                                "probabilities": dict(zip(labels, p))}) + "\n")
    return path


def recorded_validation_rows(config: CheckpointRecord, dataset: str, checkpoint):
    """The validation rows the checkpoint's run carved from `dataset`: on a run of several datasets, the
    rows of the one recorded under that path (all of them are loaded, to carve as the run did)."""
    sources = config.dataset.sources
    if not sources:
        splits = recorded_splits(config, dataset, where=checkpoint)
        return (splits.val, splits.val_labels, splits.input_column,
                f"validation (carved from {config.dataset.validation.split} as recorded)")
    match = [s for s in sources if str(s.id) == str(dataset)]
    if not match:
        raise MissingSplit(f"{dataset}: no 'validation' split, and not one of the datasets {checkpoint} was trained "
                           f"on ({', '.join(str(s.id) for s in sources)}), whose carved rows could be scored.")
    splits = recorded_splits(config, where=checkpoint)
    start, stop = match[0].val_rows
    rows = list(range(start, stop))
    return (splits.val.select(rows), splits.val_labels[start:stop], splits.input_column,
            f"validation (carved from {match[0].validation.split} as recorded, this dataset's rows)")


def run_calibrate(checkpoint, dataset: str | None = None, *, device: str | None = None, workers: int = 0) -> dict:
    """Choose a checkpoint's "unsure" threshold on the validation rows its training run used.

    The validation split is rebuilt from the settings recorded in config.json (the dataset's validation
    split, or the same carved fraction with the same seed and grouping), so no training row is used.
    """
    v = recorded_validation(checkpoint, dataset, device=device, workers=workers)
    stats = calibrate(v.model, v.task, v.task_config, v.data, v.lengths, v.splits.val_labels, batch_size=256,
                      device=v.device)
    record_unsure_threshold(checkpoint, stats)
    return {"checkpoint": str(checkpoint), "num_validation": len(v.splits.val), **stats}


class Validation(NamedTuple):
    device: object
    model: object
    config: CheckpointRecord
    task: object
    task_config: object
    splits: object
    data: object
    lengths: object


def recorded_validation(folder, dataset: str | None = None, *, device: str | None = None,
                        workers: int = 0) -> Validation:
    """The checkpoint in `folder`, loaded, with its run's validation rows rebuilt and decoded."""
    device = pick_device(device)
    model, config, task_config = ckpt.load(folder, device)
    if config.dataset.validation.cross_validated:
        raise ckpt.CheckpointError(f"{folder} was cross-validated ({config.dataset.validation.folds} folds): it "
                                   "trained on every row, so it has no held-out rows to score again; its recorded "
                                   "validation, confusion matrix and unsure threshold come from the fold runs (out of "
                                   "fold).")
    task = get_task(config.task)
    splits = recorded_splits(config, dataset, where=folder)
    data, lengths = encode_split(task, task_config, splits.val, splits.input_column, workers=workers,
                                 desc="decode validation")
    return Validation(device, model, config, task, task_config, splits, data, lengths)


def recorded_splits(config: CheckpointRecord | dict, dataset=None, *, where="the checkpoint"):
    """The training and validation rows of the run that trained a checkpoint (its record, or config.json's
    content), rebuilt from the settings it recorded (same validation split or carved fraction, seed and
    grouping, same dataset adapter settings); `dataset` replaces the recorded path (a list: one per dataset
    of a run on several), for the same data in another place. Labels must be the checkpoint's."""
    config = ckpt.as_record(config)
    task = get_task(config.task)
    s = recorded_settings(config, task)
    splits = load_task_splits(task, s.data, s.task, s.train.seed, dataset=dataset or None)
    if splits.labels != list(config.labels):
        raise ckpt.CheckpointError(f"{Path(str(where))}: the dataset's labels {splits.labels} are not the "
                                   f"checkpoint's {list(config.labels)}.")
    return splits


def run_report(checkpoint, dataset: str | None = None, *, device: str | None = None, workers: int = 0) -> dict:
    """Draw a checkpoint's training curves and confusion matrix again from its metrics.json. A checkpoint
    written before metrics.json held the confusion matrix is scored again on its recorded validation rows
    (as `calibrate` rebuilds them; `dataset` replaces the recorded path), and the matrix is recorded."""
    folder = Path(checkpoint)
    config = ckpt.read_record(folder)
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    report = {"checkpoint": str(folder)}
    if metrics and metrics.get("confusion") is None:
        cm = rescore_validation(folder, dataset, device=device, workers=workers)
        scores = from_confusion(cm, list(config.labels))
        report["rescored"] = {"accuracy": scores["accuracy"], "num_examples": scores["num_examples"],
                              "recorded_accuracy": config.metrics.accuracy}
        ckpt.write_json(metrics_path, {**metrics, "confusion": cm.tolist()})
    report["written"] = [str(p) for p in draw_recorded(folder)]
    return report


def rescore_validation(folder, dataset: str | None = None, *, device: str | None = None, workers: int = 0):
    """The confusion matrix of the checkpoint in `folder` on the validation rows its run used."""
    v = recorded_validation(folder, dataset, device=device, workers=workers)
    cm, _ = evaluate(v.model, v.task, v.task_config, v.data, v.lengths, v.splits.val_labels, len(v.config.labels),
                     batch_size=256, device=v.device)
    return cm
