"""airbench's network and training recipe: test-time views, whitening, the BatchNorm learning-rate group
and Lookahead, as invariants on tiny inputs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import task_settings

from training.optim import Lookahead, make_optimizer
from training.records import run_record
from training.settings import TrainSettings, from_record
from training.tasks.image import TASK, AirbenchNet, ImageConfig, build_model


def net(tta: int) -> AirbenchNet:
    torch.manual_seed(0)
    model = build_model(ImageConfig(architecture="airbench", tta=tta), 10)
    for m in model.modules():            # non-trivial BatchNorm statistics, so eval differs from identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_mirror_views_make_the_prediction_mirror_invariant():
    x = torch.randn(4, 3, 32, 32)
    plain, mirrored = net(0), net(1)
    assert not torch.allclose(plain(x), plain(x.flip(-1)), atol=1e-4)   # the network itself is not
    assert torch.allclose(mirrored(x), mirrored(x.flip(-1)), atol=1e-5)


def test_shifted_views_average_as_documented():
    model, x = net(2), torch.randn(2, 3, 32, 32)
    views = lambda v: 0.5 * (model.single_view(v) + model.single_view(v.flip(-1)))   # noqa: E731
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    expected = 0.5 * views(x) + 0.25 * (views(padded[..., :32, :32]) + views(padded[..., 2:, 2:]))
    assert torch.allclose(model(x), expected, atol=1e-5)
    model.train()
    assert torch.allclose(model(x), model.single_view(x))              # training sees one view


def test_whitening_decorrelates_the_patches_it_was_fitted_on():
    torch.manual_seed(0)
    base = torch.randn(64, 3, 32, 32)
    images = base + 0.8 * base.roll(1, dims=-1) + 0.5 * base.mean(1, keepdim=True)   # correlated pixels
    model = net(0)
    model.init_whitening(images)
    out = torch.nn.functional.conv2d(images, model.whiten.weight[:12])    # one sign of each filter
    flat = out.transpose(0, 1).reshape(12, -1)
    cov = flat @ flat.T / flat.shape[1]
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=0.02)           # uncorrelated
    assert torch.allclose(torch.diagonal(cov), torch.ones(12), atol=0.02)            # unit variance
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])
    assert not model.whiten.weight.requires_grad


def test_init_from_data_whitens_only_airbench():
    data = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    config = ImageConfig(architecture="airbench")
    model = build_model(config, 10)
    before = model.whiten.weight.clone()
    TASK.init_from_data(model, config, data)
    assert not torch.allclose(before, model.whiten.weight)
    resnet = build_model(ImageConfig(), 10)
    state = {k: v.clone() for k, v in resnet.state_dict().items()}
    TASK.init_from_data(resnet, ImageConfig(), data)
    assert all(torch.equal(state[k], v) for k, v in resnet.state_dict().items())


def test_batchnorm_parameters_get_their_own_learning_rate():
    model = build_model(ImageConfig(architecture="airbench"), 10)
    train = TrainSettings(lr=0.5, weight_decay=1e-3, optimizer="sgd", momentum=0.85, norm_lr_scale=64.0)
    optimizer = make_optimizer(model, train)
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    assert by_lr[32.0] == norm_biases
    grouped = set().union(*by_lr.values())
    assert id(model.whiten.weight) not in grouped                        # frozen: in no group
    assert not any(id(m.weight) in grouped for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert optimizer.defaults["momentum"] == 0.85 and optimizer.defaults["nesterov"]


def test_lookahead_pulls_toward_the_slow_weights_and_finishes_on_them():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    lookahead = Lookahead(model, total_steps=10)
    with torch.no_grad():
        model.weight.fill_(1.0)
    lookahead.step(model, 3)                                          # not a multiple of 5: nothing
    assert torch.equal(model.weight, torch.ones(1, 2))
    lookahead.step(model, 5)
    decay = 0.95 ** 5 * 0.5 ** 3
    assert torch.allclose(model.weight, torch.full((1, 2), 1 - decay))   # slow moved 1 - decay of the way
    with torch.no_grad():
        model.weight.fill_(3.0)
    lookahead.finish(model)                                           # the model becomes the slow weights
    assert torch.allclose(model.weight, torch.full((1, 2), 1 - decay))


@pytest.mark.parametrize("tta", [0, 2])
def test_grad_cam_explains_the_averaged_prediction(tta):
    from training.tasks.image import grad_cam

    model, x = net(tta), torch.randn(1, 3, 32, 32)
    cam = grad_cam(model, x)
    assert cam.shape == (32, 32) and float(cam.max()) == pytest.approx(1.0)
    top = int(model(x)[0].argmax())
    assert torch.equal(cam, grad_cam(model, x, top))


def image_config(*argv: str) -> ImageConfig:
    return task_settings("image", *argv).task


def test_widths_set_the_conv_groups_and_default_to_airbench94():
    config = image_config("--model", "airbench", "--widths", "32,96,80")
    assert config.widths == (32, 96, 80)
    model = build_model(config, 7)
    assert [g[0].out_channels for g in model.layers] == [32, 96, 80]
    assert model.fc.weight.shape == (7, 80)
    assert image_config("--model", "airbench").widths == (64, 256, 256)
    # other architectures do not record a setting that does not apply to them
    assert image_config("--model", "resnet20", "--widths", "8,8,8").widths == (64, 256, 256)
    # recorded in config.json as a list, so the recorded arguments rebuild the same setting
    recorded = json.loads(json.dumps(run_record(TASK, task_settings("image", "--model", "airbench", "--widths",
                                                                    "32,96,80"))))
    assert recorded["widths"] == [32, 96, 80]
    assert TASK.check(from_record(ImageConfig, recorded)).widths == (32, 96, 80)
    # checkpoints written before --widths existed load as airbench94's network
    old = TASK.config_to_dict(ImageConfig(architecture="airbench"))
    del old["widths"]
    assert TASK.config_from_dict(old).widths == (64, 256, 256)


@pytest.mark.parametrize("text", ["128,384", "a,b,c", "64,0,64", ""])
def test_bad_widths_are_refused_with_an_example(text, capsys):
    with pytest.raises(SystemExit):
        task_settings("image", "--model", "airbench", "--widths", text)
    assert "give three positive channel counts, e.g. 128,384,384" in capsys.readouterr().err
