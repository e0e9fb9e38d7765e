"""The model card: a Hugging Face `README.md` written from a checkpoint's record (its config.json).

The YAML front matter (`library_name`, `pipeline_tag`, `license`, `base_model`, `datasets`, `metrics`
and a `model-index` with the validation results) is what the Hub reads; the text is for people: how to
load the model (training/card_usage.py), what it was trained on, how well it does on held-out data,
label by label, and where it should not be trusted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from training import checkpoint as ckpt
from training.card_usage import usage_lines
from training.config_record import CheckpointRecord, DatasetRecord, to_json
from training.settings import check_hub_id
from training.tasks import get_task

CARD_NAME = "README.md"
# Hub license identifiers of the pretrained weights' licenses training/weights.py records.
HUB_LICENSES = {"Apache-2.0": "apache-2.0", "BSD-3-Clause (torchvision)": "bsd-3-clause"}


def looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) and not Path(source).exists()


def hub_dataset_id(config: CheckpointRecord | dict, override: str | None = None) -> str | None:
    """The dataset's Hub id: `override`, else the one recorded at training time (`dataset.hub_id`, from
    --dataset-id or a Hub id given as --dataset), else the recorded id when it is one (owner/name, not a
    local path: checkpoints written before `hub_id` was recorded). `config` is a record or its JSON (a
    dataset alone: {"dataset": ...})."""
    if override:
        return check_hub_id(override)
    dataset = config.dataset if isinstance(config, CheckpointRecord) else source_record(config.get("dataset") or {})
    return dataset_hub_id(dataset)


def source_record(source: DatasetRecord | dict) -> DatasetRecord:
    if isinstance(source, DatasetRecord):
        return source
    return DatasetRecord(id=source.get("id"), hub_id=source.get("hub_id"))


def dataset_hub_id(dataset: DatasetRecord) -> str | None:
    if dataset.hub_id:
        return dataset.hub_id
    source = str(dataset.id or "")
    return source if looks_like_hub_id(source) else None


def hub_dataset_ids(config: CheckpointRecord, override: str | None = None) -> list[str]:
    """The Hub ids of every dataset the run trained on (`hub_dataset_id` of each), without repeats."""
    if not config.dataset.sources or override:
        found = hub_dataset_id(config, override)
        return [found] if found else []
    return list(dict.fromkeys(i for i in map(dataset_hub_id, config.dataset.sources) if i))


def folder_name(source: DatasetRecord | dict) -> str:
    """A recorded dataset's folder name, with its parent's when the folder is a version (more/v0.01)."""
    path = Path(str(source_record(source).id or "unknown"))
    return f"{path.parent.name}/{path.name}" if re.fullmatch(r"v?\d+(\.\d+)*", path.name) else path.name


def dataset_link(source: DatasetRecord | dict) -> str:
    """A dataset as Markdown: its Hub page, else its local name (and the Hub id it is a copy of)."""
    source = source_record(source)
    hub, local = dataset_hub_id(source), folder_name(source)
    if not hub:
        return f"`{local}`"
    link = f"[`{hub}`](https://huggingface.co/datasets/{hub})"
    return link if str(source.id) == hub else f"`{local}` (a copy of {link})"


def source_lines(config: CheckpointRecord) -> list[str]:
    """The card's training-data lines of a run on several datasets: each one, its rows, and its score."""
    sources, by = config.dataset.sources, config.metrics.by_dataset
    lines = [f"- Trained on {len(sources)} datasets at once, labels matched by name to the first's:"]
    for source in sources:
        score = by.get(str(source.id))
        lines.append(f"  - {dataset_link(source)}: {count(source.num_train)} training examples"
                     + (f" ({source.dropped_train_rows} dropped: their group is in another dataset's validation "
                        "rows)" if source.dropped_train_rows else "")
                     + f"; validation {source.validation.describe()} "
                       f"({count(score.num_examples if score else source.num_validation)} examples"
                     + (f", accuracy {score.accuracy:.4f})" if score else ")"))
    return lines


def which_epoch(config: CheckpointRecord) -> str:
    """Which epoch the validation figures are of: the best (chosen on them), the last, or each fold run's last."""
    epoch = count(config.metrics.epoch)
    if config.dataset.validation.cross_validated:
        return f"out of fold: each fold run's last epoch, {epoch}"
    return f"{'last' if config.train_args.get('keep') == 'last' else 'best'} epoch {epoch}"


def count(value) -> str:
    return "?" if value is None else str(value)


