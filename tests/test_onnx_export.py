"""`python -m training export`: every task's model.onnx agrees with PyTorch on held-out inputs, serves
through `Predictor.load(DIR, runtime="onnx")` and `python app.py --runtime onnx`, runs as the model card
shows with onnxruntime and numpy alone, is refused when the weights changed, and `--quantize int8`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import launch_app
from tiny_models import (clip, encoder_text_checkpoint, image_checkpoint, photo, sentences, speech_checkpoint,
                         text_checkpoint)

from demo.predictor import Predictor
from training import checkpoint as ckpt
from training.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MODELS = {   # name: (task, how it is built)
    "resnet20": ("image", lambda f: image_checkpoint(f)),
    "airbench": ("image", lambda f: image_checkpoint(f, architecture="airbench", widths=(8, 16, 16), tta=2)),
    "lite0": ("image", lambda f: image_checkpoint(f, architecture="efficientnet_lite0", image_size=32)),
    "rnn": ("text", text_checkpoint),
    "minilm-gru": ("text", encoder_text_checkpoint),
    "conv-bigru": ("speech", speech_checkpoint),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Each model of MODELS, exported by the command line (with int8 for text and speech), under
    root/<task>/<name>."""
    root = tmp_path_factory.mktemp("exported")
    folders = {}
    for name, (task, build) in MODELS.items():
        folders[name] = build(root / task / name)
        report = main(["export", "--checkpoint", str(folders[name]), *(["--quantize", "int8"] if task != "image" else [])])
        assert report["difference"] <= 1e-3 and Path(report["onnx"]).is_file()
    return folders


