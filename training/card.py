"""The model card: a Hugging Face `README.md` written from a checkpoint's `config.json`.

The YAML front matter (`library_name`, `pipeline_tag`, `datasets`, `metrics` and a `model-index` with the
validation results) is what the Hub reads; the text is for people: what the model was trained on, how
well it does on held-out data, label by label, and where it should not be trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

from training import checkpoint as ckpt
from training.settings import check_hub_id
from training.tasks import get_task

CARD_NAME = "README.md"


def hub_dataset_id(config: dict, override: str | None = None) -> str | None:
    """The dataset's Hub id: `override`, else the one recorded at training time (`dataset.hub_id`, from
    --dataset-id or a Hub id given as --dataset), else the recorded id when it is one (owner/name, not a
    local path: checkpoints written before `hub_id` was recorded)."""
    if override:
        return check_hub_id(override)
    dataset = config.get("dataset", {})
    if dataset.get("hub_id"):
        return dataset["hub_id"]
    source = str(dataset.get("id") or "")
    parts = source.split("/")
    if len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) and not Path(source).exists():
        return source
    return None


def hub_dataset_ids(config: dict, override: str | None = None) -> list[str]:
    """The Hub ids of every dataset the run trained on (`hub_dataset_id` of each), without repeats."""
    sources = config.get("dataset", {}).get("sources")
    if not sources or override:
        found = hub_dataset_id(config, override)
        return [found] if found else []
    ids = [hub_dataset_id({"dataset": source}) for source in sources]
    return list(dict.fromkeys(i for i in ids if i))


def folder_name(source: dict) -> str:
    """A recorded dataset's folder name, with its parent's when the folder is a version (more/v0.01)."""
    import re

    path = Path(str(source.get("id") or "unknown"))
    return f"{path.parent.name}/{path.name}" if re.fullmatch(r"v?\d+(\.\d+)*", path.name) else path.name


def dataset_link(source: dict) -> str:
    """A dataset as Markdown: its Hub page, else its local name (and the Hub id it is a copy of)."""
    hub = hub_dataset_id({"dataset": source})
    local = folder_name(source)
    if not hub:
        return f"`{local}`"
    link = f"[`{hub}`](https://huggingface.co/datasets/{hub})"
    return link if str(source.get("id")) == hub else f"`{local}` (a copy of {link})"


def source_lines(config: dict) -> list[str]:
    """The card's training-data lines of a run on several datasets: each one, its rows, and its score."""
    d, by = config.get("dataset", {}), config.get("metrics", {}).get("by_dataset", {})
    lines = [f"- Trained on {len(d['sources'])} datasets at once, labels matched by name to the first's:"]
    for source in d["sources"]:
        score = by.get(str(source.get("id")))
        lines.append(f"  - {dataset_link(source)}: {source.get('num_train', '?')} training examples"
                     + (f" ({source['dropped_train_rows']} dropped: their group is in another dataset's validation "
                        "rows)" if source.get("dropped_train_rows") else "")
                     + f"; validation {source.get('validation_split')} ({source.get('num_validation', '?')} examples"
                     + (f", accuracy {score['accuracy']:.4f})" if score else ")"))
    return lines


# The credit a model card owes the well-known datasets it may be trained on, by Hub id.
CREDITS = {
    "google/speech_commands": "Speech Commands by Pete Warden (Google), CC BY 4.0: P. Warden, \"Speech Commands: A "
                              "Dataset for Limited-Vocabulary Speech Recognition\", arXiv:1804.03209, 2018.",
    "uoft-cs/cifar10": "CIFAR-10 by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton: A. Krizhevsky, \"Learning "
                       "Multiple Layers of Features from Tiny Images\", 2009.",
    "dair-ai/emotion": "emotion by DAIR.AI, for educational and research use: E. Saravia et al., \"CARER: "
                       "Contextualized Affect Representations for Emotion Recognition\", EMNLP 2018.",
}


def credit_lines(config: dict) -> list[str]:
    """The card's "Data" credits: each known dataset the run trained on, with its license."""
    credits = [CREDITS[i] for i in hub_dataset_ids(config) if i in CREDITS]
    return ["", "## Data credits", "", *[f"- {c}" for c in credits]] if credits else []


def limitations(config: dict) -> list[str]:
    """Where not to trust the model: the generic sentence, then its task's own (Task.limitations)."""
    labels = config["labels"]
    return ([f"It only knows these {len(labels)} labels; anything else is forced into one of them."]
            + get_task(config["task"]).limitations(config))