# The credit a model card owes the well-known datasets it may be trained on, by Hub id.
CREDITS = {
    "google/speech_commands": "Speech Commands by Pete Warden (Google), CC BY 4.0: P. Warden, \"Speech Commands: A "
                              "Dataset for Limited-Vocabulary Speech Recognition\", arXiv:1804.03209, 2018.",
    "uoft-cs/cifar10": "CIFAR-10 by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton: A. Krizhevsky, \"Learning "
                       "Multiple Layers of Features from Tiny Images\", 2009.",
    "dair-ai/emotion": "emotion by DAIR.AI, for educational and research use: E. Saravia et al., \"CARER: "
                       "Contextualized Affect Representations for Emotion Recognition\", EMNLP 2018.",
}


def credit_lines(config: CheckpointRecord) -> list[str]:
    """The card's "Data" credits: each known dataset the run trained on, with its license."""
    credits = [CREDITS[i] for i in hub_dataset_ids(config) if i in CREDITS]
    return ["", "## Data credits", "", *[f"- {c}" for c in credits]] if credits else []


def limitations(config: CheckpointRecord) -> list[str]:
    """Where not to trust the model: the generic sentence, then its task's own (Task.limitations, which
    reads config.json's content)."""
    return ([f"It only knows these {len(config.labels)} labels; anything else is forced into one of them."]
            + get_task(config.task).limitations(config.to_json()))


def base_model(config: CheckpointRecord) -> str | None:
    """The Hub repository of the pretrained weights, where the record names one (a timm download)."""
    found = re.search(r"\(([\w.-]+/[\w.-]+)\)", (config.pretrained.source or "") if config.pretrained else "")
    return found.group(1) if found else None


