"""Load a checkpoint folder once and classify raw inputs with it.

The predictor holds no preprocessing of its own: `prepare` and `explain` come from the checkpoint's task
(training/tasks), the same functions training used, with the settings stored in the checkpoint. A model
is a local folder or a Hugging Face Hub id (`owner/name`, fetched with `snapshot_download`, the Hub's
cache kept). With `runtime="onnx"` predictions run the folder's model.onnx on onnxruntime
(`python -m training export` writes it); explanations still run the PyTorch model, which reads the same
weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from training import checkpoint as ckpt
from training.config_record import CheckpointRecord
from training.tasks import Task, get_task

RUNTIMES = ("torch", "onnx", "onnx-int8")   # onnx-int8: model.int8.onnx (`export --quantize int8`)


@dataclass
class Predictor:
    name: str
    folder: Path
    task: Task
    record: CheckpointRecord    # config.json, read as attributes
    task_config: object         # the task's <Task>Config
    model: torch.nn.Module
    device: torch.device
    session: object = None      # an onnxruntime.InferenceSession when the runtime is onnx
    runtime: str = "torch"

    @classmethod
    def load(cls, source: str | Path, device: torch.device | str = "cpu", runtime: str = "torch") -> "Predictor":
        """The model in `source`: a checkpoint folder, or a Hub id (owner/name, owner/name@revision)."""
        folder = model_folder(source)
        device = torch.device(device)
        loaded = ckpt.load(folder, device)
        name = folder.name if Path(source).exists() else str(source).split("@")[0].split("/")[-1]
        session = onnx_session(folder, runtime) if runtime != "torch" else None
        return cls(name, folder, get_task(loaded.record.task), loaded.record, loaded.task_config, loaded.model,
                   device, session, runtime)

    @cached_property
    def config(self) -> dict:
        """config.json's content as plain data (format 2), for callers that index or serialise it."""
        return self.record.to_json()

    @property
    def labels(self) -> list[str]:
        return list(self.record.labels)

    def inputs(self, raw) -> tuple[torch.Tensor, ...]:
        if self.session is not None:
            return tuple(self.task.onnx_inputs(self.task_config, raw))
        return tuple(x.to(self.device) for x in self.task.prepare(self.task_config, raw))

    @torch.inference_mode()
    def probabilities(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.session is not None:
            names = [i.name for i in self.session.get_inputs()]
            logits = self.session.run(None, {n: x.cpu().numpy() for n, x in zip(names, inputs)})[0]
            return torch.softmax(torch.from_numpy(logits).float(), dim=-1)[0]
        return torch.softmax(self.model(*inputs).float(), dim=-1)[0].cpu()

    def predict(self, raw) -> dict[str, float]:
        """{label: probability} for every label, for one raw input (path, bytes, PIL image, text, audio)."""
        probs = self.probabilities(self.inputs(raw))
        return {label: float(p) for label, p in zip(self.labels, probs)}

    def explain(self, raw):
        """The task's explanation of the prediction for one raw input (Grad-CAM, word importances...)."""
        return self.task.explain(self.model, self.task_config, raw)

    def warm_up(self) -> None:
        """Run the task's sample input through prepare, the model and explain once, so that lazy
        initialisation (kernels, plans, imports) is paid at start-up, not by the first visitor."""
        raw = self.task.sample_input(self.task_config)
        if raw is not None:
            self.predict(raw)
            self.explain(raw)

    @property
    def unsure_threshold(self) -> float:
        return float(self.record.unsure_threshold or 0.0)

    def unsure_sentence(self) -> str | None:
        """What the unsure threshold means for this model, from the validation figures config.json records."""
        if not self.unsure_threshold:
            return None
        stats = self.record.metrics.unsure
        text = f"below {self.unsure_threshold:.0%} confidence"
        if stats is not None and stats.accuracy_below is not None:
            text += f", this model was right {stats.accuracy_below:.0%} of the time on its validation data"
            if stats.accuracy_above is not None:
                text += f" (above it, {stats.accuracy_above:.0%})"
        return text

    def knows_markdown(self) -> str:
        """What the model knows (its labels) and where not to trust it, from the checkpoint's facts."""
        from training.card import limitations

        labels = ", ".join(f"`{label}`" for label in self.labels)
        lines = [f"**What {self.name} knows:** {len(self.labels)} labels: {labels}. An input that fits none "
                 "of them still gets one of them."]
        lines += [f"- {sentence}" for sentence in limitations(self.record)[1:]]
        return "\n".join(lines)

    def info_markdown(self) -> str:
        from training.card import dataset_link, hub_dataset_id

        c, m, d = self.record, self.record.metrics, self.record.dataset
        acc = f"{m.accuracy:.1%}" if m.accuracy is not None else "n/a"
        f1 = f"{m.macro_f1:.3f}" if m.macro_f1 is not None else "n/a"
        hub = hub_dataset_id(c)
        dataset = f"[{hub}](https://huggingface.co/datasets/{hub})" if hub else f"`{Path(str(d.id or 'unknown')).name}`"
        if d.sources:
            dataset = ", ".join(dataset_link(source) for source in d.sources)
        lines = [f"**{self.name}**: `{c.architecture or c.task}`, {len(self.labels)} labels"]
        if c.pretrained is not None and c.pretrained.source:
            lines.append(f"- Fine-tuned from pretrained weights ({c.pretrained.source}, "
                         f"{c.pretrained.license or 'license not recorded'})")
        lines += [f"- Dataset: {dataset} (validation: {d.validation.describe()}, "
                  f"{m.num_examples if m.num_examples is not None else '?'} examples)",
                  f"- Validation accuracy **{acc}**, macro-F1 {f1} (epoch {m.epoch if m.epoch is not None else '?'})",
                  "- Labels: " + ", ".join(f"`{label}`" for label in self.labels),
                  f"- Running on: `{self.device}`" + (f" ({self.runtime}, onnxruntime)" if self.session else "")]
        unsure = self.unsure_sentence()
        if unsure:
            lines.append(f"- Marks a prediction unsure {unsure}")
        return "\n".join(lines)

    def card_markdown(self) -> str:
        """The checkpoint's model card (README.md) without its YAML front matter, or '' if it has none."""
        try:
            text = (self.folder / "README.md").read_text(encoding="utf-8")
        except OSError:
            return ""
        if text.startswith("---"):
            end = text.find("\n---", 3)
            text = text[end + 4:] if end >= 0 else text
        return text.strip()


class ModelUnavailable(LookupError):
    """No such model, or it failed to load: the message says which models there are, or why."""


@dataclass
class ModelSet:
    """The checkpoints of one task found under `checkpoints/<task>/`, and those that failed to load."""
    task: str
    predictors: dict[str, Predictor] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    private: set = field(default_factory=set)   # served by name, never listed (a Space visitor's own models)

    @property
    def names(self) -> list[str]:
        """Listed model names, the task's flagship first (its `default_model`), then alphabetical."""
        preferred = get_task(self.task).default_model
        return sorted((n for n in self.predictors if n not in self.private), key=lambda n: (n != preferred, n))

    def get(self, name: str | None) -> Predictor:
        """The named predictor, or the first one; a clear error if there is none."""
        if name in self.predictors:
            return self.predictors[name]
        if name and name in self.errors:
            raise ModelUnavailable(f"Model '{name}' is unavailable: {self.errors[name]}")
        if name:
            raise ModelUnavailable(f"No {self.task} model named '{name}'. Available: {', '.join(self.names) or 'none'}.")
        if not self.names:
            raise ModelUnavailable(f"No {self.task} model is loaded. Train one with `python -m training {self.task} "
                              f"--dataset ...` (it is saved under checkpoints/{self.task}/) and restart the app.")
        return self.predictors[self.names[0]]


def discover(root: str | Path, task: str, device: torch.device | str = "cpu", runtime: str = "torch") -> ModelSet:
    """Load every checkpoint folder under `root/task`; a broken one is reported, never fatal."""
    found = ModelSet(task, device=torch.device(device))
    base = Path(root) / task
    if not base.is_dir():
        return found
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            predictor = Predictor.load(folder, device, runtime)
            if predictor.record.task != task:
                raise ckpt.CheckpointError(f"{folder / ckpt.CONFIG_NAME}: a {predictor.record.task} model "
                                           f"in the {task} folder.")
            found.predictors[folder.name] = predictor
        except Exception as e:   # one broken folder must not take the app down
            # Paths relative to the checkpoint root: the reason is shown to users, the server's layout is not.
            found.errors[folder.name] = str(e).replace(f"{base.parent}{os.sep}", "")
    return found


# ------------------------------------------------------------------------------------ where models come from

def is_hub_id(source: str | Path) -> bool:
    """owner/name or owner/name@revision that is not a local path."""
    text = str(source)
    parts = text.split("@")[0].split("/")
    return (not Path(text).exists() and not text.startswith((".", "/", "~")) and len(parts) == 2
            and all(parts) and text.count("@") <= 1)


def model_folder(source: str | Path) -> Path:
    """A local folder as it is; a Hub id (owner/name[@revision]) downloaded with `snapshot_download` into
    the Hub's cache (a cached copy is used offline). Anything else: a CheckpointError saying what to do."""
    if Path(source).exists() or not is_hub_id(source):
        folder = Path(source)
        if not folder.is_dir():
            raise ckpt.CheckpointError(f"{source}: no such folder, and not a Hugging Face Hub id (owner/name).")
        return folder
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    repo_id, _, revision = str(source).partition("@")
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, revision=revision or None))
    except Exception as e:   # offline, no such repository, no access: say which, and what to do
        unreachable = isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled))
        offline = unreachable and constants.HF_HUB_OFFLINE
        why = ("HF_HUB_OFFLINE=1 is set and it is not in the Hub cache" if offline else
               "the Hub cannot be reached (no network?) and it is not in the Hub cache" if unreachable else
               f"it could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        raise ckpt.CheckpointError(
            f"{source}: a Hugging Face Hub model id, but {why}. "
            + ("Unset HF_HUB_OFFLINE to download it, or " if offline else "Check the id and your network, or ")
            + f"download it once where the Hub can be reached (`hf download {repo_id} --local-dir DIR`) "
            "and give that folder instead.") from None


