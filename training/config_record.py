"""config.json as one typed record: the dataclasses every reader reads as attributes, and their JSON.

`CheckpointRecord.from_json(data)` turns a format-2 config.json into the record, checking every value's
type and refusing absurd ones (`check`); `to_json()` is the file's content. A record is built by the
run that trains the checkpoint (training/records.py `checkpoint_config`) and written by one function,
training/checkpoint.py `write_record`.
Facts the code acts on are data: which rows a run validated on is a `Validation`
(`{kind, split, fraction, by, seed}`); its sentence ("train (held out 0.1, stratified)") is written
beside it for people and the model card, and never read back. Format-1 files are turned into format 2
on read by training/migrate.py.

What each task owns stays the task's: `model` (the task's settings, `Task.config_to_dict`),
`preprocessing` and `train_args` (the run's flags) are plain JSON objects here, read by the task and
by training/settings.py. timm's own keys (`TimmKeys`) sit at the top level beside ours, as timm writes
and reads them.
"""

from __future__ import annotations

import math
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from training.errors import TriptychError

FORMAT_VERSION = 2
MAX_LABELS = 100_000          # timm's largest label sets (ImageNet-21k) have 21,843
MAX_LABEL_CHARS = 1_000
OMIT = {"omit": True}         # field metadata: left out of the JSON when None or empty


class RecordError(TriptychError):
    """A config.json value of the wrong type or out of range; the message names the entry."""


@dataclass
class Validation:
    """The rows a run validated on. kind "split": the dataset's own split `split`; "carved": `fraction` of
    the training split `split` held out with `seed`, stratified by label (`by` None) or as whole groups of
    the column `by` (e.g. speakers); "folds": `folds`-fold cross-validation of the training split `split`
    (training/folds.py: every row scored by the fold run that did not train on it; the model kept trained on
    every row); "sources": each dataset of a run on several validated its own way."""
    kind: str = "split"
    split: str = "validation"
    fraction: float | None = None
    by: str | None = None
    seed: int | None = None
    folds: int | None = field(default=None, metadata=OMIT)

    @property
    def carved(self) -> bool:
        return self.kind == "carved"

    @property
    def cross_validated(self) -> bool:
        return self.kind == "folds"

    def describe(self) -> str:
        """The sentence for people: "validation", "train (held out 0.1, stratified)", ...; never parsed."""
        if self.kind == "sources":
            return "each dataset's own (see sources)"
        if self.cross_validated:
            by = f"by {self.by}" if self.by else "stratified by label"
            return (f"{self.split}, {self.folds}-fold cross-validation {by} (every row scored by the fold run that "
                    "did not train on it)")
        if not self.carved:
            return self.split
        how = ", stratified" if self.by is None else f" by {self.by}"
        return f"{self.split} (held out {self.fraction:g}{how})"


@dataclass
class DatasetRecord:
    """The data a run trained on (`load_splits`): the Hub id even when read from a local copy."""
    id: str | None = None
    hub_id: str | None = None
    name: str | None = None
    revision: str | None = None
    train_split: str = "train"
    validation: Validation = field(default_factory=Validation)
    num_train: int | None = None
    num_validation: int | None = None
    sources: tuple[DatasetRecord, ...] = field(default=(), metadata=OMIT)   # a run on several datasets
    dropped_train_rows: int | None = field(default=None, metadata=OMIT)     # (a source)
    val_rows: tuple[int, ...] | None = field(default=None, metadata=OMIT)   # (a source) start, stop
    extra: dict = field(default_factory=dict)
    DERIVED: ClassVar[tuple[str, ...]] = ("validation_split",)   # written from `validation`, never read

    @property
    def parts(self) -> tuple[DatasetRecord, ...]:
        """Every dataset trained on: the sources of a run on several, else this one."""
        return self.sources or (self,)

    @property
    def carved(self) -> bool:
        """Whether any dataset's validation rows were held out of its training split."""
        return any(part.validation.carved for part in self.parts)

    def json_extra(self) -> dict:
        return {"validation_split": self.validation.describe()}


@dataclass
class DatasetRef:
    id: str | None = None
    hub_id: str | None = None


@dataclass
class LabelScores:
    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0
    support: int = 0


@dataclass
class DatasetScore:
    accuracy: float = 0.0
    num_examples: int = 0


@dataclass
class Unsure:
    """The "unsure" threshold chosen on the validation rows (metrics.unsure_threshold), and its figures."""
    threshold: float = 0.0
    fraction_below: float | None = None
    accuracy_below: float | None = None
    accuracy_above: float | None = None
    rule: str | None = None


@dataclass
class FoldScore:
    """One fold run of a cross-validation: the rows it trained on and those it was scored on (their groups)."""
    fold: int = 0
    num_train: int = 0
    num_examples: int = 0
    accuracy: float = 0.0
    groups: tuple[str, ...] = field(default=(), metadata=OMIT)


