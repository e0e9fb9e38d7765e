"""The model card's "Use" section: how to load a checkpoint with Triptych, with timm (for networks timm
builds) and with onnxruntime and numpy alone (when the folder has model.onnx, `python -m training export`).

The snippets are tested as written: tests/test_timm_native.py runs the timm one and tests/test_onnx_export.py
the ONNX one (in a process where torch cannot be imported), on checkpoints made in the test.
"""

from __future__ import annotations

from training.config_record import CheckpointRecord
from training.tasks import get_task


def usage_lines(config: CheckpointRecord, name: str, *, repo_id: str | None = None, onnx: bool = False) -> list[str]:
    """Markdown lines: "## Use" and a snippet per way to load the checkpoint `name`; `repo_id` is where it is
    on the Hub (push knows), else the snippets name the local folder."""
    where = repo_id or f"checkpoints/{config.task}/{name}"
    lines = ["## Use", "", "With Triptych (`demo.predictor`, the app's own loader; a Hub id works too):", "",
             "```python", "from demo.predictor import Predictor",
             f'predictor = Predictor.load("{where}")' + ("" if repo_id else "  # this folder"),
             "print(predictor.predict(...))  # a path, an image, a text or audio -> {label: probability}", "```", ""]
    if config.timm is not None:
        lines += timm_lines(config, f"hf-hub:{repo_id}" if repo_id else f"local-dir:{where}")
    else:
        lines += [f"timm does not have this network (`{config.architecture}`): load it with Triptych as above"
                  + (", or run `model.onnx` below." if onnx else
                     ", or export it for onnxruntime with `python -m training export --checkpoint DIR`."), ""]
    if onnx:
        lines += onnx_lines(config, where if not repo_id else "path/to/a/clone/of/this/repo")
    return lines


def timm_lines(config: CheckpointRecord, source: str) -> list[str]:
    """timm alone, with timm's transform from the recorded pretrained_cfg (the Predictor's top-1)."""
    return [f"With timm alone: the folder is timm's own format (`{config.architecture}`, {config.timm.num_classes} "
            "labels):", "",
            "```python", "import timm, torch", "from PIL import Image",
            f'model = timm.create_model("{source}", pretrained=True).eval()',
            "transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))",
            "with torch.no_grad():",
            '    probs = model(transform(Image.open("photo.jpg").convert("RGB")).unsqueeze(0)).softmax(-1)[0]',
            'print(model.pretrained_cfg["label_names"][int(probs.argmax())], float(probs.max()))', "```", ""]


def onnx_lines(config: CheckpointRecord, folder: str) -> list[str]:
    """onnxruntime and numpy (and the task's file readers) alone, on model.onnx."""
    task = get_task(config.task)
    return ["With onnxruntime and numpy alone (`model.onnx`, the same predictions within 1e-3):", "",
            "```python", "import json", "import numpy as np", "import onnxruntime as ort",
            f'folder = "{folder}"', 'session = ort.InferenceSession(f"{folder}/model.onnx")',
            *task.onnx_usage(task.config_from_checkpoint(config.to_json())), "logits = session.run(None, inputs)[0][0]",
            "probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()",
            'labels = json.load(open(f"{folder}/config.json"))["labels"]',
            "print(labels[int(probs.argmax())], float(probs.max()))", "```", ""]
