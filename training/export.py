"""`python -m training export --checkpoint DIR [--quantize int8]`: the checkpoint as an ONNX graph,
`DIR/model.onnx`, for anyone with onnxruntime and numpy alone (the model card shows how).

The task says what the graph is made of (training/tasks/base.py, "Portability"): its example inputs, input
names and varying axes, the module (speech puts its log-mel features in front, so its graph takes a
waveform) and the torch.onnx exporter that handles it. Measured with torch 2.14: the TorchScript exporter
turns the text model's packed GRU into ONNX's GRU with `sequence_lens` (PyTorch's logits within 1.2e-6 on
a padded batch of three), which the dynamo exporter cannot trace (packing is data-dependent); dynamo
turns the speech features' complex STFT into ONNX's STFT, which the TorchScript exporter refuses.

Every export is checked before it replaces the old file: onnxruntime's probabilities on the task's
example and sample inputs must be within 1e-3 of PyTorch's. The graph's metadata holds the task, the
labels and the sha256 of the weights it was made from, so that a graph left behind by an older training
run is refused (`check_graph`) instead of serving other predictions. `--quantize int8` also writes
`model.int8.onnx`, onnxruntime's dynamic int8 quantisation of the weights (bench/RESULTS.md has its
accuracy and speed): of the network's matrix products, embeddings and recurrent layers, not of its
convolutions nor of the task's own fixed transforms. Measured on the shipped checkpoints (300 held-out
rows each): quantising everything took speech_commands from 94.0% to 84.7% (its mel filterbank product:
a power spectrum spans 10 decades, one int8 scale cannot) and CIFAR-10 from 93.3% to 90.3%, 7x slower
(onnxruntime's ConvInteger); this set agrees with the float graph on 100% of those rows (text: 99.7%).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import torch

from training import checkpoint as ckpt
from training.card import write_model_card
from training.errors import TriptychError
from training.tasks import get_task

# ONNX operator sets: 17 is the first with STFT (speech); the dynamo exporter has nothing older than 18
# (asked for 17, it converts down and fails on Pad). onnxruntime 1.32 runs up to 23.
OPSETS = {"torchscript": 17, "dynamo": 18}
TOLERANCE = 1e-3      # largest difference in any probability against PyTorch
QUANTIZATIONS = ("int8",)
QUANTISED_OPS = ["MatMul", "Gemm", "Gather", "GRU", "LSTM", "Attention"]   # not Conv: see the docstring


class ExportError(TriptychError):
    """A checkpoint that cannot be exported as asked; the message says why and what to do."""


def export_onnx(folder, *, quantize: str | None = None) -> dict:
    """Write `folder`/model.onnx (and model.int8.onnx with `quantize="int8"`), checked against PyTorch, and
    the model card again (it then shows how to run the graph). Returns what was written and measured."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"--quantize {quantize}: choose {', '.join(QUANTIZATIONS)}.")
    folder = Path(folder)
    loaded = ckpt.load(folder, "cpu")
    task, config = get_task(loaded.record.task), loaded.task_config
    inputs = task.example_inputs(config)
    if inputs is None:
        raise ExportError(f"the {task.name} task gives no example inputs (Task.example_inputs), so its models "
                          "cannot be exported.")
    module = task.export_module(loaded.model, config).eval()
    names = task.onnx_input_names(config)
    metadata = {"triptych_task": task.name, "labels": json.dumps(list(loaded.record.labels)),
                "weights_sha256": weights_digest(folder), "input_names": json.dumps(list(names))}
    checks = [inputs, *sample_inputs(task, config)]
    path = folder / ckpt.ONNX_NAME
    report = {"checkpoint": str(folder), "onnx": str(path), "exporter": task.onnx_exporter,
              "opset": OPSETS[task.onnx_exporter]}

    def write(tmp: str) -> None:
        trace(module, inputs, tmp, names, task.onnx_dynamic_axes(config), task.onnx_exporter)
        set_metadata(tmp, metadata)
        report["difference"] = check_against(module, tmp, checks, names)
    ckpt.atomic_write(path, write)
    if quantize == "int8":
        report["int8"] = str(folder / ckpt.ONNX_INT8_NAME)
        parameters = set(module.state_dict()) if task.onnx_fixed_transforms else None
        ckpt.atomic_write(folder / ckpt.ONNX_INT8_NAME, lambda tmp: quantize_int8(path, tmp, metadata, parameters))
    report["card"] = str(write_model_card(folder))
    return report


def sample_inputs(task, config) -> list[tuple]:
    """The graph's inputs for the task's synthetic sample input, when it has one (real values, beside the
    example inputs' zeros)."""
    raw = task.sample_input(config)
    return [] if raw is None else [tuple(task.onnx_inputs(config, raw))]