@dataclass
class Metrics:
    accuracy: float | None = field(default=None, metadata=OMIT)
    macro_f1: float | None = field(default=None, metadata=OMIT)
    num_examples: int | None = field(default=None, metadata=OMIT)
    per_label: dict[str, LabelScores] = field(default_factory=dict, metadata=OMIT)
    epoch: int | None = field(default=None, metadata=OMIT)
    val_loss: float | None = field(default=None, metadata=OMIT)
    by_dataset: dict[str, DatasetScore] = field(default_factory=dict, metadata=OMIT)
    by_group: dict[str, DatasetScore] = field(default_factory=dict, metadata=OMIT)   # with --group-column
    folds: tuple[FoldScore, ...] = field(default=(), metadata=OMIT)                  # a cross-validation's runs
    unsure: Unsure | None = field(default=None, metadata=OMIT)
    extra: dict = field(default_factory=dict)


@dataclass
class Pretrained:
    """Where a network's starting weights came from (training/weights.py), with their license."""
    source: str | None = None
    kind: str | None = field(default=None, metadata=OMIT)     # e.g. "the pretrained sentence encoder ..."
    file: str | None = field(default=None, metadata=OMIT)
    sha256: str | None = field(default=None, metadata=OMIT)
    license: str | None = None


@dataclass
class RecipeRecord:
    """The default recipe a run's settings came from (Task.recipe): what it chose and why, from the data."""
    name: str = ""
    reason: str = ""
    settings: dict = field(default_factory=dict)


@dataclass
class Transfer:
    """The checkpoint whose body a --transfer-from run took."""
    checkpoint: str = ""
    labels: tuple[str, ...] = ()
    architecture: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    dataset: DatasetRef = field(default_factory=DatasetRef)
    pretrained: Pretrained | None = field(default=None, metadata=OMIT)


@dataclass
class Stage:
    """A checkpoint a --init-from run started from, as that run recorded it (nested: its own start too)."""
    checkpoint: str = ""
    architecture: str | None = field(default=None, metadata=OMIT)
    train_args: dict = field(default_factory=dict)
    training_seconds: float | None = field(default=None, metadata=OMIT)
    hardware: str | None = field(default=None, metadata=OMIT)
    init_from: Stage | None = field(default=None, metadata=OMIT)
    transferred_from: Transfer | None = field(default=None, metadata=OMIT)
    metrics: Metrics = field(default_factory=Metrics)
    extra: dict = field(default_factory=dict)


@dataclass
class TimmKeys:
    """timm's keys, at the top level of config.json beside ours, as timm's `save_config_for_hf` writes them
    (`architecture`, timm's own name of the network, is the record's): `timm.create_model("local-dir:DIR")`
    and `"hf-hub:OWNER/NAME"` read them."""
    num_classes: int
    num_features: int
    pretrained_cfg: dict
    label_names: tuple[str, ...] = ()
    global_pool: str | None = field(default=None, metadata=OMIT)
    model_args: dict = field(default_factory=dict, metadata=OMIT)


TIMM_KEYS = tuple(f.name for f in fields(TimmKeys))


@dataclass
class CheckpointRecord:
    """The whole of a checkpoint's config.json."""
    task: str
    labels: tuple[str, ...]
    model: dict
    architecture: str | None = None
    preprocessing: dict = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    dataset: DatasetRecord = field(default_factory=DatasetRecord)
    train_args: dict = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    hardware: str | None = None
    training_seconds: float | None = None
    created: str | None = None
    pretrained: Pretrained | None = field(default=None, metadata=OMIT)
    recipe: RecipeRecord | None = field(default=None, metadata=OMIT)
    init_from: Stage | None = field(default=None, metadata=OMIT)
    transferred_from: Transfer | None = field(default=None, metadata=OMIT)
    unsure_threshold: float | None = field(default=None, metadata=OMIT)
    timm: TimmKeys | None = None
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)   # keys this code does not know, kept as they were

    @property
    def feature_version(self) -> int:
        """The preprocessing code's version the checkpoint was made with (1 before versions were recorded)."""
        return int(self.preprocessing.get("feature_version", 1))

    def runs(self) -> list:
        """This run and the runs it started from (--init-from, nested), newest first."""
        out = [self]
        while out[-1].init_from is not None:
            out.append(out[-1].init_from)
        return out

    @classmethod
    def from_json(cls, data: dict) -> CheckpointRecord:
        """The record of a format-2 config.json; RecordError names a missing, mistyped or absurd entry."""
        if not isinstance(data, dict):
            raise RecordError("expected a JSON object.")
        data = dict(data)
        if "pretrained_cfg" in data:   # timm's keys beside ours
            data["timm"] = {k: data.pop(k) for k in TIMM_KEYS if k in data}
        record = from_json(cls, data, "")
        check(record)
        return record

    def to_json(self) -> dict:
        """config.json's content, plain JSON: timm's keys at the top level, after the labels."""
        out = to_json(self)
        timm = out.pop("timm", None)
        if timm:
            keys = list(out)
            at = keys.index("labels") + 1
            out = {**{k: out[k] for k in keys[:at]}, **timm, **{k: out[k] for k in keys[at:]}}
        return {"format_version": out.pop("format_version"), **out}