def held_out(task: str, n: int) -> list:
    if task == "image":
        return [photo(1000 + i) for i in range(n)]
    if task == "text":
        return sentences(n, seed=99) + ["a zebra", "i feel " * 40]   # unknown words; past max_tokens
    return [clip(1000 + i) for i in range(n // 4)] + [clip(5000, seconds=2.5), clip(5001, seconds=0.3)]


@pytest.mark.parametrize("name", MODELS)
def test_onnx_agrees_with_pytorch_on_held_out_inputs(exported, name):
    task = MODELS[name][0]
    eager, graph = Predictor.load(exported[name]), Predictor.load(exported[name], runtime="onnx")
    assert graph.session is not None and eager.session is None
    same, worst, inputs = 0, 0.0, held_out(task, 200)
    for raw in inputs:
        p, q = eager.predict(raw), graph.predict(raw)
        same += max(p, key=p.get) == max(q, key=q.get)
        worst = max(worst, max(abs(p[k] - q[k]) for k in p))
    spread = max(max(eager.predict(raw).values()) for raw in inputs) - 1 / len(eager.labels)
    assert spread > 0.2                                    # the model is not uniform: agreement means something
    assert same / len(inputs) >= 0.995 and worst <= 1e-3, (same, len(inputs), worst)


def test_the_graph_holds_the_labels_and_takes_the_models_inputs(exported):
    from training.export import graph_metadata

    names = {"resnet20": ["pixel_values"], "rnn": ["input_ids", "lengths"], "minilm-gru": ["input_ids", "lengths"],
             "conv-bigru": ["waveform"]}
    for name, inputs in names.items():
        session = Predictor.load(exported[name], runtime="onnx").session
        assert [i.name for i in session.get_inputs()] == inputs
        assert json.loads(graph_metadata(exported[name] / "model.onnx")["labels"]) == \
            list(ckpt.read_record(exported[name]).labels)
    speech = Predictor.load(exported["conv-bigru"], runtime="onnx").session.get_inputs()[0]
    assert speech.shape[-1] == 8000                        # one second of samples: the features are inside


def card_snippet(folder: Path) -> str:
    text = (folder / "README.md").read_text(encoding="utf-8")
    block = text.split("With onnxruntime and numpy alone", 1)[1]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def confident(predictor, candidates):
    """The first input whose top label leads the next by 0.3 or more."""
    for raw in candidates:
        probs = sorted(predictor.predict(raw).values(), reverse=True)
        if probs[0] - probs[1] >= 0.3:
            return raw
    raise AssertionError("no input with a clear top label")


@pytest.mark.parametrize("name", ["resnet20", "rnn", "minilm-gru", "conv-bigru"])
def test_the_cards_snippet_classifies_with_onnxruntime_and_numpy_alone(exported, name, tmp_path):
    import soundfile as sf

    predictor = Predictor.load(exported[name])
    task = MODELS[name][0]
    if task == "image":
        raw = confident(predictor, [photo(i) for i in range(200, 260)])
        raw.save(tmp_path / "photo.jpg", quality=95)
        raw = str(tmp_path / "photo.jpg")
    elif task == "speech":
        rate, samples = confident(predictor, [clip(i) for i in range(300, 360)])
        sf.write(tmp_path / "clip.wav", samples, rate, subtype="PCM_16")
        raw = str(tmp_path / "clip.wav")
    else:
        raw = "i feel wonderful today"
    blocked = "import sys\nfor name in ('torch', 'training', 'demo', 'timm', 'torchaudio'):\n    sys.modules[name] = None\n"
    snippet = card_snippet(exported[name])
    assert f'folder = "checkpoints/{task}/{name}"' in snippet      # the card names the folder it is in
    code = blocked + snippet.replace(f'"checkpoints/{task}/{name}"', f'"{exported[name]}"')
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    label, probability = run.stdout.split()
    probs = predictor.predict(raw)
    assert label == max(probs, key=probs.get) and abs(float(probability) - max(probs.values())) < 2e-2


def test_a_graph_of_other_weights_is_refused(exported, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "retrained"
    shutil.copytree(exported["resnet20"], folder)
    weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in load_file(folder / "model.safetensors").items()}
    save_file(weights, folder / "model.safetensors")
    Predictor.load(folder)
    with pytest.raises(ckpt.CheckpointError, match="exported from other weights.*export --checkpoint"):
        Predictor.load(folder, runtime="onnx")
    (folder / "model.onnx").unlink()
    with pytest.raises(ckpt.CheckpointError, match=r"model\.onnx: missing\. Export it with `python -m training export"):
        Predictor.load(folder, runtime="onnx")


@pytest.mark.parametrize("name", ["rnn", "minilm-gru", "conv-bigru"])
def test_int8_quantises_the_network_and_stays_close(exported, name):
    import onnx

    folder = exported[name]
    model = onnx.load(str(folder / "model.int8.onnx"))
    graph = {n.name: n.op_type for n in model.graph.node}
    assert "DynamicQuantizeLinear" in graph.values() or "DequantizeLinear" in graph.values()
    assert any(t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) for t in model.graph.initializer)
    if name == "conv-bigru":   # the mel filterbank's product and the convolutions stay in float
        assert graph.get("node_matmul") == "MatMul" and "ConvInteger" not in graph.values()
    eager, quantised = Predictor.load(folder), Predictor.load(folder, runtime="onnx-int8")
    inputs = held_out(MODELS[name][0], 100)
    same = sum(max(p := eager.predict(x), key=p.get) == max(q := quantised.predict(x), key=q.get) for x in inputs)
    # int8 weights: close, not equal (bench/RESULTS.md). The encoder's six quantised layers, randomised here,
    # agree on 87% of these inputs (the shipped, fine-tuned encoder model on far more: bench/portable.py).
    assert same >= (0.85 if name == "minilm-gru" else 0.9) * len(inputs), same
    assert abs(sum(quantised.predict(inputs[0]).values()) - 1) < 1e-5


def test_a_task_without_example_inputs_cannot_be_exported(tmp_path, monkeypatch):
    from training.tasks import get_task

    folder = image_checkpoint(tmp_path / "m")
    monkeypatch.setattr(get_task("image"), "example_inputs", lambda config: None)
    with pytest.raises(SystemExit, match="the image task gives no example inputs"):
        main(["export", "--checkpoint", str(folder)])
    assert not (folder / "model.onnx").exists()


def test_the_app_serves_the_onnx_runtime(exported, tmp_path):
    import urllib.request

    root = next(iter(exported.values())).parents[1]
    with launch_app(root, "--runtime", "onnx", "--no-teach", log_name="onnx.log") as url:
        request = urllib.request.Request(f"{url}models/text/rnn", data=json.dumps({"inputs": "i feel happy"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            (served,) = json.loads(answer.read())
    expected = Predictor.load(exported["rnn"], runtime="onnx").predict("i feel happy")
    assert {x["label"]: x["score"] for x in served} == pytest.approx(expected, abs=1e-5)
    assert np.isclose(sum(x["score"] for x in served), 1, atol=1e-4)
