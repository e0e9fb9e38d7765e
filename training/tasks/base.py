"""The task contract: everything the engine, the checkpoint, the card and the demo need from a modality.

A task is one package under `training/tasks/<name>/` whose `__init__` defines a `Task` subclass and an
instance of it named `TASK`; `training.tasks.register` adds one defined anywhere else. Nothing outside a
task's package asks which task it is: every per-task fact and hook is here, each with its default.

Facts (class attributes):

    name              "image", "text", "speech": the CLI subcommand, checkpoints/<name>/, config.json's task
    Config            the task's settings dataclass; its `option(...)` fields are the task's CLI flags
                      (training/settings.py), and its fields are config.json's "model" entry
    summary           the CLI subcommand's one-line help
    input_columns     input column names tried in order when the input flag is not given
    input_flag        the flag that names the input column, e.g. "--image-column"
    train_defaults    TrainSettings defaults for this task (epochs, batch_size, lr, optimizer, ...)
    pipeline_tag      the Hugging Face Hub pipeline tag of its model cards
    default_model     the checkpoint name a demo tab starts with (and an API call without a model uses)
    local_files       files in its checkpoint folders that are never pushed (training-only state)
    feature_version   the version of its preprocessing code (decoding, resizing, features): recorded in
                      config.json, and a checkpoint made with a version the code no longer provides is
                      refused instead of being fed different features
    explanation       what `explain` returns, in words (for the demo and the model card)
    corruptions       the names `evaluate --corrupt` takes: corrupted copies of a split (e.g. reverb)
    teach             a `TeachRecipe`: how the demo's Teach tab lays out and captures a project of this task
                      (None: the task cannot be taught there); it trains with the task's `recipe`

Hooks (methods; `config` is an instance of `Config`):

    check(config)                   -> config validated and settled (derived fields); errors name flags
    recipe(splits, settings)        -> the default `Recipe` for this data (pretrained start, resolution,
                                       schedule...), for every flag the user did not give; None: the
                                       settings' own defaults (training from scratch)
    config_from_dict(d) / config_to_dict(config)   config.json's "model" entry, and back
    unused_fields(config)           -> settings this configuration does not use: never recorded
    config_from_checkpoint(config)  -> config from a whole config.json (its "model", then its train_args)
    preprocessing(config)           -> dict: config.json's "preprocessing" entry, for people to read
    adapt_dataset(raw, config, seed)   a dataset-specific mapping of the raw DatasetDict (labels...)
    fit(config, train_inputs)       -> config learned from the raw training inputs (e.g. a tokenizer)
    encode(config, raw)             -> Tensor: one raw dataset value, decoded once into the training cache
    make_batch(config, data, lengths, *, train, generator) -> tuple of model inputs from cache rows
                                       already on the training device (augmentation happens here)
    build_model(config, num_labels, *, pretrained) -> nn.Module whose forward(*inputs) returns logits;
                                       `pretrained` is False when the weights come from elsewhere
                                       (--init-from, --resume, a checkpoint)
    init_from_data(model, config, train_x)   data-dependent initialisation of a fresh model
    channels_last(config, device, bf16) -> whether to train in channels_last memory format (convnets)
    head(model)                     -> the classifier head (for --freeze-backbone / --backbone-lr-scale)
    pretrained_source(config)       -> where a fresh model's pretrained weights came from, or None
    prepare(config, raw)            -> tuple of model inputs (batch of one, CPU) for one raw demo input
    explain(model, config, raw)     -> the explanation of one prediction (see `explanation`)
    corrupt(config, data, name, seed) -> decoded evaluation rows corrupted by `name` (one of the task's
                                       `corruptions`), for `evaluate --corrupt`
    sample_input(config)            -> a synthetic raw input (or None) that the demo runs through prepare,
                                       the model and explain once at start-up, so the first visitor's
                                       request does not pay for lazy initialisation
    limitations(config)             -> sentences for the model card: where not to trust the model
    split_recording(path, folder, stem) -> the files a long teach recording becomes (e.g. background
                                       noise cut into clip-length pieces); by default the file, copied
    save_extra(config, folder) / load_extra(config, folder)   task files beside the weights

Portability (ONNX export, timm's format; training/export.py, training/checkpoint.py):

    onnx_exporter                   "torchscript" or "dynamo": the torch.onnx exporter that handles the
                                    task's graph (a fact; default "torchscript")
    onnx_fixed_transforms           True where the graph multiplies by constants of the task's own (a
                                    filterbank), which int8 keeps in float
    example_inputs(config)          -> one input of the largest size the model takes (batch of one), made
                                       with torch.zeros/full so that it can be built on the meta device:
                                       export traces it, and loading checks its size before building the
                                       network; None (default): the task gives none, and cannot be exported
    onnx_input_names(config) / onnx_dynamic_axes(config)   the graph's input names and varying axes
    export_module(model, config)    -> the module the graph is made of (default: the model; speech puts
                                       its log-mel features in front, so the graph takes a waveform)
    onnx_inputs(config, raw)        -> what the graph takes for one raw input (default: `prepare`)
    onnx_usage(config)              -> model-card lines that make the graph's inputs from one input with
                                       numpy (and the task's own file readers) alone
    timm_config(config, model, labels) -> timm's config.json keys when timm builds the network, else None

Bad user input raises `InputError` with a message for people, in every task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from training.errors import SettingsError, TriptychError
from training.settings import fields_with_role, from_dict, record_fields


@dataclass(frozen=True)
class Recipe:
    """A task's default recipe for the data at hand: settings for every flag the user did not give. The
    engine prints `name` and `reason` at the start of the run and records all of it in config.json."""
    name: str                                   # e.g. "EfficientNet-Lite0 from ImageNet, fine-tuned at 160 px"
    reason: str                                 # from the data, e.g. "245 photos, 2 labels, shorter side 375 px"
    task: dict = field(default_factory=dict)    # the task Config's field name -> value
    train: dict = field(default_factory=dict)   # TrainSettings field name -> value


@dataclass(frozen=True)
class TeachRecipe:
    """How the demo's Teach tab lays out, captures and checks a project of this task. It trains through
    the engine with the task's own `recipe` (the one the command line uses), whose rules for a handful of
    samples per class are written there once.

    layout         "folder": the samples are files, written as one folder per class (imagefolder,
                   audiofolder); "csv": the samples are texts, written as text,label rows (JSON lines)
    extensions     the files a folder project takes (lower case, with the dot)
    min_per_class  samples each class needs before training can start
    noise_label    the class a sound project's background-noise recordings become (cut by
                   `Task.split_recording`), or None when the task takes no noise recording
    title          what the Teach tab calls a project of this task ("Image", "Sound", "Text")
    capture        how a browser captures one sample: "webcam", "microphone", or None (typed or pasted)
    """
    title: str = ""
    capture: str | None = None
    layout: str = "folder"
    extensions: tuple[str, ...] = ()
    min_per_class: int = 5
    noise_label: str | None = None


class InputError(TriptychError):
    """An input a user gave that cannot be used (an unreadable image, empty text, silent audio...); the
    message says why in words and is shown to that user as it is. Not a ValueError: an `except ValueError`
    meant for a library's parse error (zipfile, csv, PIL) must not swallow it, nor it a bug's ValueError."""


class FeatureVersionError(TriptychError):
    """A checkpoint whose preprocessing version this code does not provide."""


class Task:
    """The base of every task: the defaults of the contract (see the module's docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    summary: ClassVar[str] = ""
    input_columns: ClassVar[tuple[str, ...]] = ("input",)
    input_flag: ClassVar[str] = "--input-column"
    train_defaults: ClassVar[dict] = {}
    pipeline_tag: ClassVar[str] = ""
    default_model: ClassVar[str | None] = None
    local_files: ClassVar[tuple[str, ...]] = ()
    feature_version: ClassVar[int] = 1
    explanation: ClassVar[str] = ""
    teach: ClassVar[TeachRecipe | None] = None
    corruptions: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ---------------------------------------------------------------------------------------- settings

    @property
    def train_fields(self) -> tuple[str, ...]:
        """Settings that only change training (role "train"): --init-from takes them from the new run."""
        return fields_with_role(self.Config, "train")

    @property
    def fitted_fields(self) -> tuple[str, ...]:
        """Settings learned from the data (role "fitted"), e.g. a tokenizer's vocabulary size."""
        return fields_with_role(self.Config, "fitted")

    def check(self, config):
        return config

    def recipe(self, splits, settings) -> Recipe | None:
        """The default recipe for `splits` (training.data.Splits) under `settings` (RunSettings, whose
        `given` names the fields the user set): None keeps the settings' own defaults."""
        return None

    def config_from_dict(self, d: dict):
        return self.check(from_dict(self.Config, d, exclude=self.unsaved_fields()))

    def config_from_checkpoint(self, config: dict):
        """The settings a checkpoint's config.json records: its "model" entry, over the flags its run
        recorded in "train_args" for settings the entry predates (e.g. a data setting added later)."""
        recorded, unsaved = record_fields(self.Config, config.get("train_args", {})), self.unsaved_fields()
        return self.config_from_dict({**{k: v for k, v in recorded.items() if k not in unsaved},
                                      **config["model"]})

    def config_to_dict(self, config) -> dict:
        skip = self.unsaved_fields() + self.unused_fields(config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items() if k not in skip}

    def unused_fields(self, config) -> tuple[str, ...]:
        """Fields of Config that `config` does not use (another architecture's sizes): neither config.json's
        "model" entry nor its train_args record them, and reading it back gives their defaults."""
        return ()

    def unsaved_fields(self) -> tuple[str, ...]:
        """Fields of Config that hold data, not settings (compare=False), and never go to config.json."""
        return tuple(f.name for f in fields(self.Config) if not f.compare)

    def architecture(self, config) -> str:
        return getattr(config, "architecture", self.name)

    def preprocessing(self, config) -> dict:
        return {}

    def preprocessing_record(self, config) -> dict:
        """config.json's "preprocessing": the task's description of it, with its feature version."""
        return {"feature_version": self.feature_version, **self.preprocessing(config)}

    def check_feature_version(self, preprocessing: dict) -> None:
        """Refuse a checkpoint whose features this code no longer computes the same way. Checkpoints
        written before versions were recorded used version 1."""
        version = preprocessing.get("feature_version", 1)
        if version != self.feature_version:
            raise FeatureVersionError(
                f"its {self.name} preprocessing is version {version}, and this code provides version "
                f"{self.feature_version}: its inputs would be decoded differently from how it was trained. "
                "Retrain it, or use the Triptych release that trained it.")

    # -------------------------------------------------------------------------------------------- data

    def adapt_dataset(self, raw, config, seed: int):
        return raw

    def fit(self, config, train_inputs):
        return config

    def encode(self, config, raw) -> torch.Tensor:
        raise NotImplementedError

    def make_batch(self, config, data: torch.Tensor, lengths: torch.Tensor, *, train: bool,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- model

    def build_model(self, config, num_labels: int, *, pretrained: bool = False) -> nn.Module:
        raise NotImplementedError

    def init_from_data(self, model: nn.Module, config, train_x: torch.Tensor) -> None:
        pass

    def channels_last(self, config, device: torch.device, bf16: bool) -> bool:
        """Train in channels_last memory format, where the convolution kernels are faster in it."""
        return False

    def head(self, model: nn.Module) -> nn.Module | None:
        """The model's classifier head: the layer --freeze-backbone leaves trainable alone and
        --backbone-lr-scale leaves at the full learning rate. None: the task cannot tell."""
        return None

    def recipe(self, splits, given: frozenset[str]) -> Recipe | None:
        return None

    def pretrained_source(self, config) -> dict | None:
        """Where a fresh model's starting weights came from (source, license...), for config.json."""
        return None

    def save_extra(self, config, folder) -> None:
        pass

    def load_extra(self, config, folder) -> None:
        pass

    # -------------------------------------------------------------------------------------------- demo

    def prepare(self, config, raw) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def explain(self, model: nn.Module, config, raw) -> Any:
        return None

    def corrupt(self, config, data: torch.Tensor, name: str, seed: int = 0) -> torch.Tensor:
        """Decoded evaluation rows (as `encode` made them) corrupted by `name`; see `corruptions`."""
        have = f"its corruptions are {', '.join(self.corruptions)}" if self.corruptions else "it has none"
        raise SettingsError(f"--corrupt {name!r}: the {self.name} task has no such corruption; {have}.")

    def sample_input(self, config) -> Any:
        """A synthetic raw input for the demo's start-up warm-up; None skips the warm-up."""
        return None

    def limitations(self, config: dict) -> list[str]:
        """Model-card sentences beyond the generic ones; `config` is the checkpoint's config.json."""
        return []

    # ------------------------------------------------------------------------------------ portability

    onnx_exporter: ClassVar[str] = "torchscript"
    # The graph multiplies by constants of the task's own that are not the network's weights (speech: the mel
    # filterbank); int8 quantisation leaves those products in float.
    onnx_fixed_transforms: ClassVar[bool] = False

    def example_inputs(self, config) -> tuple[torch.Tensor, ...] | None:
        return None

    def onnx_input_names(self, config) -> tuple[str, ...]:
        count = len(self.example_inputs(config) or ())
        return ("input",) if count == 1 else tuple(f"input_{i}" for i in range(count))

    def onnx_dynamic_axes(self, config) -> dict[str, dict[int, str]]:
        """Every input may come in batches (axis 0); a task adds the axes of its own that vary."""
        return {name: {0: "batch"} for name in self.onnx_input_names(config)}

    def export_module(self, model: nn.Module, config) -> nn.Module:
        return model

    def onnx_inputs(self, config, raw) -> tuple[torch.Tensor, ...]:
        return self.prepare(config, raw)

    def onnx_usage(self, config) -> list[str]:
        """Python lines for the model card that set `inputs`, the graph's inputs by name, from one raw
        input; `folder` is the checkpoint folder and `np` numpy. None by default."""
        return []

    def timm_config(self, config, model: nn.Module, labels: list[str]) -> dict | None:
        """timm's own config.json keys (its `save_config_for_hf`) when timm builds the network:
        `architecture` (timm's name of it), `num_classes`, `num_features`, `label_names`, `pretrained_cfg`
        (input size, interpolation, crop, mean and std). None (default): timm does not have it."""
        return None

    # ------------------------------------------------------------------------------------------ teach

    def split_recording(self, path, folder, stem: str) -> list:
        """The files one long teach recording becomes in `folder` (a class folder); by default a copy."""
        import shutil
        from pathlib import Path

        target = Path(folder) / f"{stem}{Path(path).suffix.lower()}"
        shutil.copyfile(path, target)
        return [target]