# ------------------------------------------------------------------------------------------ JSON

def from_json(cls, data, where: str):
    """An instance of dataclass `cls` from a JSON object, each value converted to its field's type."""
    if not isinstance(data, dict):
        raise RecordError(f"'{where or cls.__name__}': expected a JSON object, not {type(data).__name__}.")
    hints, names = get_type_hints(cls), {f.name for f in fields(cls)}
    data = {k: v for k, v in data.items() if k not in getattr(cls, "DERIVED", ())}
    kwargs = {k: convert(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in data.items()
              if k in names and k != "extra"}
    if "extra" in names:
        kwargs["extra"] = {k: v for k, v in data.items() if k not in names}
    required = [f.name for f in fields(cls) if f.name not in kwargs and f.default is f.default_factory is MISSING]
    if required:
        raise RecordError(f"the '{(where + '.' if where else '') + required[0]}' entry is missing.")
    return cls(**kwargs)


def convert(hint, value, where: str):
    """`value` as type `hint`: a dataclass, an optional, a tuple or dict of one type, or a JSON scalar."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return convert(next(a for a in args if a is not type(None)), value, where)
    if is_dataclass(hint):
        return from_json(hint, value, where)
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecordError(f"'{where}': expected a list, not {type(value).__name__}.")
        return tuple(convert(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecordError(f"'{where}': expected a JSON object, not {type(value).__name__}.")
        return {k: convert(args[1], v, f"{where}.{k}") for k, v in value.items()} if args else dict(value)
    return scalar(hint, value, where)


def scalar(hint: type, value, where: str):
    if hint is bool and isinstance(value, bool):
        return value
    if hint in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or (hint is int and value != int(value)):
            raise RecordError(f"'{where}': {value!r} is not a finite {hint.__name__}.")
        return hint(value)
    if hint is str and isinstance(value, str):
        return value
    raise RecordError(f"'{where}': expected a {hint.__name__}, not {type(value).__name__} {str(value)[:40]!r}.")


def to_json(obj):
    """Plain JSON from a record: dataclasses as objects (OMIT fields left out when None or empty, `extra`
    merged in), tuples as lists."""
    if is_dataclass(obj):
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if f.name == "extra" or (f.metadata.get("omit") and value in (None, (), {})):
                continue
            out[f.name] = to_json(value)
        if hasattr(obj, "json_extra"):
            out.update(obj.json_extra())
        return {**out, **to_json(getattr(obj, "extra", {}))}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


# ------------------------------------------------------------------------------------------ checks

def check(record: CheckpointRecord) -> None:
    """Refuse values no checkpoint of ours has, before anything is built from them."""
    if record.format_version != FORMAT_VERSION:
        raise RecordError(f"format_version {record.format_version} is not {FORMAT_VERSION}.")
    if not record.task:
        raise RecordError("the 'task' entry is empty.")
    labels = record.labels
    if not labels or not all(labels):
        raise RecordError("'labels' must be a non-empty list of names.")
    if len(labels) > MAX_LABELS:
        raise RecordError(f"'labels' has {len(labels):,} names; a checkpoint may have at most {MAX_LABELS:,}.")
    if max(map(len, labels)) > MAX_LABEL_CHARS:
        raise RecordError(f"a label is over {MAX_LABEL_CHARS} characters long.")
    if len(set(labels)) != len(labels):
        raise RecordError("'labels' names a label twice; every label must be unique.")
    if record.unsure_threshold is not None and not 0 <= record.unsure_threshold <= 1:
        raise RecordError(f"'unsure_threshold' {record.unsure_threshold} is not between 0 and 1.")
    version = record.preprocessing.get("feature_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"'preprocessing.feature_version' {version!r} is not a version number.")
    if record.timm is not None:
        check_timm(record.timm, labels)


def check_timm(keys: TimmKeys, labels: tuple[str, ...]) -> None:
    if keys.num_classes != len(labels) or (keys.label_names and tuple(keys.label_names) != tuple(labels)):
        raise RecordError(f"timm's 'num_classes' {keys.num_classes} and 'label_names' do not match the "
                          f"{len(labels)} 'labels'.")
    size = keys.pretrained_cfg.get("input_size")
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(s, int) and 0 < s <= 4096 for s in size)):
        raise RecordError(f"timm's 'pretrained_cfg.input_size' {size!r} is not [channels, height, width] of at "
                          "most 4096 pixels.")

