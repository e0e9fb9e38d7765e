"""The one place that calls `datasets.load_dataset`.

A dataset is a Hugging Face Hub id (`uoft-cs/cifar10`), a local folder laid out like a Hub repo (parquet
files per split), a folder of class subfolders (`imagefolder` / `audiofolder`), or a parquet/csv/json file.
This module finds the splits, the input and label columns, and the label names (training/holdout.py picks
which rows validate when the dataset has no validation split); the tasks never see
anything but a `Splits`. A run on several datasets gets one `Splits` of all of them (`combine`).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from training.config_record import Validation
from training.errors import DatasetError, MissingSplit
from training.holdout import carve_validation, fold_of_rows, subsample

FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
LABEL_COLUMNS = ("label", "labels")
# Hub datasets whose main branch is a loading script, which datasets 5 no longer runs: their parquet
# conversion on the Hub (one folder per configuration) is read instead, with this default configuration.
PARQUET_EXPORTS = {"google/speech_commands": "v0.02"}
PARQUET_REVISION = "refs/convert/parquet"


@dataclass
class Splits:
    train: object                   # datasets.Dataset
    val: object
    train_labels: torch.Tensor      # int64 label ids, aligned with the rows of `train`
    val_labels: torch.Tensor
    labels: list[str]               # index -> name
    input_column: str
    label_column: str
    # What config.json records under "dataset" (config_record.DatasetRecord's JSON): which rows validate is
    # data (`validation`); `validation_split` is its sentence, for people.
    info: dict = field(default_factory=dict)


def load_raw(dataset: str, *, name: str | None = None, revision: str | None = None):
    """Load every split of `dataset` (hub id, folder or file) as a `datasets.DatasetDict`."""
    import datasets

    path = Path(os.path.expanduser(dataset))
    try:
        if path.is_file():
            builder = FILE_BUILDERS.get("".join(path.suffixes[-1:]).lower())
            if builder is None:
                raise DatasetError(f"{dataset}: unsupported file type; use parquet, csv, tsv, json or jsonl, "
                                   "or a folder.")
            kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            return datasets.load_dataset(builder, data_files={"train": str(path)}, **kwargs)
        if path.is_dir():
            if name and (path / name).is_dir():   # a Hub-layout folder with one sub-folder per configuration
                return datasets.load_dataset(str(path), data_dir=name)
            return datasets.load_dataset(str(path), name=name)
        if dataset.startswith((".", "/", "~")) or dataset.count("/") > 1:
            raise DatasetError(f"{dataset}: no such file or folder.")
        if dataset in PARQUET_EXPORTS and revision in (None, PARQUET_REVISION):
            return datasets.load_dataset(dataset, data_dir=name or PARQUET_EXPORTS[dataset], revision=PARQUET_REVISION)
        return datasets.load_dataset(dataset, name=name, revision=revision)
    except DatasetError:
        raise
    except (ConnectionError, OSError) as e:
        if path.exists():
            raise DatasetError(f"{dataset}: cannot be read ({e}).") from None
        raise DatasetError(
            f"Could not load '{dataset}' from the Hugging Face Hub: {type(e).__name__}: {first_line(e)}. "
            "Check the id and your network connection (HF_HUB_OFFLINE=1 forbids downloads), "
            "or pass a local folder or a parquet/csv/json file with --dataset.") from None
    except (ValueError, FileNotFoundError) as e:
        empty = re.match(r'Instruction "([^"]+)" corresponds to no data', str(e))
        if empty:   # what `datasets` says of a split whose files hold no rows
            raise DatasetError(f"{dataset}: split '{empty.group(1)}' is empty (its files hold no rows).") from None
        raise DatasetError(f"{dataset}: {first_line(e)}") from None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def detect_column(ds, requested: str | None, candidates: Sequence[str], what: str, flag: str) -> str:
    columns = list(ds.column_names)
    if requested:
        if requested not in columns:
            raise DatasetError(f"{flag} {requested}: no such column; the dataset has {columns}.")
        return requested
    for name in candidates:
        if name in columns:
            return name
    raise DatasetError(f"Cannot find the {what} column (looked for {', '.join(candidates)}); the dataset has "
                       f"{columns}. Name it with {flag}.")


def label_names(ds, column: str) -> list[str]:
    """Names from a ClassLabel feature; else the sorted distinct values of the column."""
    feature = ds.features[column]
    if hasattr(feature, "names"):
        return list(feature.names)
    values = sorted({v for v in ds[column] if v is not None}, key=lambda v: (isinstance(v, str), v))
    return [str(v) for v in values]


def label_ids(ds, column: str, labels: Sequence[str], *, split: str) -> torch.Tensor:
    """Label ids of every row, by name, against `labels`; unknown labels stop with a message naming them."""
    feature = ds.features[column]
    values = ds[column]
    if hasattr(feature, "names"):
        values = [feature.names[v] if v is not None and 0 <= v < len(feature.names) else v for v in values]
    index = {name: i for i, name in enumerate(labels)}
    ids, unknown = [], set()
    for v in values:
        i = index.get(str(v)) if v is not None else None
        if i is None:
            unknown.add(repr(v))
        ids.append(-1 if i is None else i)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise DatasetError(f"split '{split}', column '{column}': label(s) {shown} are not in the label list "
                           f"{list(labels)}.")
    return torch.tensor(ids, dtype=torch.long)


def load_splits(dataset: str, *, input_candidates: Sequence[str], input_column: str | None = None,
                label_column: str | None = None, name: str | None = None, revision: str | None = None,
                train_split: str = "train", eval_split: str | None = None, val_fraction: float = 0.1,
                group_column: str | None = None, seed: int = 0, max_train_samples: int | None = None,
                max_eval_samples: int | None = None, input_flag: str = "--input-column",
                adapt: Callable | None = None, hub_id: str | None = None, folds: int = 0) -> Splits:
    """Load `dataset` and return the training and validation rows with their label ids.

    Validation is the dataset's `validation` split (or `eval_split`); without one, `val_fraction` of the
    training rows is carved out, stratified by label or held out by `group_column`. With `folds` (K-fold
    cross-validation, training/folds.py) there is no validation split: every training row is in `train`,
    and the folds are drawn from it later. The `test` split is never used for validation: it stays for
    `python -m training evaluate --split test`. `adapt(raw)` is a task's dataset-specific mapping of the
    loaded DatasetDict (e.g. Speech Commands' 12 keywords). `hub_id` is the Hub id a local `dataset` is a
    copy of; it is recorded beside the path.
    """
    raw = load_raw(dataset, name=name, revision=revision)
    if adapt is not None:
        raw = adapt(raw)
    if train_split not in raw:
        raise DatasetError(f"{dataset}: no '{train_split}' split; it has {list(raw)}.")
    train = raw[train_split]
    in_col = detect_column(train, input_column, input_candidates, "input", input_flag)
    lab_col = detect_column(train, label_column, LABEL_COLUMNS, "label", "--label-column")
    train = decode_off(train)
    if len(train) == 0:
        raise DatasetError(f"{dataset}: split '{train_split}' is empty.")
    labels = label_names(train, lab_col)
    if len(labels) < 2:
        raise DatasetError(f"{dataset}: column '{lab_col}' has {len(labels)} label(s); a classifier needs two.")
    train_y = label_ids(train, lab_col, labels, split=train_split)
    if eval_split is None and "validation" in raw:
        eval_split = "validation"
    where = dict(dataset=dataset, train_split=train_split, lab_col=lab_col, labels=labels)
    if folds:
        train, val, train_y, val_y, validation = no_split(train, train_y, eval_split, folds, group_column, seed,
                                                          **where)
    elif eval_split is not None:
        train, val, train_y, val_y, validation = given_split(raw, train, train_y, eval_split, **where)
    else:
        train, val, train_y, val_y, validation = carved_split(train, train_y, val_fraction, seed, group_column,
                                                              **where)
    train, train_y = subsample(train, train_y, max_train_samples, seed)
    val, val_y = subsample(val, val_y, max_eval_samples, seed + 1)
    info = {"id": dataset, "hub_id": hub_id or (dataset if is_hub_id(dataset) else None), "name": name,
            "revision": revision or dataset_revision(raw[train_split]),
            "train_split": train_split, "validation": asdict(validation), "validation_split": validation.describe(),
            "num_train": len(train), "num_validation": len(val)}
    return Splits(train, val, train_y, val_y, labels, in_col, lab_col, info)


def given_split(raw, train, train_y, eval_split: str, *, dataset: str, train_split: str, lab_col: str,
                labels: list[str]):
    """(train, val, train labels, val labels, the Validation record): the dataset's own split."""
    if eval_split not in raw:
        raise DatasetError(f"{dataset}: no '{eval_split}' split; it has {list(raw)}.")
    val = decode_off(raw[eval_split])
    if len(val) == 0:
        raise DatasetError(f"{dataset}: split '{eval_split}' is empty.")
    return train, val, train_y, label_ids(val, lab_col, labels, split=eval_split), Validation("split", eval_split)


def carved_split(train, train_y, val_fraction: float, seed: int, group_column: str | None, *, dataset: str,
                 train_split: str, lab_col: str, labels: list[str]):
    """(train, val, train labels, val labels, the Validation record): `val_fraction` of the training rows,
    stratified by label or by whole groups."""
    groups = None
    if group_column:
        detect_column(train, group_column, (), "group", "--group-column")
        groups = train[group_column]
    tr_rows, va_rows = carve_validation(train_y, val_fraction, seed, groups)
    if not va_rows or not tr_rows:
        raise DatasetError(f"{dataset}: too few rows ({len(train)}) to carve a validation split.")
    validation = Validation("carved", train_split, fraction=val_fraction, by=group_column, seed=seed)
    return train.select(tr_rows), train.select(va_rows), train_y[tr_rows], train_y[va_rows], validation


def no_split(train, train_y, eval_split: str | None, folds: int, group_column: str | None, seed: int, *,
             dataset: str, train_split: str, lab_col: str, labels: list[str]):
    """(train, an empty val, ..., the Validation record): K-fold cross-validation draws its folds from the
    training rows."""
    if eval_split is not None:
        raise DatasetError(f"--folds {folds}: {dataset} has a '{eval_split}' split; cross-validation draws its "
                           "folds from a training split that has none. Drop --folds to validate on it.")
    if folds < 2:
        raise DatasetError(f"--folds {folds}: give 2 or more (0 turns cross-validation off).")
    if group_column:
        detect_column(train, group_column, (), "group", "--group-column")
    validation = Validation("folds", train_split, by=group_column, seed=seed, folds=folds)
    return train, train.select([]), train_y, train_y[:0], validation


def load_eval_split(dataset: str, split: str, labels: Sequence[str], *, input_candidates: Sequence[str],
                    input_column: str | None = None, label_column: str | None = None, name: str | None = None,
                    revision: str | None = None, max_samples: int | None = None, seed: int = 0,
                    input_flag: str = "--input-column", adapt: Callable | None = None):
    """One split of `dataset` with label ids matched by name to a checkpoint's `labels`."""
    raw = load_raw(dataset, name=name, revision=revision)
    if adapt is not None:
        raw = adapt(raw)
    if split not in raw:
        raise MissingSplit(f"{dataset}: no '{split}' split; it has {list(raw)}.")
    ds = decode_off(raw[split])
    if len(ds) == 0:
        raise DatasetError(f"{dataset}: split '{split}' is empty.")
    in_col = detect_column(ds, input_column, input_candidates, "input", input_flag)
    lab_col = detect_column(ds, label_column, LABEL_COLUMNS, "label", "--label-column")
    y = label_ids(ds, lab_col, labels, split=split)
    ds, y = subsample(ds, y, max_samples, seed)
    return ds, y, in_col


def decode_off(ds):
    """Keep every decoded feature (images, audio, video...) as its encoded bytes: the tasks decode them,
    with their checks, themselves."""
    for column, feature in ds.features.items():
        if getattr(feature, "decode", False) is True and is_dataclass(feature):
            ds = ds.cast_column(column, replace(feature, decode=False))
    return ds


def load_task_splits(task, data, task_config, seed: int, dataset=None) -> Splits:
    """The training and validation rows that `data` (DataSettings) selects for `task`, its dataset adapter
    run with the task's settings; `dataset` overrides the paths of data.dataset (the same data in another
    place: one path per recorded dataset). Several datasets are loaded one by one and combined
    (`combine`)."""
    sources = data.sources
    if dataset is not None:
        paths = [dataset] if isinstance(dataset, (str, os.PathLike)) else list(dataset)
        if len(paths) != len(sources):
            raise DatasetError(f"{len(paths)} dataset path(s) given for a run on {len(sources)} dataset(s) "
                               f"({', '.join(s[0] for s in sources)}); give one for each, in that order.")
        sources = [(str(path), *rest) for path, (_, *rest) in zip(paths, sources)]
    several = len(sources) > 1

    def load(path, hub_id, config, revision):
        return load_splits(path, input_candidates=task.input_columns, input_column=data.input_column,
                           label_column=data.label_column, name=config, revision=revision,
                           train_split=data.train_split, eval_split=data.eval_split, val_fraction=data.val_fraction,
                           group_column=data.group_column, seed=seed,
                           max_train_samples=None if several else data.max_train_samples,
                           max_eval_samples=None if several else data.max_eval_samples, input_flag=task.input_flag,
                           adapt=lambda raw: task.adapt_dataset(raw, task_config, seed), hub_id=hub_id,
                           folds=data.folds)

    parts = [load(*source) for source in sources]
    if not several:
        return parts[0]
    splits = combine(parts, data.group_column)
    splits.train, splits.train_labels = subsample(splits.train, splits.train_labels, data.max_train_samples, seed)
    splits.val, splits.val_labels = subsample(splits.val, splits.val_labels, data.max_eval_samples, seed + 1)
    splits.info.update(num_train=len(splits.train), num_validation=len(splits.val))
    return splits


def combine(parts: list[Splits], group_column: str | None = None) -> Splits:
    """One `Splits` of several datasets' rows, each validated as it would be alone (its own validation
    split, or its own carve by label or group), then concatenated in order.

    - Labels are matched by name to the first dataset's, which is the label list; a label another dataset
      uses that the first does not have is an error (put the dataset with every label first).
    - Inputs keep the first dataset's column name; they must be of one kind. The group column comes along, as
      text, where every dataset has it.
    - With `group_column`, no group (speaker) is on both sides across datasets either: the training rows of
      a group that another dataset validates on are dropped, and counted in `info`.
    `info` is the first dataset's record with every dataset's in `sources`, and each one's validation rows
    (`val_rows`: start, stop in the combined validation split) for scores by dataset.
    """
    import datasets

    first = parts[0]
    labels, column = list(first.labels), first.input_column
    kept_group = group_column if group_column and all(
        group_column in p.train.column_names and group_column in p.val.column_names for p in parts) else None
    val_groups = [set(map(str, p.val[group_column])) if group_column in p.val.column_names else set() for p in parts]
    trains, vals, train_ys, val_ys, sources, start = [], [], [], [], [], 0
    for k, part in enumerate(parts):
        mapping = label_mapping(part, labels, first.info["id"])
        train, train_y = part.train, mapping[part.train_labels]
        dropped = 0
        if group_column in train.column_names:
            others = set().union(*(g for j, g in enumerate(val_groups) if j != k))
            keep = [i for i, g in enumerate(train[group_column]) if str(g) not in others]
            dropped = len(train) - len(keep)
            train, train_y = train.select(keep), train_y[keep]
        trains.append(same_input(train, part, first, kept_group))
        vals.append(same_input(part.val, part, first, kept_group))
        train_ys.append(train_y)
        val_ys.append(mapping[part.val_labels])
        sources.append({**part.info, "num_train": len(train), "dropped_train_rows": dropped,
                        "val_rows": [start, start + len(part.val)]})
        start += len(part.val)
    several = Validation("sources", first.info["train_split"])
    info = {**first.info, "sources": sources, "validation": asdict(several), "validation_split": several.describe()}
    return Splits(datasets.concatenate_datasets(trains), datasets.concatenate_datasets(vals), torch.cat(train_ys),
                  torch.cat(val_ys), labels, column, first.label_column, info)


def label_mapping(part: Splits, labels: list[str], first: str) -> torch.Tensor:
    """part's label ids -> ids in `labels`, by name. A label the part uses that `labels` lacks is an error;
    one it only names (a ClassLabel name without rows) maps nowhere (-1)."""
    used = set(torch.cat([part.train_labels, part.val_labels]).unique().tolist())
    missing = [name for i, name in enumerate(part.labels) if i in used and name not in labels]
    if missing:
        raise DatasetError(f"{part.info['id']}: label(s) {missing} are not among the labels of {first}, the first "
                           f"--dataset ({labels}). Labels are matched by name, and the first dataset's are the "
                           "model's: put the dataset that has every label first, or rename the labels to match.")
    return torch.tensor([labels.index(name) if name in labels else -1 for name in part.labels], dtype=torch.long)


def same_input(ds, part: Splits, first: Splits, group_column: str | None = None):
    """`ds` (rows of `part`) with the input column alone, named and typed as the first dataset's, and the
    group column as text where given (a cross-validation deals the first dataset's groups to its folds)."""
    ds = ds.select_columns([part.input_column, *([group_column] if group_column else [])])
    if group_column and ds.features[group_column] != datasets_string():
        ds = ds.cast_column(group_column, datasets_string())
    if part.input_column != first.input_column:
        ds = ds.rename_column(part.input_column, first.input_column)
    want = first.train.features[first.input_column]
    have = ds.features[first.input_column]
    if have != want:
        if type(have) is not type(want):
            raise DatasetError(f"{part.info['id']}: its inputs ('{part.input_column}', {type(have).__name__}) are "
                               f"not of the kind of {first.info['id']}'s ('{first.input_column}', "
                               f"{type(want).__name__}); datasets trained together need one kind of input.")
        ds = ds.cast_column(first.input_column, want)
    return ds


def datasets_string():
    import datasets
    return datasets.Value("string")


def is_hub_id(dataset: str) -> bool:
    """Whether `load_raw` reads `dataset` from the Hub: no local file or folder of that name, no path."""
    return (not Path(os.path.expanduser(dataset)).exists() and not dataset.startswith((".", "/", "~"))
            and dataset.count("/") <= 1)


def dataset_revision(ds) -> str | None:
    """The Hub commit the data came from, read from the cached files' path; None for local data."""
    for f in getattr(ds, "cache_files", None) or []:
        match = re.search(r"[\\/]([0-9a-f]{40})[\\/]", f.get("filename", ""))
        if match:
            return match.group(1)
    return None


def default_name(dataset: str) -> str:
    """`uoft-cs/cifar10` -> `cifar10`; `../data/cifar10/` -> `cifar10`; `x/train.csv` -> `train`."""
    path = Path(dataset.rstrip("/\\"))
    name = path.stem if path.suffix.lower() in FILE_BUILDERS else path.name
    return name or "model"
