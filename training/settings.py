"""Typed settings, each written once: a dataclass field declared with `option(...)` is also a CLI flag.

The field's name, type, default, help text and choices live in one place; `add_flags` turns them into
argparse flags (`--batch-size` for `batch_size`, or the field's own `flag=`), `from_flags` reads them
back into the dataclass, and `to_record` / `from_record` write and read the flat `train_args` entry of
config.json. The argparse `Namespace` stops in `training.cli`; the engine, the data layer and the tasks
receive these dataclasses.

A task settings field's `role` says what `--init-from` and `--transfer-from` do with it: "network" settings
(the architecture and its sizes) must equal the checkpoint's, "train" settings (augmentation, dropout) come from the new run, "fitted" ones
are learned from the data. (The data and engine settings are the run's own: they have no role.)
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable

from training.errors import SettingsError

ROLES = ("network", "train", "fitted")


def option(default: Any = MISSING, help: str | None = None, *, flag: str | None = None, choices=None,
           type: Callable | None = None, metavar: str | None = None, negatable: bool = False,
           required: bool = False, role: str = "network", default_factory: Callable | None = None,
           compare: bool = True, per_source: bool = False):
    """A dataclass field; with `help` it is also a command-line flag.

    `type` defaults to the type of `default` (give it when the default is None); a bool is a switch
    (`--x`), or `--x/--no-x` when `negatable`. " (default: ...)" is added to the help unless it already
    speaks of a default, the default is None, or the flag is a switch that is off by default.
    `per_source` fields are tuples with one value per `--dataset` (see `PerSource`).
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {ROLES}")
    cli = None if help is None else {"help": help, "flag": flag, "choices": choices, "type": type,
                                     "metavar": metavar, "negatable": negatable, "required": required,
                                     "per_source": per_source}
    metadata = {"cli": cli, "role": role}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata, compare=compare)
    return field(default=default, metadata=metadata, compare=compare)


def role_of(f) -> str:
    return f.metadata.get("role", "network")


def fields_with_role(cls, role: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if role_of(f) == role)


def cli_fields(cls) -> list:
    return [f for f in fields(cls) if f.metadata.get("cli")]


def flag_of(f) -> str:
    return f.metadata["cli"]["flag"] or "--" + f.name.replace("_", "-")


def dest_of(f) -> str:
    """The key of a field in argparse's namespace and in the recorded `train_args`: its flag's name."""
    return flag_of(f)[2:].replace("-", "_")


def default_of(f, defaults: dict | None = None) -> Any:
    if defaults and f.name in defaults:
        return defaults[f.name]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def add_flags(parser, cls, *, defaults: dict | None = None, title: str | None = None, suppress: bool = False):
    """Add a flag for every `option` of dataclass `cls` with a help text; `defaults` overrides field
    defaults by field name (a task's engine defaults). With `suppress` a flag not given leaves nothing in
    the namespace (to tell which flags were given). Returns the argument group (or the parser)."""
    group = parser.add_argument_group(title) if title else parser
    for f in cli_fields(cls):
        cli, default = f.metadata["cli"], argparse.SUPPRESS if suppress else default_of(f, defaults)
        kwargs = {"dest": dest_of(f), "default": default, "help": cli["help"]}
        if cli["required"]:
            kwargs["required"] = True
            kwargs.pop("default")
        if cli.get("per_source"):
            kwargs.update(action=PerSource, default=default if suppress else None, type=cli["type"] or str,
                          metavar=cli["metavar"])
            group.add_argument(flag_of(f), **kwargs)
            continue
        if isinstance(default_of(f, defaults), bool) or cli["type"] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if cli["negatable"] else "store_true"
        else:
            kwargs["type"] = cli["type"] or (type(default_of(f, defaults)) if default_of(f, defaults) is not None
                                             else str)
            for key in ("choices", "metavar"):
                if cli[key] is not None:
                    kwargs[key] = cli[key]
        shows_default = "default" in kwargs["help"] or cli["required"] or suppress
        if not shows_default and default is not None and not (kwargs.get("action") == "store_true" and not default):
            kwargs["help"] += " (default: %(default)s)"
        group.add_argument(flag_of(f), **kwargs)
    return group