def front_matter(config: dict, name: str, dataset_id: str | None) -> str:
    import yaml

    m, d = config.get("metrics", {}), config.get("dataset", {})
    pipeline = get_task(config["task"]).pipeline_tag
    local_name = Path(str(d.get("id") or name)).name or name
    dataset_entry = {"name": local_name, "type": dataset_id or local_name,
                     "split": str(d.get("validation_split", "validation"))}
    if d.get("name"):
        dataset_entry["config"] = d["name"]
    meta = {"library_name": "pytorch", "pipeline_tag": pipeline, "tags": ["triptych", config["task"]]}
    ids = hub_dataset_ids(config, dataset_id)
    if ids:
        meta["datasets"] = ids
    meta["metrics"] = ["accuracy", "f1"]
    meta["model-index"] = [{"name": name, "results": [{
        "task": {"type": pipeline, "name": pipeline.replace("-", " ").title()},
        "dataset": dataset_entry,
        "metrics": [{"type": "accuracy", "value": round(float(m.get("accuracy", 0.0)), 4), "name": "Validation accuracy"},
                    {"type": "f1", "value": round(float(m.get("macro_f1", 0.0)), 4), "name": "Validation macro-F1",
                     "args": {"average": "macro"}}]}]}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def rounded(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def percent(value: float | None) -> str:
    return "none" if value is None else f"{value:.0%}"


def unsure_lines(metrics: dict) -> list[str]:
    u = metrics.get("unsure")
    if not u or not u.get("threshold"):
        return []
    return [f"Below a top confidence of {u['threshold']:.0%} ({u['fraction_below']:.0%} of validation predictions, "
            f"{percent(u['accuracy_below'])} of them right) the demo says the model is unsure; above it, "
            f"{percent(u['accuracy_above'])} are right.", ""]


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


def model_card(config: dict, name: str, dataset_id: str | None = None, parameters: int | None = None) -> str:
    m, d = config.get("metrics", {}), config.get("dataset", {})
    dataset_id = hub_dataset_id(config, dataset_id)
    source = f"[`{dataset_id}`](https://huggingface.co/datasets/{dataset_id})" if dataset_id else f"`{d.get('id')}`"
    lines = [front_matter(config, name, dataset_id), f"# {name}", "",
             f"{'An' if config['task'][0] in 'aeiou' else 'A'} {config['task']} classifier "
             f"(`{config.get('architecture')}`{describe_size(parameters)}) trained with Triptych on "
             + (", ".join(dataset_link(x) for x in d["sources"]) if d.get("sources") else source) + ".", "",
             "## Use", "", "```python", "from demo.predictor import Predictor",
             f'predictor = Predictor.load("checkpoints/{config["task"]}/{name}")  # this folder',
             "print(predictor.predict(...))  # a path, an image, a text or audio -> {label: probability}", "```", "",
             "## Training data", "",
             *(source_lines(config) if d.get("sources") else [
                 f"- Dataset: {source}, training split `{d.get('train_split', 'train')}` ({d.get('num_train', '?')} "
                 "examples)", f"- Validation: {d.get('validation_split')} ({d.get('num_validation', '?')} examples)"]),
             "",
             "## Validation results", "",
             f"Accuracy **{m.get('accuracy', 0):.4f}**, macro-F1 **{m.get('macro_f1', 0):.4f}** "
             f"(best epoch {m.get('epoch', '?')}, {m.get('num_examples', '?')} examples).", "",
             *unsure_lines(m),
             "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, s in m.get("per_label", {}).items():
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['support']} |")
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in limitations(config)] + credit_lines(config)
    args, runs = config.get("train_args", {}), stages(config)
    lines += ["", "## Training procedure", "",
              f"- Hardware: {config.get('hardware', '?')}; training time {config.get('training_seconds', '?')} s"
              + (f" ({sum(float(r.get('training_seconds') or 0) for r in runs):.1f} s with the runs it started from)"
                 if len(runs) > 1 else ""),
              *lineage(runs), *transfer_lines(runs), *pretrained_lines(config),
              f"- Model settings: `{json.dumps(config.get('model', {}), sort_keys=True)}`",
              f"- Package versions: {json.dumps(config.get('versions', {}))}",
              f"- Arguments: `{json.dumps({k: v for k, v in args.items() if v is not None}, sort_keys=True)}`",
              f"- Preprocessing: `{json.dumps(config.get('preprocessing', {}), sort_keys=True)}`", ""]
    return "\n".join(lines)


def pretrained_lines(config: dict) -> list[str]:
    """Where the network's starting weights came from, with their license."""
    p = config.get("pretrained")
    if not p:
        return []
    digest = f", sha256 {p['sha256'][:16]}..." if p.get("sha256") else ""
    return [f"- Fine-tuned from {p.get('kind', 'ImageNet-pretrained weights')}: {p.get('source')}{digest}; weights "
            f"license {p.get('license', 'unknown')}"]


def stages(config: dict) -> list[dict]:
    """The records of this run and of the runs it started from (--init-from, nested in config.json),
    newest first."""
    out = [config]
    while out[-1].get("init_from"):
        out.append(out[-1]["init_from"])
    return out


def lineage(runs: list[dict]) -> list[str]:
    """Card lines for the earlier runs in `stages(config)`, back to the one that started afresh."""
    out = []
    for parent in runs[1:]:
        m = parent.get("metrics", {})
        args = {k: v for k, v in parent.get("train_args", {}).items() if v is not None}
        out.append(f"- It started from the checkpoint `{parent.get('checkpoint')}`: {parent.get('training_seconds', '?')} s "
                   f"on {parent.get('hardware', '?')}, validation accuracy {rounded(m.get('accuracy'))} at epoch {m.get('epoch')}; "
                   f"its arguments: `{json.dumps(args, sort_keys=True)}`")
    return out


def transfer_lines(runs: list[dict]) -> list[str]:
    """The card line for the checkpoint whose body this one (or a run it started from) took with
    --transfer-from."""
    out = []
    for run in runs:
        t = run.get("transferred_from")
        if t:
            data = t.get("dataset") or {}
            m = t.get("metrics") or {}
            out.append(f"- Transfer-learned from the checkpoint `{t.get('checkpoint')}` (labels "
                       f"{', '.join(map(str, t.get('labels', [])))}; `{t.get('architecture')}` trained on "
                       f"`{data.get('hub_id') or data.get('id')}`, validation accuracy {rounded(m.get('accuracy'))}): every "
                       "weight but the classifier head, which started afresh for these labels")
    return out


def write_model_card(folder, dataset_id: str | None = None) -> Path:
    folder = Path(folder)
    config = ckpt.read_config(folder)
    path = folder / CARD_NAME
    weights = folder / ckpt.WEIGHTS_NAME
    text = model_card(config, folder.name, dataset_id, parameter_count(weights) if weights.is_file() else None)
    ckpt.atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
