"""Load a checkpoint folder once and classify raw inputs with it.

The predictor holds no preprocessing of its own: `prepare` and `explain` come from the checkpoint's task
(training/tasks), the same functions training used, with the settings stored in the checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
import torch

from training import checkpoint as ckpt
from training.tasks import Task, get_task


@dataclass
class Predictor:
    name: str
    folder: Path
    task: Task
    config: dict                # config.json
    task_config: object         # the task's <Task>Config
    model: torch.nn.Module
    device: torch.device

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> "Predictor":
        folder = Path(folder)
        device = torch.device(device)
        model, config, task_config = ckpt.load_model(folder, device)
        return cls(folder.name, folder, get_task(config["task"]), config, task_config, model, device)

    @property
    def labels(self) -> list[str]:
        return self.config["labels"]

    def inputs(self, raw) -> tuple[torch.Tensor, ...]:
        return tuple(x.to(self.device) for x in self.task.prepare(self.task_config, raw))

    @torch.inference_mode()
    def probabilities(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
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
        return float(self.config.get("unsure_threshold") or 0.0)

    def unsure_sentence(self) -> str | None:
        """What the unsure threshold means for this model, from the validation figures config.json records."""
        if not self.unsure_threshold:
            return None
        stats = self.config.get("metrics", {}).get("unsure", {})
        text = f"below {self.unsure_threshold:.0%} confidence"
        if stats.get("accuracy_below") is not None:
            text += f", this model was right {stats['accuracy_below']:.0%} of the time on its validation data"
            if stats.get("accuracy_above") is not None:
                text += f" (above it, {stats['accuracy_above']:.0%})"
        return text

    def knows_markdown(self) -> str:
        """What the model knows (its labels) and where not to trust it, from the checkpoint's facts."""
        from training.card import limitations

        labels = ", ".join(f"`{label}`" for label in self.labels)
        lines = [f"**What {self.name} knows:** {len(self.labels)} labels: {labels}. An input that fits none "
                 "of them still gets one of them."]
        lines += [f"- {sentence}" for sentence in limitations(self.config)[1:]]
        return "\n".join(lines)

    def info_markdown(self) -> str:
        from training.card import dataset_link, hub_dataset_id

        c, m, d = self.config, self.config.get("metrics", {}), self.config.get("dataset", {})
        acc = f"{m['accuracy']:.1%}" if "accuracy" in m else "n/a"
        f1 = f"{m['macro_f1']:.3f}" if "macro_f1" in m else "n/a"
        hub = hub_dataset_id(c)
        dataset = f"[{hub}](https://huggingface.co/datasets/{hub})" if hub else f"`{Path(str(d.get('id', 'unknown'))).name}`"
        if d.get("sources"):
            dataset = ", ".join(dataset_link(source) for source in d["sources"])
        lines = [f"**{self.name}**: `{c.get('architecture', c['task'])}`, {len(self.labels)} labels"]
        pretrained = c.get("pretrained") or {}
        if pretrained.get("source"):
            lines.append(f"- Fine-tuned from pretrained weights ({pretrained['source']}, "
                         f"{pretrained.get('license', 'license not recorded')})")
        lines += [f"- Dataset: {dataset} (validation: {d.get('validation_split', 'n/a')}, "
                  f"{m.get('num_examples', '?')} examples)",
                  f"- Validation accuracy **{acc}**, macro-F1 {f1} (epoch {m.get('epoch', '?')})",
                  "- Labels: " + ", ".join(f"`{label}`" for label in self.labels),
                  f"- Running on: `{self.device}`"]
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


def discover(root: str | Path, task: str, device: torch.device | str = "cpu") -> ModelSet:
    """Load every checkpoint folder under `root/task`; a broken one is reported, never fatal."""
    found = ModelSet(task, device=torch.device(device))
    base = Path(root) / task
    if not base.is_dir():
        return found
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            predictor = Predictor.load(folder, device)
            if predictor.config["task"] != task:
                raise ckpt.CheckpointError(f"{folder / ckpt.CONFIG_NAME}: a {predictor.config['task']} model "
                                           f"in the {task} folder.")
            found.predictors[folder.name] = predictor
        except Exception as e:   # one broken folder must not take the app down
            # Paths relative to the checkpoint root: the reason is shown to users, the server's layout is not.
            found.errors[folder.name] = str(e).replace(f"{base.parent}{os.sep}", "")
    return found
