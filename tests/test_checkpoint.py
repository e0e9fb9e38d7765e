"""The checkpoint folder (training/checkpoint.py): round trip, clear errors, no pickle, atomic writes."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from tiny_models import lively

from training import checkpoint as ckpt
from training.checkpoint import CheckpointError, atomic_write, load_model, load_resume, save_checkpoint, save_resume
from training.tasks import image as task
from training.tasks.image import ImageConfig

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LABELS = ["cat", "dog", "ship"]


def build(config: ImageConfig) -> torch.nn.Module:
    """A model whose every tensor is off its initial value, and whose logits are O(1) and input-dependent
    (tiny_models.lively)."""
    torch.manual_seed(0)
    model = task.build_model(config, len(LABELS))
    return lively(model, torch.randn(8, 3, config.image_size, config.image_size))


def save(folder, model, config: ImageConfig, labels=LABELS) -> None:
    save_checkpoint(folder, model, {"task": "image", "architecture": config.architecture, "labels": list(labels),
                                    "model": task.TASK.config_to_dict(config),
                                    "preprocessing": task.TASK.preprocessing_record(config)})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small resnet20 checkpoint folder, for the tests that damage a copy of it."""
    folder = tmp_path_factory.mktemp("ckpt")
    config = ImageConfig(architecture="resnet20", image_size=16, width=8)
    save(folder, build(config), config)
    return folder


@pytest.fixture
def copy_of(saved, tmp_path):
    import shutil

    shutil.copytree(saved, tmp_path / "c")
    return tmp_path / "c"


# ----------------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("config", [
    ImageConfig(architecture="resnet20", image_size=32, width=8),
    ImageConfig(architecture="mobilenet_v3_small", image_size=32),
    ImageConfig(architecture="resnet18", image_size=32, small_input_stem=True),
    ImageConfig(architecture="airbench", widths=(16, 48, 40), tta=1),
], ids=lambda c: c.architecture)
def test_round_trip_gives_the_same_labels_and_logits(tmp_path, config):
    model = build(config)
    save(tmp_path, model, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]

    loaded, saved_config, task_config = load_model(tmp_path, "cpu")
    assert saved_config["labels"] == LABELS
    assert saved_config["format_version"] == ckpt.FORMAT_VERSION
    assert task_config == config
    assert not loaded.training
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), loaded(x)
        fresh = task.build_model(task_config, len(LABELS)).eval()(x)   # what a silent non-load would give
    assert got.shape == (5, len(LABELS))
    assert expected.std(0).min() > 1e-3     # the logits depend on the input: the comparison means something
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(fresh, expected, atol=1e-2)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


# ------------------------------------------------------------------------------------------- errors

def error_of(folder) -> str:
    with pytest.raises(CheckpointError) as info:
        load_model(folder, "cpu")
    return str(info.value)


def edit_config(folder, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_label_count_mismatch_names_the_files(copy_of):
    edit_config(copy_of, labels=LABELS + ["truck"])
    message = error_of(copy_of)
    assert str(copy_of / "model.safetensors") in message
    assert "config.json" in message and "4 labels" in message


def test_unknown_format_version(copy_of):
    edit_config(copy_of, format_version=99)
    message = error_of(copy_of)
    assert "format_version" in message and "99" in message and str(copy_of / "config.json") in message


def test_missing_weights(copy_of):
    (copy_of / "model.safetensors").unlink()
    message = error_of(copy_of)
    assert str(copy_of / "model.safetensors") in message and "missing" in message


def test_missing_config(copy_of):
    (copy_of / "config.json").unlink()
    message = error_of(copy_of)
    assert str(copy_of / "config.json") in message and "missing" in message


@pytest.mark.parametrize("keep", [0.5, 0.99, 10])
def test_truncated_weights(copy_of, keep):
    path = copy_of / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    message = error_of(copy_of)
    assert str(path) in message and "safetensors" in message


def test_config_not_json(copy_of):
    (copy_of / "config.json").write_text('{"format_version": 1, "task": "image", "labels": [')
    message = error_of(copy_of)
    assert str(copy_of / "config.json") in message and "JSON" in message


def test_config_with_a_foreign_model_entry(copy_of):
    edit_config(copy_of, model={"architecture": "resnet20", "hidden_layers": 12})
    assert "hidden_layers" in error_of(copy_of)


def test_unknown_task(copy_of):
    edit_config(copy_of, task="video")
    assert "video" in error_of(copy_of)


# ------------------------------------------------------------------------------------ no pickle, ever

class CreatesMarker:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def pickled_payload(marker, kind: str, path) -> None:
    if kind == "pickle":
        path.write_bytes(pickle.dumps(CreatesMarker(marker)))
    else:   # what torch.save writes (a zip holding a pickle): a renamed pytorch_model.bin
        torch.save({"fc.weight": CreatesMarker(marker)}, path)


def unpickle(kind: str, path) -> None:
    if kind == "pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_named_model_safetensors_is_never_executed(copy_of, tmp_path, kind):
    # The payload is live: unpickling a copy of it does create its marker.
    control = tmp_path / "control"
    pickled_payload(control, kind, tmp_path / "control.bin")
    unpickle(kind, tmp_path / "control.bin")
    assert control.exists()

    marker = tmp_path / "marker"
    pickled_payload(marker, kind, copy_of / "model.safetensors")
    message = error_of(copy_of)
    assert "model.safetensors" in message
    assert not marker.exists()


def test_a_pickle_as_resume_state_is_never_executed(tmp_path):
    marker = tmp_path / "marker"
    pickled_payload(marker, "torch.save", tmp_path / "resume.pt")
    with pytest.raises(CheckpointError, match="resume.pt"):
        load_resume(tmp_path)
    assert not marker.exists()


def test_resume_state_round_trips_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "epoch": 2, "history": [{"epoch": 1, "val_accuracy": 0.5}], "best": None, "stale": 0}
    save_resume(tmp_path, state)
    back = load_resume(tmp_path)
    assert back["epoch"] == 2 and back["history"] == state["history"]
    momentum = opt.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(back["optimizer"]["state"][0]["momentum_buffer"], momentum)
    assert back["scheduler"]["last_epoch"] == 1
    assert load_resume(tmp_path / "elsewhere") is None


# --------------------------------------------------------------------------------------- atomic write

@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path, exc):
    path = tmp_path / "metrics.json"
    path.write_text("old contents")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("new contents, half writ")
        raise exc("disk full")

    with pytest.raises(exc):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]     # no temporary file left behind

    atomic_write(path, lambda tmp: open(tmp, "w").write("new contents"))
    assert path.read_text() == "new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_save_keeps_the_previous_checkpoint_loadable(copy_of, monkeypatch):
    before = (copy_of / "model.safetensors").read_bytes()

    def half_then_fail(state, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", half_then_fail)
    config = ImageConfig(architecture="resnet20", image_size=16, width=8)
    with pytest.raises(KeyboardInterrupt):
        save(copy_of, task.build_model(config, len(LABELS)), config)
    assert (copy_of / "model.safetensors").read_bytes() == before
    load_model(copy_of, "cpu")


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    from training.checkpoint import remove_stale_temporaries

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / ".model.safetensors.abc123.tmp").write_bytes(b"half")
    (tmp_path / ".resume.pt.def456.tmp").write_bytes(b"half")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".model.safetensors.abc123.tmp", ".resume.pt.def456.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert remove_stale_temporaries(tmp_path / "missing") == []
