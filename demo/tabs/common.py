"""Pieces every tab shares: the model picker, the info panel and error reporting."""

from __future__ import annotations

import gradio as gr

from demo.predictor import ModelSet


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


def model_picker(models: ModelSet) -> gr.Dropdown:
    names = models.names
    return gr.Dropdown(choices=names, value=names[0] if names else None, label="Model",
                       info=f"checkpoints/{models.task}/ (restart the app to see new ones)", interactive=bool(names))


def predictor_or_error(models: ModelSet, name: str | None):
    try:
        return models.get(name)
    except LookupError as e:
        raise gr.Error(str(e), print_exception=False) from None
