"""What a run records in its checkpoint's config.json, and the rules for starting from a checkpoint.

`checkpoint_config` is the run's record (training/config_record.py), the whole of its config.json;
`run_record` its `train_args` (every flag, as the flags are named), which `recorded_settings` reads back
into typed settings, for `evaluate`, `calibrate` and the examples builder. `start_from_checkpoint` holds the --init-from rules, and `earlier_stages` what
such a run carries of the runs before it into its metrics.json; `transfer_from_checkpoint` and
`load_all_but_head` the --transfer-from ones.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import fields, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from training import checkpoint as ckpt
from training import config_record as rec
from training.config_record import CheckpointRecord
from training.device import describe
from training.errors import TriptychError
from training.settings import DataSettings, RunSettings, TrainSettings, dest_of, from_record, json_value, to_record
from training.tasks import Task, get_task


class TrainingError(TriptychError):
    """A run that cannot go on; the message says what happened and what was kept."""


def flag_dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def run_record(task: Task, settings: RunSettings) -> dict:
    """config.json's train_args: every flag of the run by its name (the input column under the task's
    own flag, e.g. image_column), as JSON values."""
    unused = {dest_of(f) for f in fields(settings.task) if f.name in task.unused_fields(settings.task)}
    return {**{k: v for k, v in to_record(settings.task).items() if k not in unused},
            flag_dest(task.input_flag): json_value(settings.data.input_column),
            **to_record(settings.data), **to_record(settings.train)}


def recorded_settings(config: CheckpointRecord | dict, task: Task | None = None) -> RunSettings:
    """The settings a checkpoint's run recorded (its record, or config.json's content), over the defaults
    (the task's engine defaults included) for any setting it did not record."""
    config = ckpt.as_record(config)
    task = task or get_task(config.task)
    args = config.train_args
    data = from_record(DataSettings, args, input_column=args.get(flag_dest(task.input_flag)))
    train = from_record(TrainSettings, {**task.train_defaults, **args})
    return RunSettings(task.config_from_checkpoint(config.to_json()), data, train)


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "torchaudio", "timm", "datasets", "tokenizers", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def hardware(device: torch.device, world: int) -> str:
    where = describe(device) if device.type == "cuda" else f"{device.type} ({os.cpu_count()} cores, {platform.machine()})"
    return f"{world} x {where}" if world > 1 else where


def checkpoint_config(task: Task, config, settings: RunSettings, splits, best: dict, *, hardware: str,
                      seconds: float, parent: dict | None = None, transferred: dict | None = None,
                      recipe: dict | None = None) -> CheckpointRecord:
    """The run's record: its config.json (checkpoint.save_checkpoint adds timm's keys where they apply). A
    --transfer-from run's weights descend from its source's pretrained weights, whose record (and license)
    it carries. `parent` and `transferred` are the JSON of `start_from_checkpoint`'s and
    `transfer_from_checkpoint`'s records (what resume state keeps); `recipe`, the default recipe the run's
    settings came from, where they did (train_args holds every setting)."""
    metrics = {k: v for k, v in best.items() if k != "confusion"}
    pretrained = task.pretrained_source(config) or (transferred or {}).get("pretrained")
    return CheckpointRecord.from_json({
        "task": task.name, "architecture": task.architecture(config), "labels": list(splits.labels),
        "model": task.config_to_dict(config), "preprocessing": task.preprocessing_record(config),
        "metrics": metrics, "dataset": splits.info, "train_args": run_record(task, settings),
        "versions": versions(), "hardware": hardware, "training_seconds": round(seconds, 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **({"recipe": recipe} if recipe else {}),
        **({"pretrained": pretrained} if pretrained else {}), **({"init_from": parent} if parent else {}),
        **({"transferred_from": transferred} if transferred else {})})


def record_unsure_threshold(folder, stats: dict) -> None:
    """Store the "unsure" threshold in config.json, where the demo reads it."""
    record = ckpt.read_record(folder)
    unsure = rec.from_json(rec.Unsure, stats, "metrics.unsure")
    record = replace(record, unsure_threshold=unsure.threshold, metrics=replace(record.metrics, unsure=unsure))
    ckpt.write_record(folder, record)


# --------------------------------------------------------------------------------------------- --init-from

CARVE_ARGS = ("train_split", "val_fraction", "group_column", "seed")   # which rows a carved validation split holds


def carve_arguments(validation: rec.Validation) -> dict:
    """The CARVE_ARGS a carved validation split was made with, from its record."""
    return {"train_split": validation.split, "val_fraction": validation.fraction, "group_column": validation.by,
            "seed": validation.seed}


def check_same_validation_rows(recorded: CheckpointRecord, settings: RunSettings, folder) -> None:
    """On the same dataset, a validation split carved from train must be carved the same way: otherwise
    this run would train on rows the checkpoint was validated on, and validate on rows it learned."""
    if settings.data.eval_split is not None:
        return
    carved = [p.validation for p in recorded.dataset.parts if p.validation.carved and p.id in settings.data.dataset]
    if not carved:
        return
    then = carve_arguments(carved[0])
    now = {"train_split": settings.data.train_split, "val_fraction": settings.data.val_fraction,
           "group_column": settings.data.group_column, "seed": settings.train.seed}
    moved = [f"--{k.replace('_', '-')} {then[k]!r} (this run: {now[k]!r})" for k in CARVE_ARGS if then[k] != now[k]]
    if moved:
        raise TrainingError(f"--init-from {folder}: it held out its validation rows with other arguments: "
                            f"{'; '.join(moved)}. This run would train on rows that checkpoint was validated "
                            "on and validate on rows it learned; give the same arguments.")


def source_config(task: Task, folder, flag: str) -> CheckpointRecord:
    """The record of the checkpoint a run starts from, refused when it is another task's."""
    recorded = ckpt.read_record(folder)
    if recorded.task != task.name:
        raise TrainingError(f"{flag} {folder}: a {recorded.task} checkpoint, not "
                            f"{'an' if task.name[0] in 'aeiou' else 'a'} {task.name} one.")
    return recorded


def source_settings(task: Task, settings: RunSettings, folder, recorded: CheckpointRecord, flag: str):
    """The model settings of the checkpoint in `folder`; those the user gave on the command line must equal
    them (every one, where `settings.given` is unknown), but for the task's training-only settings, which
    are this run's, and its fitted ones. Its tokenizer or other extra files are loaded from `folder`."""
    config = settings.task
    start = task.config_from_dict(recorded.model)
    free = task.train_fields + task.fitted_fields
    given = settings.given
    differ = [f"{f.name} {getattr(start, f.name)!r} (this run: {getattr(config, f.name)!r})" for f in fields(config)
              if f.compare and f.name not in free and (given is None or f.name in given)
              and getattr(start, f.name) != getattr(config, f.name)]
    if differ:
        raise TrainingError(f"{flag} {folder}: give the model arguments it was trained with; its settings "
                            f"differ in {'; '.join(differ)}.")
    task.load_extra(start, folder)
    for name in task.train_fields:
        setattr(start, name, getattr(config, name))
    return start


def start_from_checkpoint(task: Task, settings: RunSettings, folder, labels: list) -> tuple:
    """--init-from: (the model settings of the checkpoint in `folder`, what it recorded: a config_record.Stage,
    as JSON). The model settings of this run must describe the same network; only the task's training-only
    settings (augmentation, dropout...) are this run's. The tokenizer or other extra files come from `folder`."""
    recorded = source_config(task, folder, "--init-from")
    if list(recorded.labels) != list(labels):
        raise TrainingError(f"--init-from {folder}: its labels {list(recorded.labels)} are not this dataset's "
                            f"{list(labels)}; it can only continue on data with the same labels.")
    check_same_validation_rows(recorded, settings, folder)
    start = source_settings(task, settings, folder, recorded, "--init-from")
    m = recorded.metrics
    parent = rec.Stage(checkpoint=str(folder), architecture=recorded.architecture, train_args=recorded.train_args,
                       training_seconds=recorded.training_seconds, hardware=recorded.hardware,
                       init_from=recorded.init_from, transferred_from=recorded.transferred_from,
                       metrics=rec.Metrics(accuracy=m.accuracy, macro_f1=m.macro_f1, epoch=m.epoch))
    return start, rec.to_json(parent)


def earlier_stages(folder, recorded: CheckpointRecord | None = None) -> list[dict]:
    """The stages a run started from the checkpoint in `folder` carries in its metrics.json, oldest first:
    the ones that checkpoint carried (its metrics.json `stages`), then its own run:
    {"checkpoint", "epochs", "train_args", "history"}. A checkpoint without metrics.json (or written
    before stages were recorded) contributes what it has: its own run, with no epochs if none are recorded."""
    recorded = recorded if recorded is not None else ckpt.read_record(folder)
    path = Path(folder) / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainingError(f"--init-from {folder}: metrics.json is not valid JSON ({e}).") from None
    history = list(metrics.get("history") or [])
    own = {"checkpoint": str(folder), "epochs": max([0] + [int(h.get("epoch", 0)) for h in history]),
           "train_args": recorded.train_args, "history": history}
    return [*list(metrics.get("stages") or []), own]


# ----------------------------------------------------------------------------------------- --transfer-from

def check_starting_point(train) -> None:
    """--transfer-from starts a new run; --init-from and --resume each start from something else."""
    if train.transfer_from is None:
        return
    if train.init_from is not None:
        raise TrainingError("--transfer-from and --init-from: give one. --init-from continues a checkpoint on data "
                            "with its labels; --transfer-from takes every weight but the classifier head, for "
                            "other labels.")
    if train.resume:
        raise TrainingError("--transfer-from and --resume: give one. To continue an interrupted --transfer-from "
                            "run, give --resume alone: its resume state holds the weights it started from.")


def transfer_from_checkpoint(task: Task, settings: RunSettings, folder) -> tuple:
    """--transfer-from: (the model settings of the checkpoint in `folder`, config.json's `transferred_from`,
    a config_record.Transfer as JSON).
    As with --init-from the model arguments must be its and its tokenizer is kept; its labels and its data
    may be other ones, so neither the labels nor the validation rows are checked."""
    recorded = source_config(task, folder, "--transfer-from")
    start = source_settings(task, settings, folder, recorded, "--transfer-from")
    m, d = recorded.metrics, recorded.dataset
    transfer = rec.Transfer(checkpoint=str(folder), labels=recorded.labels, architecture=recorded.architecture,
                            metrics=rec.Metrics(accuracy=m.accuracy, macro_f1=m.macro_f1),
                            dataset=rec.DatasetRef(d.id, d.hub_id), pretrained=recorded.pretrained)
    return start, rec.to_json(transfer)


def head_keys(model: torch.nn.Module, head: torch.nn.Module) -> set[str]:
    """The state_dict keys of the classifier head `head` inside `model` (its parameters and buffers)."""
    for name, module in model.named_modules():
        if module is head:
            return {f"{name}.{k}" if name else k for k in module.state_dict()}
    raise TrainingError(f"the classifier head {type(head).__name__} is not a part of the model.")


def load_all_but_head(task: Task, model: torch.nn.Module, folder) -> None:
    """--transfer-from: every tensor of the checkpoint in `folder` into `model` but the classifier head's,
    which keeps its fresh initialisation (sized for this run's labels). Refused, naming the tensors, unless
    the checkpoint holds exactly the model's other tensors, each of the model's shape."""
    head = task.head(model)
    if head is None:
        raise TrainingError(f"--transfer-from: the {task.name} task does not say which part of its model is the "
                            "classifier head, so it cannot leave it out.")
    own, skip = model.state_dict(), head_keys(model, head)
    body = {k: v for k, v in ckpt.read_weights(folder).items() if k not in skip}
    missing, extra = sorted(set(own) - skip - set(body)), sorted(set(body) - set(own))
    reshaped = [f"{k} {tuple(v.shape)} (this network: {tuple(own[k].shape)})" for k, v in sorted(body.items())
                if k in own and v.shape != own[k].shape]
    problems = [f"{what}: {', '.join(keys)}" for what, keys in
                (("missing", missing), ("not in this network", extra), ("of another shape", reshaped)) if keys]
    if problems:
        raise TrainingError(f"--transfer-from {folder}: its weights do not fit this network (the classifier head "
                            f"aside); {'; '.join(problems)}.")
    model.load_state_dict(body, strict=False)