class PerSource(argparse.Action):
    """`--dataset` may be repeated; `--dataset-id`, `--dataset-config` and `--revision` then belong to the
    `--dataset` given before them (or to the first, when given before any). Each is kept as a list with one
    entry per dataset (None where not given)."""

    def __call__(self, parser, namespace, value, option_string=None):
        if self.dest == SOURCE_DEST:
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), value])
            return
        index = max(0, len(getattr(namespace, SOURCE_DEST, None) or []) - 1)
        values = list(getattr(namespace, self.dest, None) or [])
        values += [None] * (index + 1 - len(values))
        if values[index] is not None:
            raise argparse.ArgumentError(self, f"given twice for one --dataset ({values[index]!r} and {value!r}); "
                                               "give it after each --dataset it belongs to")
        values[index] = value
        setattr(namespace, self.dest, values)


SOURCE_DEST = "dataset"


def from_flags(cls, values: dict, **overrides):
    """`cls` from parsed flags (`vars(namespace)`, keyed by flag name); fields without a flag keep their
    defaults unless given in `overrides`."""
    kwargs = {f.name: values[dest_of(f)] for f in cli_fields(cls) if dest_of(f) in values}
    return cls(**{**kwargs, **overrides})


def json_value(value: Any) -> Any:
    """A JSON value: tuples (e.g. --widths) become lists; anything else JSON cannot hold, its text."""
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    if isinstance(value, (int, float, str, bool, type(None), list)):
        return value
    return str(value)


def to_record(obj) -> dict:
    """The flag values of a settings object, keyed as the flags are named (config.json's train_args); a
    per-source value of a run on one dataset is recorded as that one value."""
    return {dest_of(f): json_value(one_source(f, getattr(obj, f.name))) for f in cli_fields(obj)}


def one_source(f, value):
    per_source = f.metadata["cli"].get("per_source")
    return value[0] if per_source and isinstance(value, tuple) and len(value) == 1 else value


def record_fields(cls, record: dict) -> dict:
    """{field name: value} of the flags of `cls` found in a recorded train_args dict; lists come back as
    tuples (JSON has no tuples)."""
    return {f.name: tuple(record[dest_of(f)]) if isinstance(record[dest_of(f)], list) else record[dest_of(f)]
            for f in cli_fields(cls) if dest_of(f) in record}


def from_record(cls, record: dict, **overrides):
    """`cls` from a recorded train_args dict: recorded flags over the field defaults (a record made
    before a setting existed gets its default)."""
    return cls(**{**record_fields(cls, record), **overrides})


def from_dict(cls, d: dict, *, exclude: tuple[str, ...] = ()):
    """`cls(**d)` for a settings dataclass, refusing keys it does not define (a foreign or newer
    config.json) with a ValueError that names them; lists become tuples where the default is a tuple.
    `exclude` lists fields never read from a dict."""
    known = {f.name: f for f in fields(cls) if f.name not in exclude}
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) and isinstance(default_of(known[k]), tuple) else v
                  for k, v in d.items()})


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


# Flags that several commands share, each written once here.
HUB_CONFIG = "configuration name on the Hub (e.g. v0.02)"
HUB_REVISION = "Hub revision (branch, tag or commit)"
LABEL_COLUMN = "label column (default: auto, label or labels)"


def device_option():
    return option(None, "cuda, cuda:1, mps or cpu (default: cuda, then mps, then cpu)", type=str)


def workers_option(what: str = "processes decoding the data"):
    return option(help=what, default_factory=default_workers)


HUB_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")


def check_hub_id(value: str, flag: str = "--dataset-id") -> str:
    """`value` if it has the form of a Hugging Face Hub id, owner/name; else a SettingsError that says so."""
    parts = value.split("/")
    if len(parts) != 2 or not all(HUB_ID.fullmatch(p) and "--" not in p and ".." not in p for p in parts):
        raise SettingsError(f"{flag} {value!r}: expected a Hugging Face Hub dataset id of the form owner/name "
                         "(e.g. uoft-cs/cifar10): letters, digits, '-', '_' and '.', one '/'.")
    return value


