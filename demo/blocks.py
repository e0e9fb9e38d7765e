"""build_demo(checkpoint_root) -> gr.Blocks: a tab per task, models loaded once at start-up.

A task's tab is the module `demo.tabs.<task name>` with a `build(models)` function (components and
wiring only); a registered task without one is trained and served through the API of `Predictor`, with
no tab.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import gradio as gr

from demo.predictor import ModelSet, discover
from demo.tabs.common import UNSURE_CLASS, keep_to_visitors
from demo.zerogpu import gpu_decorator, on_gpu
from training.device import describe, pick_device
from training.tasks import get_task, task_names

TITLE = "Triptych"
INTRO = ("Small image, text and speech classifiers fine-tuned with Triptych's own training scripts. "
         "Pick a tab, give it an input, and see what the model thinks and why.")


def tab_module(task: str):
    """`demo.tabs.<task>`, or None when the task has no tab."""
    name = f"demo.tabs.{task}"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


GPU_SECONDS = 20   # ZeroGPU time one prediction or explanation may take (the models need milliseconds)

# The label panel of an unsure prediction is dimmed (common.UNSURE_CLASS); on a phone the tab's input
# stays short so that the result, right under it, is on the first screen.
CSS = f"""
.{UNSURE_CLASS} {{ opacity: 0.6; }}
.status {{ border-left: 4px solid var(--color-accent); padding-left: 0.6em; }}
@media (max-width: 768px) {{
  #tab-image .image-container {{ max-height: 220px; }}
}}
"""


def load_models(checkpoint_root, device, warm_up: bool = True, runtime: str = "torch") -> dict[str, ModelSet]:
    """Every tab's models, ready to serve: each warmed up once (see Task.sample_input) unless `warm_up` is
    False, and on ZeroGPU Spaces each one's inference wrapped to run on a borrowed GPU (demo/zerogpu.py).
    `runtime` "onnx" predicts with each folder's model.onnx (demo/predictor.py). A model taught on a Space is
    found only by the session that taught it (common.VisitorModels)."""
    found = {task: keep_to_visitors(discover(checkpoint_root, task, device, runtime)) for task in task_names()
             if tab_module(task)}
    on_zerogpu = gpu_decorator() is not None
    for models in found.values():
        for name, predictor in models.predictors.items():
            if on_zerogpu:   # the main process has no GPU there: every use of the weights runs in a worker
                predictor.predict = on_gpu(predictor.predict, duration=GPU_SECONDS)
                predictor.explain = on_gpu(predictor.explain, duration=GPU_SECONDS)
            elif warm_up:
                try:
                    predictor.warm_up()
                except Exception as e:   # the model still serves; its first request pays the start-up cost
                    print(f"warning: warming up {models.task}/{name} failed: {e}", file=sys.stderr)
    return found


def build_demo(checkpoint_root="checkpoints", device: str | None = None, warm_up: bool = True,
               teach: bool = False, sessions: bool = False, models: dict[str, ModelSet] | None = None) -> gr.Blocks:
    """The app: a tab per task, and with `teach` the Teach tab (`sessions`: each visitor's samples and
    taught models private to their session, as on a public Space). `models`: `load_models`' result, when
    the caller serves them elsewhere too (app.py's Inference API)."""
    device = pick_device(device)
    models = models if models is not None else load_models(checkpoint_root, device, warm_up)
    # delete_cache: uploads and outputs older than an hour are removed every 10 minutes, so a public
    # Space does not fill its disk.
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO} Running on `{describe(device)}`.")
        pickers = {}
        for task, task_models in models.items():
            with gr.Tab(task.capitalize(), id=task, elem_id=f"tab-{task}"):
                pickers[task] = tab_module(task).build(task_models)
        if teach and any(get_task(t).teach is not None for t in pickers):
            from demo.tabs import teach as teach_tab

            with gr.Tab("Teach", id="teach", elem_id="tab-teach"):
                teach_tab.build(models, pickers, checkpoint_root, sessions)
        # A new page lists the models there are now, taught ones included (never another visitor's).
        demo.load(lambda: [gr.update(choices=models[t].names) for t in pickers], None, list(pickers.values()),
                  queue=False, api_visibility="private")
    return demo
