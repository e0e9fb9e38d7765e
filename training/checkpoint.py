"""The checkpoint folder: `model.safetensors` + `config.json` (+ task files such as `tokenizer.json`).

Plain data only, so loading runs no code: weights come from safetensors, never from a pickle. config.json
is one typed record (training/config_record.py), format 2; a format-1 file is read as format 2
(training/legacy.py). The folder is a valid Hugging Face model repo and can be pushed to the Hub as it is;
an image model timm builds is also timm's own format (`timm.create_model("local-dir:DIR")`). Resume state
(optimizer, scheduler, epoch, RNG) lives beside it in `resume.pt`, holding tensors and plain containers
only, and is read back with `torch.load(weights_only=True)`.

Loading checks the record before any network is built: its values' types and ranges, the size of one
input, and the shape of every tensor the network would have against the weights file's header, with the
network built on the meta device (no memory). A folder with absurd values fails with a CheckpointError
that names the file, before anything is allocated.

Every file is written to a temporary name and moved into place with `os.replace`, so a crash or Ctrl-C
during a save leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from training import config_record
from training.config_record import CheckpointRecord, RecordError
from training.errors import SettingsError, TriptychError
from training.legacy import upgrade
from training.weights import WeightsError

FORMAT_VERSION = config_record.FORMAT_VERSION
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
RESUME_NAME = "resume.pt"
ONNX_NAME = "model.onnx"         # the graph `python -m training export` writes beside the weights
ONNX_INT8_NAME = "model.int8.onnx"
# config.json of a checkpoint with 100,000 labels is about 2 MB; a larger file is not one of ours.
MAX_CONFIG_BYTES = 16 * 2**20
# One input of the largest size a model takes (Task.example_inputs): 64 M values is a 4,600-pixel square
# image, or 22 minutes of 48 kHz audio; a checkpoint asking for more would exhaust memory per request.
MAX_INPUT_VALUES = 2**26


class CheckpointError(TriptychError):
    """A checkpoint folder that cannot be used; the message names the file and what is wrong."""


class Loaded(NamedTuple):
    model: torch.nn.Module
    record: CheckpointRecord
    task_config: object        # the task's <Task>Config


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the finished file over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; the result is an ordinary shared file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
    atomic_write(path, write)


def as_record(config: CheckpointRecord | dict) -> CheckpointRecord:
    """A record from a record, or from config.json's content (any format this code reads)."""
    if isinstance(config, CheckpointRecord):
        return config
    return CheckpointRecord.from_json(upgrade({"format_version": FORMAT_VERSION, **config}))


def save_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, config: CheckpointRecord | dict) -> None:
    """Write the weights and `config.json`. `config` (the run's record, or its JSON: it must carry `task`,
    `labels` and `model`) gets timm's keys where timm builds the network. A model with a `storage_dtype`
    (e.g. torch.float16) has its floating-point tensors stored in that type; loading (`load_state_dict`) casts
    them back to the model's own."""
    folder = Path(folder)
    model = unwrap(model)
    record = with_timm_keys(as_record(config), model)
    dtype = getattr(model, "storage_dtype", None)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().to("cpu").contiguous()
             for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    write_record(folder, record)


def with_timm_keys(record: CheckpointRecord, model: torch.nn.Module, task_config=None) -> CheckpointRecord:
    """`record` with timm's config.json keys (and timm's name as `architecture`) when the task says timm
    builds this network (Task.timm_config); unchanged otherwise."""
    from training.tasks import get_task

    task = get_task(record.task)
    task_config = task_config if task_config is not None else task.config_from_checkpoint(record.to_json())
    keys = task.timm_config(task_config, unwrap(model), list(record.labels))
    if keys is None:
        return record
    keys = dict(keys)
    return replace(record, architecture=keys.pop("architecture"),
                   timm=config_record.from_json(config_record.TimmKeys, keys, "timm"))


def write_record(folder: str | os.PathLike, record: CheckpointRecord) -> None:
    write_json(Path(folder) / CONFIG_NAME, record.to_json())


def upgrade_folder(folder: str | os.PathLike, *, always: bool = False) -> CheckpointRecord:
    """The folder's record, its config.json rewritten in format 2 first when it is older (or `always`):
    with timm's keys where timm builds the network, which takes the network to compute. The weights are
    not touched."""
    if not always and read_json(folder).get("format_version") == FORMAT_VERSION:
        return read_record(folder)
    loaded = load(folder)
    record = with_timm_keys(loaded.record, loaded.model, loaded.task_config)
    write_record(folder, record)
    return record


