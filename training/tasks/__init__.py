"""One module per modality; each defines its task once, for training and for the demo.

Every task module provides the same names, which the engine, `evaluate` and the demo call:

    NAME                      "image" | "text" | "speech"
    INPUT_COLUMNS             input column names tried in order when --<x>-column is not given
    INPUT_FLAG                the flag that names the input column, e.g. "--image-column"
    DEFAULTS                  engine flag defaults for this task (epochs, batch_size, lr, optimizer, ...)
    add_arguments(parser)     the task's own flags (model sizes, preprocessing)
    config_from_args(args)    -> the task's <Task>Config dataclass
    config_from_dict(d) / config_to_dict(config)   the "model" entry of config.json, and back
    preprocessing(config)     -> dict: the "preprocessing" entry of config.json (for people to read)
    fit(config, train_inputs) -> config learned from the raw training inputs (e.g. a tokenizer)
    encode(config, raw)       -> Tensor: one raw dataset value, decoded once into the training cache
    make_batch(config, data, lengths, *, train, generator) -> tuple of model inputs; `data` and `lengths`
                              are rows of the cache already on the training device (train-time
                              augmentation happens here, on that device)
    build_model(config, num_labels) -> nn.Module whose forward(*inputs) returns logits
    prepare(config, raw)      -> tuple of model inputs (batch of one, CPU) for one raw demo input
    save_extra(config, folder) / load_extra(config, folder)   task files beside the weights
    adapt_dataset(raw, args)  optional: dataset-specific label mapping (returns raw unchanged otherwise)
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from types import ModuleType

TASK_NAMES = ("image", "text", "speech")


def get_task(name: str) -> ModuleType:
    if name not in TASK_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"training.tasks.{name}")


def config_from_fields(cls: type, d: dict, *, exclude: tuple[str, ...] = ()):
    """`cls(**d)` for a task's config dataclass, refusing keys it does not define (a foreign or newer
    config.json) with a ValueError that names them. `exclude` lists fields never read from a dict."""
    unknown = set(d) - ({f.name for f in fields(cls)} - set(exclude))
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    return cls(**d)