# ------------------------------------------------------------------------------------ the run's settings

@dataclass
class DataSettings:
    """Which rows a run trains and validates on (training/data.py reads these). `dataset` and the three
    flags after it hold one entry per dataset: a run may train on several at once."""
    dataset: tuple[str, ...] = option((), "Hub id (uoft-cs/cifar10), a local folder (Hub layout or class "
                                          "subfolders) or a parquet/csv/json file; repeat it to train on several "
                                          "datasets at once (their labels are matched by name to the first's)",
                                      required=True, per_source=True)
    dataset_id: tuple[str | None, ...] = option((), "the Hub id (owner/name) of the dataset a local --dataset "
                                                    "(the one before it) is a copy of, recorded in config.json and "
                                                    "named by the model card", metavar="OWNER/NAME", per_source=True)
    dataset_config: tuple[str | None, ...] = option((), f"{HUB_CONFIG} of the --dataset before it", per_source=True)
    revision: tuple[str | None, ...] = option((), f"{HUB_REVISION} of the --dataset before it", per_source=True)
    input_column: str | None = None   # its flag is the task's (--image-column, --text-column, ...)
    label_column: str | None = option(None, LABEL_COLUMN, type=str)
    train_split: str = option("train", "split to train on")
    eval_split: str | None = option(None, "split used for validation (default: 'validation' if present, else "
                                          "carved from train)", type=str)
    val_fraction: float = option(0.1, "fraction of train held out for validation when there is no validation "
                                      "split, stratified by label")
    group_column: str | None = option(None, "hold out whole groups (e.g. speaker_id) for validation instead of "
                                            "stratifying", type=str)
    folds: int = option(0, "cross-validate with this many folds (2 or more) instead of one validation split: each "
                           "fold's run trains on the other folds and is scored on its own (whole groups with "
                           "--group-column, else stratified by label); the model kept then trains on every row for "
                           "the same epochs, and its recorded validation is every row scored by the fold run that "
                           "did not train on it; 0 = off")
    max_train_samples: int | None = option(None, "use at most this many training rows", type=int)
    max_eval_samples: int | None = option(None, "use at most this many validation rows", type=int)
    workers: int = workers_option("processes decoding the data once before training")
    no_cache: bool = option(False, "decode again instead of reusing the on-disk tensor cache")

    def __post_init__(self):
        self.dataset = per_source(self.dataset)
        n = max(1, len(self.dataset))
        for name in ("dataset_id", "dataset_config", "revision"):
            values = per_source(getattr(self, name))
            if len(values) > n:
                raise SettingsError(f"--{name.replace('_', '-')}: given {len(values)} times for {n} --dataset")
            setattr(self, name, values + (None,) * (n - len(values)))
        for hub_id in self.dataset_id:
            if hub_id is not None:
                check_hub_id(hub_id)

    @property
    def sources(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(dataset, dataset_id, dataset_config, revision) of every --dataset, in order (`__post_init__`
        aligned them)."""
        return list(zip(self.dataset, self.dataset_id, self.dataset_config, self.revision))


def per_source(value) -> tuple:
    """A per-source setting as a tuple: one value (a run on one dataset, or a record made before several
    were possible) becomes a tuple of one; None, an empty one."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@dataclass
class TrainSettings:
    """How the engine trains (training/engine.py reads these); each task overrides some defaults."""
    epochs: int = option(10, "passes over the training rows")
    batch_size: int = option(64, "rows per step, per process")
    eval_batch_size: int | None = option(None, "(default: twice --batch-size)", type=int)
    lr: float = option(1e-3, "peak learning rate")
    weight_decay: float = option(0.0, "decoupled (AdamW) or L2 (SGD) weight decay")
    optimizer: str = option("adamw", "optimiser", choices=("sgd", "adamw"))
    momentum: float = option(0.9, "SGD (Nesterov) momentum")
    norm_lr_scale: float = option(1.0, "multiply the learning rate of BatchNorm parameters by this; airbench's "
                                       "fixed-scale BatchNorm trains its shifts at 64x")
    backbone_lr_scale: float = option(1.0, "multiply the learning rate of everything but the classifier head by "
                                           "this, e.g. 0.1 to fine-tune pretrained weights gently")
    freeze_backbone: bool = option(False, "train the classifier head alone (a linear probe): the rest keeps its "
                                          "weights and BatchNorm statistics")
    lookahead: bool = option(False, "every 5 steps pull the weights toward a slow average of themselves and "
                                    "restart from it; the average is the final model (airbench's Lookahead)")
    precision: str = option("auto", "auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 also on CPUs with AMX "
                                    "or AVX512-BF16, where it is about 3x faster for convolutions",
                            choices=("auto", "bf16", "fp32"))
    warmup_fraction: float = option(0.1, "share of steps spent warming up the learning rate")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss")
    grad_clip: float = option(0.0, "clip the gradient norm to this value; 0 = off")
    class_weights: bool = option(False, "weight the loss by inverse label frequency, for imbalanced data",
                                 negatable=True)
    balanced_sampling: bool = option(False, "draw each epoch's rows (as many as the training split has) with "
                                            "replacement, every label equally likely, for imbalanced data",
                                     negatable=True)
    patience: int = option(0, "stop after this many epochs without a better validation accuracy; 0 = never (with "
                              "--keep best)")
    keep: str = option("best", "the epoch the checkpoint holds: best (the highest validation accuracy; ties to the "
                               "lower loss) or last (a fixed schedule, so that the recorded validation figure is "
                               "not the best of several noisy ones)", choices=("best", "last"))
    seed: int = option(0, "seed of the carved validation split, the initialisation and the batch order")
    device: str | None = device_option()
    threads: int = option(0, "CPU threads for torch; 0 = torch's default")
    output: str | None = option(None, "checkpoint folder (default: checkpoints/<task>/<dataset name>)", type=str)
    init_from: str | None = option(None, "start from the weights of this checkpoint folder (same task, labels "
                                         "and model arguments; its tokenizer too) instead of a fresh network, "
                                         "with a new optimiser and schedule, e.g. a second, regularised run on "
                                         "top of a first", type=str, metavar="CHECKPOINT")
    transfer_from: str | None = option(None, "transfer learning: start from every weight of this checkpoint folder "
                                             "but its classifier head, which starts afresh for this dataset's labels "
                                             "(same task and model arguments; its tokenizer too), e.g. a model of "
                                             "other labels taught new ones; not with --init-from or --resume",
                                       type=str, metavar="CHECKPOINT")
    resume: bool = option(False, "continue from the resume state in --output (after a crash or Ctrl-C)")
    time_limit: float = option(0.0, "stop after the epoch during which the run passes this many seconds, keeping "
                                    "the best epoch so far; 0 = no limit", metavar="SECONDS")
    from_scratch: bool = option(False, "no default recipe: train the settings' own defaults (the task's network "
                                       "from random weights) instead of fine-tuning a pretrained start chosen from "
                                       "the data")
    checkpoints: str = option("checkpoints", "the folder of shipped checkpoints (<task>/<name>) that a default recipe "
                                             "may start from, e.g. speech/speech_commands for speech")
    quiet: bool = option(False, "no progress bars or summaries")
    dry_run: bool = option(False, "load the data, choose the default recipe, print what the run would train with "
                                  "(the recipe and every setting, as config.json's train_args) as JSON, and stop")


@dataclass
class RunSettings:
    """Everything one training run is given: the task's settings and the data and engine settings, and
    which of their fields the user set (the command line's flags): a task's default recipe fills the others.
    `given` None (settings built in code, not from a command line) applies no recipe."""
    task: Any                      # the task's settings dataclass (its Config)
    data: DataSettings
    train: TrainSettings
    given: frozenset[str] | None = None