def read_json(folder: str | os.PathLike) -> dict:
    """config.json's content as it is on disk: it must exist, be of a sane size and parse to an object."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. A checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME}.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size / 2**20:.0f} MB, more than any checkpoint's "
                              f"{CONFIG_NAME} ({MAX_CONFIG_BYTES // 2**20} MB at most).")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object.")
    return config


def read_record(folder: str | os.PathLike) -> CheckpointRecord:
    """config.json as the typed record, checked: a format-1 file is read as format 2."""
    path = Path(folder) / CONFIG_NAME
    try:
        return CheckpointRecord.from_json(upgrade(read_json(folder)))
    except RecordError as e:
        raise CheckpointError(f"{path}: {e}") from None


def read_config(folder: str | os.PathLike) -> dict:
    """config.json as plain data, in format 2 (a format-1 file migrated, as `read_record` reads it)."""
    return read_record(folder).to_json()


def read_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = weights_path(folder)
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}).") from None


def weights_path(folder: str | os.PathLike) -> Path:
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. Train a model with `python -m training ...` first.")
    return path


def header_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in the weights file, from its header alone (no tensor is read)."""
    from safetensors import safe_open

    path = weights_path(folder)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}).") from None


def load(folder: str | os.PathLike, device: torch.device | str = "cpu") -> Loaded:
    """Rebuild the model from `config.json` and load its weights strictly: (model, record, task_config).

    The label count must match the model's output and the preprocessing's feature version must be the
    one the task's code provides; a mismatch is an error, never `strict=False` or different features.
    Every size is checked before the network is built (`check_buildable`).
    """
    from training.tasks import get_task
    from training.tasks.base import FeatureVersionError

    folder = Path(folder)
    record = read_record(folder)
    where = folder / CONFIG_NAME
    try:
        task = get_task(record.task)
    except KeyError:
        raise CheckpointError(f"{where}: unknown task {record.task!r}.") from None
    try:
        task_config = task.config_from_checkpoint(record.to_json())
    except (TypeError, ValueError, SettingsError) as e:
        raise CheckpointError(f"{where}: the 'model' entry does not describe a {task.name} model ({e}).") from None
    try:
        task.check_feature_version(record.preprocessing)
    except FeatureVersionError as e:
        raise CheckpointError(f"{where}: {e}") from None
    check_buildable(task, task_config, len(record.labels), folder)
    task.load_extra(task_config, folder)
    model = task.build_model(task_config, len(record.labels))
    try:
        model.load_state_dict(read_weights(folder), strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise weights_mismatch(folder, len(record.labels), f"{first} ...") from None
    model.to(device).eval()
    return Loaded(model, record, task_config)


def load_model(folder: str | os.PathLike, device: torch.device | str = "cpu"):
    """`load`, with the record as plain data: (model, config.json's content in format 2, task_config)."""
    loaded = load(folder, device)
    return loaded.model, loaded.record.to_json(), loaded.task_config


def weights_mismatch(folder: Path, labels: int, detail: str) -> CheckpointError:
    return CheckpointError(f"{folder / WEIGHTS_NAME}: the weights do not fit the model described in {CONFIG_NAME} "
                           f"with {labels} labels ({detail}).")


def check_buildable(task, task_config, labels: int, folder: Path) -> None:
    """Build the network and one example input on the meta device, which allocates nothing, and refuse the
    checkpoint when the input is absurdly large or the weights file's header does not hold exactly the
    network's tensors, each of its shape (a vocabulary of 10^9, a million labels, a negative width)."""
    shapes = header_shapes(folder)
    try:
        with torch.device("meta"):
            model = task.build_model(task_config, labels)
            inputs = task.example_inputs(task_config)
    except (CheckpointError, WeightsError):   # WeightsError: the installed weights a network is built on differ
        raise
    except Exception as e:   # whatever a network's constructor raises for sizes it cannot have
        raise CheckpointError(f"{folder / CONFIG_NAME}: the 'model' entry describes no {task.name} network that "
                              f"can be built ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).") from None
    values = sum(x.numel() for x in inputs or ())
    if values > MAX_INPUT_VALUES:
        raise CheckpointError(f"{folder / CONFIG_NAME}: one input of this model would hold {values:,} values (at most "
                              f"{MAX_INPUT_VALUES:,}); its sizes are not those of a model that can be served.")
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, extra = sorted(set(own) - set(shapes)), sorted(set(shapes) - set(own))
    wrong = [f"{k} {shapes[k]} (the model's: {own[k]})" for k in sorted(set(own) & set(shapes)) if own[k] != shapes[k]]
    problems = [f"{what}: {', '.join(keys[:3])}" for what, keys in
                (("missing", missing), ("unexpected", extra), ("of another shape", wrong)) if keys]
    if problems:
        raise weights_mismatch(folder, labels, "; ".join(problems))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed save left behind (the files they were replacing are intact)."""
    folder = Path(folder)
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_resume(folder: str | os.PathLike, state: dict) -> None:
    atomic_write(Path(folder) / RESUME_NAME, lambda tmp: torch.save(state, tmp))


def load_resume(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / RESUME_NAME
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which and why
        raise CheckpointError(f"{path}: cannot be read as resume state ({e}). Delete it to start afresh.") from None


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
