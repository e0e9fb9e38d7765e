"""K-fold cross-validation (`--folds K`): a validation figure that predicts unseen groups (speakers).

One held-out speaker is a noisy judge: on FSDD, a model whose best of 40 epochs scored 98.6% on its held-out
speaker scored 92.0% on a speaker none of its runs saw. Here K runs each train on all folds but one and are
scored on that one (whole groups with --group-column, so no speaker is scored by a model that heard them),
each keeping its last epoch (a fixed schedule: no epoch is picked on the rows that are scored). Every row is
so scored once, by the one run that did not train on it (out of fold); those scores are the model's
recorded validation, per group too, and its unsure threshold is chosen on them. The model kept is then
trained on every row, for the same epochs.

The fold runs are ordinary runs of the engine (training/engine.py `run`) in a temporary folder beside the
output, removed afterwards; the default recipe is chosen once, on every row.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from training import checkpoint as ckpt
from training.cache import encode_split
from training.config_record import Validation
from training.data import Splits, fold_of_rows, load_task_splits
from training.device import pick_device
from training.engine import apply_recipe, fixed_schedule, run
from training.loop import Hooks, probabilities
from training.metrics import confusion_matrix, from_confusion, unsure_threshold
from training.records import TrainingError
from training.settings import RunSettings
from training.tasks import Task


def cross_validate(task: Task, settings: RunSettings, hooks: Hooks) -> dict:
    """The K fold runs, then the run on every row with their out-of-fold scores as its validation; returns
    the final run's summary, with the folds' in `folds`."""
    data, train = settings.data, settings.train
    if train.resume or train.init_from:
        raise TrainingError(f"--folds {data.folds}: a cross-validation starts afresh; it cannot --resume or "
                            "--init-from (run it again, or continue its checkpoint without --folds).")
    splits = load_task_splits(task, data, settings.task, train.seed)
    settings, recipe = apply_recipe(task, splits, settings)
    fold, groups = folds_of(splits, data.folds, data.group_column, train.seed)
    out = Path(settings.train.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}-folds-", dir=out.parent))
    try:
        probs, runs = out_of_fold(task, settings, splits, fold, groups, folder, hooks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    validation = out_of_fold_scores(probs, splits, fold, groups, runs)
    how = Validation("folds", data.train_split, by=data.group_column, seed=train.seed, folds=data.folds)
    everything = replace(splits, val=splits.train.select([]), val_labels=splits.train_labels[:0],
                         info={**splits.info, "num_validation": int((fold >= 0).sum()), "validation": asdict(how),
                               "validation_split": how.describe()})
    summary = run(task, fixed_schedule(settings), hooks=hooks, splits=everything,
                  recipe=recipe, validation=validation)
    return {**summary, "folds": runs}


def folds_of(splits: Splits, folds: int, group_column: str | None, seed: int) -> tuple[torch.Tensor, list | None]:
    """(each training row's fold, or -1 for a row that trains every fold's run; the rows' groups). On a run of
    several datasets the folds are the first dataset's: the others' rows train every fold's run and are never
    scored, so the figure speaks of the first dataset alone."""
    sources = splits.info.get("sources")
    first = sources[0]["num_train"] if sources else len(splits.train)
    groups = splits.train[group_column] if group_column else None
    fold = torch.full((len(splits.train),), -1, dtype=torch.long)
    fold[:first] = torch.from_numpy(fold_of_rows(splits.train_labels[:first], folds, seed,
                                                 groups[:first] if groups is not None else None))
    return fold, groups


def out_of_fold(task: Task, settings: RunSettings, splits: Splits, fold: torch.Tensor, groups, folder: Path,
                hooks: Hooks) -> tuple[torch.Tensor, list[dict]]:
    """Every row's probabilities from the fold run that did not train on it, and each fold run's record."""
    probs = torch.zeros(len(splits.train), len(splits.labels))
    runs = []
    for k in range(int(fold.max()) + 1):
        held = (fold == k).nonzero().flatten()
        kept = (fold != k).nonzero().flatten()
        part = replace(splits, train=splits.train.select(kept.tolist()), val=splits.train.select(held.tolist()),
                       train_labels=splits.train_labels[kept], val_labels=splits.train_labels[held],
                       info={**{k: v for k, v in splits.info.items() if k != "sources"}, "num_train": len(kept),
                             "num_validation": len(held)})
        output = folder / f"fold-{k + 1}"
        fold_settings = replace(settings, data=replace(settings.data, folds=0), given=None,
                                train=replace(fixed_schedule(settings).train, output=str(output), patience=0))
        summary = run(task, fold_settings, hooks=hooks, splits=part)
        device = pick_device(settings.train.device)
        model, _, config = ckpt.load_model(output, device)
        x, lengths = encode_split(task, config, part.val, part.input_column, workers=settings.data.workers,
                                  show_progress=False, use_cache=not settings.data.no_cache)
        probs[held] = probabilities(model, task, config, x, lengths, part.val_labels,
                                    batch_size=settings.train.eval_batch_size or 2 * settings.train.batch_size,
                                    device=device)
        runs.append({"fold": k + 1, "num_train": len(kept), "num_examples": len(held),
                     "accuracy": round(summary["best"]["accuracy"], 5),
                     **({"groups": sorted({str(groups[i]) for i in held.tolist()})} if groups is not None else {}),
                     "history": summary["history"]})
    return probs, runs


def out_of_fold_scores(probs: torch.Tensor, splits: Splits, fold: torch.Tensor, groups, runs: list[dict]) -> dict:
    """The run on every row's validation: the out-of-fold scores (of the rows in a fold), per group and per
    fold, their confusion matrix, and the unsure threshold chosen on them."""
    scored = (fold >= 0).nonzero().flatten()
    probs, y = probs[scored], splits.train_labels[scored]
    groups = [groups[i] for i in scored.tolist()] if groups is not None else None
    pred = probs.argmax(1)
    cm = confusion_matrix(pred, y, len(splits.labels))
    scores = from_confusion(cm, splits.labels)
    scores["folds"] = [{k: v for k, v in run.items() if k != "history"} for run in runs]
    if splits.info.get("sources"):   # a run of several datasets: the scored rows are the first one's
        scores["by_dataset"] = {splits.info["sources"][0]["id"]: {"accuracy": scores["accuracy"],
                                                                   "num_examples": scores["num_examples"]}}
    if groups is not None:
        by_group: dict[str, list[int]] = {}
        for g, right in zip(map(str, groups), (pred == y).tolist()):
            by_group.setdefault(g, []).append(right)
        scores["by_group"] = {g: {"accuracy": round(sum(r) / len(r), 5), "num_examples": len(r)}
                              for g, r in sorted(by_group.items())}
    return {"scores": scores, "confusion": cm.tolist(), "unsure": unsure_threshold(probs.max(1).values, pred == y)}
