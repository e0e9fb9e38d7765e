"""Pieces every tab shares: the model picker, the info panel and its endpoint, the report figures, the
unsure title, and error reporting."""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from demo.predictor import ModelSet, ModelUnavailable
from training.tasks import InputError


def info_markdown(models: ModelSet, name: str | None) -> str:
    """The model panel: the chosen model's facts, plus any checkpoint that failed to load."""
    parts = []
    try:
        parts.append(models.get(name).info_markdown())
    except LookupError as e:
        parts.append(str(e))
    for bad, why in sorted(models.errors.items()):
        parts.append(f"\n> Unavailable: **{bad}**: {why}")
    return "\n".join(parts)


def example_files(folder: Path, pattern: str) -> list[str]:
    """Example files named <label>-<n>.<ext>, ordered n first, so each page of examples starts with one of
    every label (airplane-1, automobile-1, ..., truck-1, airplane-2, ...)."""
    def key(path: Path):
        label, _, n = path.stem.rpartition("-")
        return (int(n) if n.isdigit() else 0, label)
    return [str(p) for p in sorted(folder.glob(pattern), key=key)] if folder.is_dir() else []


def model_picker(models: ModelSet) -> gr.Dropdown:
    names = models.names
    return gr.Dropdown(choices=names, value=names[0] if names else None, label="Model",
                       info=f"checkpoints/{models.task}/ (restart the app to see new ones)", interactive=bool(names))


def user_errors(fn):
    """Wrap an event function so that bad user input (any task's `InputError`) and an unknown or broken
    model (`ModelUnavailable`) reach the user as a `gr.Error` with their message, without a traceback in
    the server's log: they are the user's to fix, not faults of the server. Anything else stays a fault."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ModelUnavailable) as e:
            raise gr.Error(str(e), print_exception=False) from None
    return wrapper


def model_info_endpoint(models: ModelSet, picker: gr.Dropdown, info: gr.Markdown, api_name: str,
                        describe=info_markdown) -> None:
    """The model panel follows the picker, through a named API endpoint (e.g. /image_model_info) that
    returns `describe(models, model_name)`: by default the dataset, validation scores, labels, device and
    unavailable checkpoints."""
    def model_info(model_name: str | None = None) -> str:
        return describe(models, model_name)

    model_info.__doc__ = describe.__doc__
    picker.change(model_info, picker, info, api_name=api_name)


REPORT_FIGURES = (("confusion_matrix.png", "Validation confusion matrix"), ("training_curves.png", "Training curves"))


def report_figures(models: ModelSet, name: str | None) -> list:
    """The chosen model's report PNGs from its training run, with captions, for a gr.Gallery.

    Passed as decoded images, not paths: Gradio then serves copies from its cache, and the checkpoint
    folder itself is never exposed to the file route.
    """
    from PIL import Image

    try:
        folder = models.get(name).folder
    except LookupError:
        return []
    figures = []
    for file, caption in REPORT_FIGURES:
        try:
            with Image.open(folder / file) as im:
                figures.append((im.convert("RGB"), caption))
        except OSError:
            continue   # a run without reports, or an unreadable file: show what there is
    return figures


def report_panel(models: ModelSet, picker: gr.Dropdown) -> gr.Gallery:
    """A closed accordion with the chosen model's confusion matrix and training curves, following the picker."""
    with gr.Accordion("Validation confusion matrix and training curves", open=False):
        figures = gr.Gallery(value=report_figures(models, picker.value), columns=2, height=320, object_fit="contain",
                             show_label=False, allow_preview=True)
    picker.change(lambda name: report_figures(models, name), picker, figures, api_visibility="private")
    return figures


def unsure_title(predictor, probs: dict[str, float]) -> str | None:
    """The label panel's title when the top confidence is below the checkpoint's validation-chosen threshold."""
    threshold = float(predictor.config.get("unsure_threshold") or 0.0)
    top = max(probs.values(), default=0.0)
    if top >= threshold:
        return None
    return (f"The model is unsure: its top confidence, {top:.0%}, is below {threshold:.0%}; that low, its "
            "validation predictions were no better than a coin toss. Treat the labels below as guesses.")


def label_panel_title(models: ModelSet, probs, model_name: str | None = None) -> str:
    """The label panel's title for a shown prediction. `probs` is what gr.Label passes back to a function:
    {label: confidence} for its top labels (None or a bare label when it holds no confidences)."""
    try:
        predictor = models.get(model_name)
    except LookupError:
        return "Prediction"
    if not isinstance(probs, dict) or not probs:
        return "Prediction"
    return unsure_title(predictor, probs) or "Prediction"


def flag_unsure(event, models: ModelSet, label: gr.Label, picker: gr.Dropdown) -> None:
    """After a prediction, retitle the label panel when the model is unsure (a UI-only step: API clients
    get the probabilities unchanged and can compare them with `unsure_threshold` in config.json)."""
    def retitle(probs, model_name=None):
        return gr.update(label=label_panel_title(models, probs, model_name))

    event.success(retitle, [label, picker], label, api_visibility="private")
