"""build_demo(checkpoint_root) -> gr.Blocks: a tab per task, models loaded once at start-up.

A task's tab is the module `demo.tabs.<task name>` with a `build(models)` function (components and
wiring only); a registered task without one is trained and served through the API of `Predictor`, with
no tab.
"""

from __future__ import annotations

import importlib
import importlib.util

import gradio as gr

from demo.predictor import ModelSet, discover
from training.device import describe, pick_device
from training.tasks import task_names

TITLE = "Triptych"
INTRO = ("Small image, text and speech classifiers fine-tuned with Triptych's own training scripts. "
         "Pick a tab, give it an input, and see what the model thinks and why.")


def tab_module(task: str):
    """`demo.tabs.<task>`, or None when the task has no tab."""
    name = f"demo.tabs.{task}"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def load_models(checkpoint_root, device) -> dict[str, ModelSet]:
    return {task: discover(checkpoint_root, task, device) for task in task_names() if tab_module(task)}


def build_demo(checkpoint_root="checkpoints", device: str | None = None) -> gr.Blocks:
    device = pick_device(device)
    models = load_models(checkpoint_root, device)
    # delete_cache: uploads and outputs older than an hour are removed every 10 minutes, so a public
    # Space does not fill its disk.
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO} Running on `{describe(device)}`.")
        for task, task_models in models.items():
            with gr.Tab(task.capitalize(), id=task, elem_id=f"tab-{task}"):
                tab_module(task).build(task_models)
    return demo