def trace(module, inputs: tuple, path: str, names, axes: dict, exporter: str) -> None:
    """torch.onnx.export with the task's exporter ("torchscript" or "dynamo"); its deprecation and tracer
    warnings are not the user's."""
    if exporter not in OPSETS:
        raise ExportError(f"exporter {exporter!r}: the task must name one of {', '.join(OPSETS)}.")
    axes = {**axes, "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(module, inputs, path, input_names=list(names), output_names=["logits"],
                              dynamic_axes=axes, opset_version=OPSETS[exporter], dynamo=False)
            return
        # torch.export specialises a dimension of size 1, so the trace sees a batch of two.
        pair = tuple(torch.cat([x, x]) for x in inputs)
        dims = {label: torch.export.Dim(label) for name in names for label in axes.get(name, {}).values()}
        shapes = tuple({axis: dims[label] for axis, label in axes.get(name, {}).items()} for name in names)
        program = torch.export.export(module, pair, dynamic_shapes=shapes)
        torch.onnx.export(program, pair, path, input_names=list(names), output_names=["logits"],
                          opset_version=OPSETS[exporter], dynamo=True, verbose=False)


def set_metadata(path: str, metadata: dict) -> None:
    import onnx

    model = onnx.load(path)
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, path)


def graph_metadata(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def open_session(path, threads: int = 1):
    """An onnxruntime CPU session with `threads` intra-op threads (as many as torch is given)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_graph(session, inputs: tuple, names) -> torch.Tensor:
    feeds = {name: x.detach().cpu().numpy() for name, x in zip(names, inputs)}
    return torch.from_numpy(session.run(None, feeds)[0])


def check_against(module, path: str, checks: list[tuple], names) -> float:
    """The largest difference in any probability between onnxruntime and PyTorch on `checks`; an
    ExportError past TOLERANCE."""
    session = open_session(path)
    worst = 0.0
    for inputs in checks:
        with torch.inference_mode():
            expected = torch.softmax(module(*inputs).float(), -1)
        got = torch.softmax(run_graph(session, inputs, names).float(), -1)
        worst = max(worst, float((got - expected).abs().max()))
    if worst > TOLERANCE:
        raise ExportError(f"the exported graph's probabilities differ from PyTorch's by {worst:.2g} (more than "
                          f"{TOLERANCE:g}); the old model.onnx, if any, is kept.")
    return worst


def fixed_transforms(path: Path, parameters: set[str] | None) -> list[str]:
    """The matrix products of the graph by a constant that is none of the network's parameters: the task's
    own transforms (speech: the mel filterbank), which stay in float. None: the task has none
    (Task.onnx_fixed_transforms), and every product is the network's (the exporter may rename its
    weights, e.g. a transposed one folded into a constant)."""
    import onnx

    if parameters is None:
        return []
    graph = onnx.load(str(path)).graph
    constants = {i.name for i in graph.initializer} - parameters
    return [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & constants
            and not set(n.input) & parameters]


def quantize_int8(source: Path, path: str, metadata: dict, parameters: set[str] | None) -> None:
    """onnxruntime's dynamic quantisation: int8 weights, activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)   # its shape-inference notes on every Slice and Pad it leaves in float
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(source), path, weight_type=QuantType.QInt8, op_types_to_quantize=QUANTISED_OPS,
                             nodes_to_exclude=fixed_transforms(source, parameters))
    finally:
        root.setLevel(level)
    set_metadata(path, metadata)


def weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    with open(Path(folder) / ckpt.WEIGHTS_NAME, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_graph(path: Path, folder: Path) -> None:
    """Refuse a missing graph, or one exported from other weights than the folder's."""
    if not path.is_file():
        raise ckpt.CheckpointError(f"{path}: missing. Export it with `python -m training export --checkpoint "
                                   f"{folder}`" + (" --quantize int8" if path.name == ckpt.ONNX_INT8_NAME else "")
                                   + ", or serve the PyTorch model (runtime torch).")
    try:
        made_from = graph_metadata(path).get("weights_sha256")
    except Exception as e:   # onnx's own errors for a file that is not a graph
        raise ckpt.CheckpointError(f"{path}: not a readable ONNX graph ({type(e).__name__}).") from None
    if made_from != weights_digest(folder):
        raise ckpt.CheckpointError(f"{path}: exported from other weights than {folder / ckpt.WEIGHTS_NAME} (an "
                                   f"older training run?). Export it again: python -m training export --checkpoint "
                                   f"{folder}.")
