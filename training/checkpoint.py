"""The checkpoint folder: `model.safetensors` + `config.json` (+ task files such as `tokenizer.json`).

Plain data only, so loading runs no code: weights come from safetensors, never from a pickle. The folder
is a valid Hugging Face model repo and can be pushed to the Hub as it is. Resume state (optimizer,
scheduler, epoch, RNG) lives beside it in `resume.pt`, holding tensors and plain containers only, and is
read back with `torch.load(weights_only=True)`.

Every file is written to a temporary name and moved into place with `os.replace`, so a crash or Ctrl-C
during a save leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
RESUME_NAME = "resume.pt"


class CheckpointError(Exception):
    """A checkpoint folder that cannot be used; the message names the file and what is wrong."""


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


def save_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, config: dict) -> None:
    """Write the weights and `config.json`. `config` must carry `task`, `labels` and `model`. A model with a
    `storage_dtype` (e.g. torch.float16) has its floating-point tensors stored in that type; loading
    (`load_state_dict`) casts them back to the model's own."""
    folder = Path(folder)
    dtype = getattr(unwrap(model), "storage_dtype", None)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().to("cpu").contiguous()
             for k, v in unwrap(model).state_dict().items()}
    config = {"format_version": FORMAT_VERSION, **config}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    write_json(folder / CONFIG_NAME, config)


def read_config(folder: str | os.PathLike) -> dict:
    """Read and check `config.json`: it must exist, parse, and have a format this code knows."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. A checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported by this code "
                              f"(it reads version {FORMAT_VERSION}). Retrain or update Triptych.")
    for key in ("task", "labels", "model"):
        if key not in config:
            raise CheckpointError(f"{path}: the '{key}' entry is missing.")
    labels = config["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise CheckpointError(f"{path}: 'labels' must be a non-empty list of names.")
    return config


def read_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing. Train a model with `python -m training ...` first.")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}).") from None


def load_model(folder: str | os.PathLike, device: torch.device | str = "cpu"):
    """Rebuild the model from `config.json`, load its weights strictly, and return (model, config, task_config).

    The label count must match the model's output and the preprocessing's feature version must be the
    one the task's code provides; a mismatch is an error, never `strict=False` or different features.
    """
    from training.tasks import get_task

    folder = Path(folder)
    config = read_config(folder)
    try:
        task = get_task(config["task"])
    except KeyError:
        raise CheckpointError(f"{folder / CONFIG_NAME}: unknown task {config['task']!r}.") from None
    try:
        task_config = task.config_from_checkpoint(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: the 'model' entry does not describe a {task.name} "
                              f"model ({e}).") from None
    try:
        task.check_feature_version(config.get("preprocessing", {}))
    except ValueError as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {e}") from None
    task.load_extra(task_config, folder)
    model = task.build_model(task_config, len(config["labels"]))
    state = read_weights(folder)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{folder / WEIGHTS_NAME}: the weights do not fit the model described in "
                              f"{CONFIG_NAME} with {len(config['labels'])} labels ({first} ...).") from None
    model.to(device).eval()
    return model, config, task_config


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
