"""build_demo(checkpoint_root) -> gr.Blocks: three tabs, models loaded once at start-up."""

from __future__ import annotations

import importlib

import gradio as gr

from demo.predictor import ModelSet, discover
from training.device import describe, pick_device
from training.tasks import TASK_NAMES

TITLE = "Triptych"
INTRO = ("Small image, text and speech classifiers fine-tuned with Triptych's own training scripts. "
         "Pick a tab, give it an input, and see what the model thinks and why.")


def load_models(checkpoint_root, device) -> dict[str, ModelSet]:
    return {task: discover(checkpoint_root, task, device) for task in TASK_NAMES}


def build_demo(checkpoint_root="checkpoints", device: str | None = None) -> gr.Blocks:
    device = pick_device(device)
    models = load_models(checkpoint_root, device)
    # delete_cache: uploads and outputs older than an hour are removed every 10 minutes, so a public
    # Space does not fill its disk.
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO} Running on `{describe(device)}`.")
        for task in TASK_NAMES:
            with gr.Tab(task.capitalize(), id=task, elem_id=f"tab-{task}"):
                tab = importlib.import_module(f"demo.tabs.{task}")
                tab.build(models[task])
    return demo
