"""`python -m training evaluate` scores any checkpoint on any split of any dataset, for every task;
`python -m training calibrate` chooses a checkpoint's "unsure" threshold on its own validation rows.

Both read the data as the checkpoint's run did: its dataset adapter runs with the checkpoint's recorded
settings (e.g. a speech model trained with --keep-all-words is scored on all words, not 12 keywords).
"""

from __future__ import annotations

from pathlib import Path

from training import checkpoint as ckpt
from training.cache import encode_split
from training.data import load_eval_split, load_task_splits
from training.device import pick_device
from training.engine import calibrate, evaluate
from training.metrics import from_confusion
from training.records import record_unsure_threshold, recorded_settings
from training.reports import write_reports
from training.tasks import get_task


def run_evaluate(checkpoint, dataset: str, *, split: str = "validation", dataset_config: str | None = None,
                 revision: str | None = None, input_column: str | None = None, label_column: str | None = None,
                 max_samples: int | None = None, batch_size: int = 256, device: str | None = None,
                 workers: int = 0, report_dir=None) -> dict:
    device = pick_device(device)
    model, config, task_config = ckpt.load_model(checkpoint, device)
    task = get_task(config["task"])
    seed = recorded_settings(config, task).train.seed
    labels = config["labels"]
    ds, y, column = load_eval_split(dataset, split, labels, input_candidates=task.input_columns,
                                    input_column=input_column, label_column=label_column, name=dataset_config,
                                    revision=revision, max_samples=max_samples, input_flag="--input-column",
                                    adapt=lambda raw: task.adapt_dataset(raw, task_config, seed))
    data, lengths = encode_split(task, task_config, ds, column, workers=workers, desc=f"decode {split}")
    cm, loss = evaluate(model, task, task_config, data, lengths, y, len(labels), batch_size=batch_size, device=device)
    report = {"checkpoint": str(checkpoint), "dataset": dataset, "split": split,
              **from_confusion(cm, labels), "loss": round(loss, 5)}
    if report_dir:
        write_reports(report_dir, report, cm, labels)
    return report


def run_calibrate(checkpoint, dataset: str | None = None, *, device: str | None = None, workers: int = 0) -> dict:
    """Choose a checkpoint's "unsure" threshold on the validation rows its training run used.

    The validation split is rebuilt from the settings recorded in config.json (the dataset's validation
    split, or the same carved fraction with the same seed and grouping), so no training row is used.
    """
    device = pick_device(device)
    model, config, task_config = ckpt.load_model(checkpoint, device)
    task = get_task(config["task"])
    splits = recorded_splits(config, dataset, where=checkpoint)
    data, lengths = encode_split(task, task_config, splits.val, splits.input_column, workers=workers,
                                 desc="decode validation")
    stats = calibrate(model, task, task_config, data, lengths, splits.val_labels, batch_size=256, device=device)
    record_unsure_threshold(checkpoint, stats)
    return {"checkpoint": str(checkpoint), "num_validation": len(splits.val), **stats}


def recorded_splits(config: dict, dataset: str | None = None, *, where="the checkpoint"):
    """The training and validation rows of the run that trained a checkpoint, rebuilt from the settings
    its config.json recorded (same validation split or carved fraction, seed and grouping, same dataset
    adapter settings); `dataset` replaces the recorded path, for the same data in another place. Labels
    must be the checkpoint's."""
    task = get_task(config["task"])
    s = recorded_settings(config, task)
    splits = load_task_splits(task, s.data, s.task, s.train.seed, dataset=str(dataset) if dataset else None)
    if splits.labels != config["labels"]:
        raise ckpt.CheckpointError(f"{Path(str(where))}: the dataset's labels {splits.labels} are not the "
                                   f"checkpoint's {config['labels']}.")
    return splits