def onnx_session(folder: Path, runtime: str):
    """An onnxruntime session on the folder's exported graph, with this process's torch thread count,
    refused when the graph was exported from other weights than the folder's."""
    from training.export import check_graph, open_session

    if runtime not in RUNTIMES:
        raise ckpt.CheckpointError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}.")
    path = folder / (ckpt.ONNX_INT8_NAME if runtime == "onnx-int8" else ckpt.ONNX_NAME)
    check_graph(path, folder)
    return open_session(path, threads=torch.get_num_threads())


def checkpoint_root(source: str | Path) -> tuple[Path, bool]:
    """(the folder of `<task>/<name>` checkpoint folders the app serves, whether it came from the Hub). A
    Hub id is downloaded (`model_folder`): a repository of one checkpoint is served as its task's one model,
    named after the repository; one of `<task>/` folders (or of `checkpoints/<task>/`) as it is."""
    if not is_hub_id(source):
        return Path(source), False
    import tempfile

    folder = model_folder(source)
    if (folder / ckpt.CONFIG_NAME).is_file():
        record = ckpt.read_record(folder)
        root = Path(tempfile.mkdtemp(prefix="triptych-hub-"))   # symbolic links only
        (root / record.task).mkdir()
        (root / record.task / str(source).split("@")[0].split("/")[-1]).symlink_to(folder, target_is_directory=True)
        return root, True
    return (folder / "checkpoints" if (folder / "checkpoints").is_dir() else folder), True
