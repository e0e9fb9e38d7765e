"""Grad-CAM over the image models: a heatmap of the input's size, in [0, 1], that depends on the input."""

from __future__ import annotations

import pytest
import torch

from training.tasks.image import ImageConfig, build_model, cam_overlay, grad_cam, prepare

from conftest import REPO


@pytest.mark.parametrize("architecture", ["resnet20", "airbench", "resnet18", "mobilenet_v3_small"])
def test_heatmap_has_input_size_and_is_not_constant(architecture):
    torch.manual_seed(0)
    config = ImageConfig(architecture=architecture, image_size=32, small_input_stem=architecture == "resnet18")
    model = build_model(config, 10).eval()
    (x,) = prepare(config, REPO / "demo" / "examples" / "image" / "horse-1.png")
    cam = grad_cam(model, x)
    assert cam.shape == (32, 32)
    assert float(cam.min()) >= 0.0 and float(cam.max()) == pytest.approx(1.0)
    assert float(cam.std()) > 0.01
    assert all(p.grad is None for p in model.parameters())   # explaining leaves the model untouched


def test_shipped_model_heatmap_and_overlay():
    from demo.predictor import Predictor

    predictor = Predictor.load(REPO / "checkpoints" / "image" / "cifar10")
    path = REPO / "demo" / "examples" / "image" / "ship-1.png"
    (x,) = predictor.inputs(path)
    top = int(torch.tensor(list(predictor.predict(path).values())).argmax())
    cams = [grad_cam(predictor.model, x, target) for target in range(len(predictor.labels))]
    assert torch.equal(grad_cam(predictor.model, x), cams[top])    # default target: the predicted label
    assert not torch.allclose(cams[0], cams[1])                     # each label has its own evidence
    assert cam_overlay(predictor.task_config, path, cams[top], size=128).size == (128, 128)