def front_matter(config: CheckpointRecord, name: str, dataset_id: str | None, onnx: bool = False) -> str:
    import yaml

    m, d = config.metrics, config.dataset
    pipeline = get_task(config.task).pipeline_tag
    local_name = Path(str(d.id or name)).name or name
    dataset_entry = {"name": local_name, "type": dataset_id or local_name, "split": d.validation.describe()}
    if d.name:
        dataset_entry["config"] = d.name
    meta = {"library_name": "timm" if config.timm else "pytorch", "pipeline_tag": pipeline,
            "tags": ["triptych", config.task, *(["onnx"] if onnx else [])]}
    license = HUB_LICENSES.get(config.pretrained.license) if config.pretrained else None
    meta.update({k: v for k, v in (("license", license), ("base_model", base_model(config))) if v})
    ids = hub_dataset_ids(config, dataset_id)
    if ids:
        meta["datasets"] = ids
    meta["metrics"] = ["accuracy", "f1"]
    meta["model-index"] = [{"name": name, "results": [{
        "task": {"type": pipeline, "name": pipeline.replace("-", " ").title()},
        "dataset": dataset_entry,
        "metrics": [{"type": "accuracy", "value": round(float(m.accuracy or 0.0), 4), "name": "Validation accuracy"},
                    {"type": "f1", "value": round(float(m.macro_f1 or 0.0), 4), "name": "Validation macro-F1",
                     "args": {"average": "macro"}}]}]}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def rounded(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def percent(value: float | None) -> str:
    return "none" if value is None else f"{value:.0%}"


def unsure_lines(config: CheckpointRecord) -> list[str]:
    u = config.metrics.unsure
    if u is None or not u.threshold:
        return []
    return [f"Below a top confidence of {u.threshold:.0%} ({percent(u.fraction_below)} of validation predictions, "
            f"{percent(u.accuracy_below)} of them right) the demo says the model is unsure; above it, "
            f"{percent(u.accuracy_above)} are right.", ""]


BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def parameter_count(weights: Path) -> int:
    """The number of model parameters in a safetensors file, read from its header (BatchNorm running
    statistics are state, not parameters, and are left out)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            if not key.endswith(BUFFERS):
                n = 1
                for dim in f.get_slice(key).get_shape():
                    n *= dim
                total += n
    return total


def describe_size(parameters: int | None) -> str:
    if parameters is None:
        return ""
    return f", {parameters / 1e6:.1f} M parameters" if parameters >= 1e5 else f", {parameters:,} parameters"


def model_card(config: CheckpointRecord | dict, name: str, dataset_id: str | None = None,
               parameters: int | None = None, *, repo_id: str | None = None, onnx: bool = False) -> str:
    """The card of the checkpoint `name` (its folder's name); `repo_id`: the Hub repository it is pushed to,
    for the loading snippets; `onnx`: the folder has model.onnx."""
    config = ckpt.as_record(config)
    m, d = config.metrics, config.dataset
    dataset_id = hub_dataset_id(config, dataset_id)
    source = f"[`{dataset_id}`](https://huggingface.co/datasets/{dataset_id})" if dataset_id else f"`{d.id}`"
    lines = [front_matter(config, name, dataset_id, onnx), f"# {name}", "",
             f"{'An' if config.task[0] in 'aeiou' else 'A'} {config.task} classifier "
             f"(`{config.architecture}`{describe_size(parameters)}) trained with Triptych on "
             + (", ".join(dataset_link(x) for x in d.sources) if d.sources else source) + ".", "",
             *usage_lines(config, name, repo_id=repo_id, onnx=onnx),
             "## Training data", "",
             *(source_lines(config) if d.sources else [
                 f"- Dataset: {source}, training split `{d.train_split}` ({count(d.num_train)} examples)",
                 f"- Validation: {d.validation.describe()} ({count(d.num_validation)} examples)"]),
             "", "## Validation results", "",
             f"Accuracy **{m.accuracy or 0:.4f}**, macro-F1 **{m.macro_f1 or 0:.4f}** "
             f"({which_epoch(config)}, {count(m.num_examples)} examples).", "",
             *unsure_lines(config),
             "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in m.per_label.items():
        lines.append(f"| {label} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.support} |")
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in limitations(config)] + credit_lines(config)
    return "\n".join(lines + procedure_lines(config))


def procedure_lines(config: CheckpointRecord) -> list[str]:
    """The card's "Training procedure": hardware and time, the recipe, the runs before this one, the recorded
    settings."""
    runs = config.runs()
    args = {k: v for k, v in config.train_args.items() if v is not None}
    return ["", "## Training procedure", "",
            f"- Hardware: {config.hardware or '?'}; training time {count(config.training_seconds)} s"
            + (f" ({sum(float(r.training_seconds or 0) for r in runs):.1f} s with the runs it started from)"
               if len(runs) > 1 else ""),
            *recipe_lines(config), *lineage(runs), *transfer_lines(runs), *pretrained_lines(config),
            f"- Model settings: `{json.dumps(config.model, sort_keys=True)}`",
            f"- Package versions: {json.dumps(config.versions)}",
            f"- Arguments: `{json.dumps(args, sort_keys=True)}`",
            f"- Preprocessing: `{json.dumps(config.preprocessing, sort_keys=True)}`", ""]


def recipe_lines(config: CheckpointRecord) -> list[str]:
    """The card line for the default recipe the run's settings came from, where they did."""
    r = config.recipe
    if r is None:
        return []
    return [f"- Recipe: {r.name}, chosen from the data ({r.reason}); the settings it chose: "
            f"`{json.dumps(r.settings, sort_keys=True)}`"]


def pretrained_lines(config: CheckpointRecord) -> list[str]:
    """Where the network's starting weights came from, with their license."""
    p = config.pretrained
    if p is None:
        return []
    digest = f", sha256 {p.sha256[:16]}..." if p.sha256 else ""
    return [f"- Fine-tuned from {p.kind or 'ImageNet-pretrained weights'}: {p.source}{digest}; weights license "
            f"{p.license or 'unknown'}"]


def stages(config: CheckpointRecord | dict) -> list[dict]:
    """config.json's content of this run and of the runs it started from (--init-from, nested), newest
    first, as plain data (`CheckpointRecord.runs` gives the records)."""
    return [to_json(run) for run in ckpt.as_record(config).runs()]


def lineage(runs: list) -> list[str]:
    """Card lines for the earlier runs in `CheckpointRecord.runs()`, back to the one that started afresh."""
    out = []
    for parent in runs[1:]:
        m = parent.metrics
        args = {k: v for k, v in parent.train_args.items() if v is not None}
        out.append(f"- It started from the checkpoint `{parent.checkpoint}`: {count(parent.training_seconds)} s "
                   f"on {parent.hardware or '?'}, validation accuracy {rounded(m.accuracy)} at epoch {m.epoch}; "
                   f"its arguments: `{json.dumps(args, sort_keys=True)}`")
    return out


def transfer_lines(runs: list) -> list[str]:
    """The card line for the checkpoint whose body this one (or a run it started from) took with
    --transfer-from."""
    out = []
    for run in runs:
        t = run.transferred_from
        if t is not None:
            out.append(f"- Transfer-learned from the checkpoint `{t.checkpoint}` (labels "
                       f"{', '.join(t.labels)}; `{t.architecture}` trained on `{t.dataset.hub_id or t.dataset.id}`, "
                       f"validation accuracy {rounded(t.metrics.accuracy)}): every weight but the classifier head, "
                       "which started afresh for these labels")
    return out


def write_model_card(folder, dataset_id: str | None = None, *, repo_id: str | None = None) -> Path:
    """Write `folder`/README.md. A folder in an older format is rewritten in format 2 first
    (checkpoint.upgrade_folder): a card says what the folder is, timm's format included."""
    folder = Path(folder)
    config = ckpt.upgrade_folder(folder)
    path = folder / CARD_NAME
    weights = folder / ckpt.WEIGHTS_NAME
    text = model_card(config, folder.name, dataset_id, parameter_count(weights) if weights.is_file() else None,
                      repo_id=repo_id, onnx=(folder / ckpt.ONNX_NAME).is_file())
    ckpt.atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
