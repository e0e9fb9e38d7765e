"""Broken checkpoints in the served folder (conftest.FAULTY): each is reported unavailable with a message
naming the file, no pickle ever runs, and every other tab and model keeps working. The loader's own errors
are tested file by file in tests/test_checkpoint.py; this is the same faults seen through `discover` and
through the launched app."""

from __future__ import annotations

import pickle

import pytest
import torch

from conftest import FAULTY, PICKLE_MARKER, REPO
from demo.predictor import discover

TASKS = ("image", "text", "speech")
EXAMPLES = REPO / "demo" / "examples"


def faulty(task: str) -> dict[str, str]:
    return {key.split("/")[1]: file for key, file in FAULTY.items() if key.startswith(task + "/")}


def test_the_payloads_are_live(served_checkpoints, tmp_path):
    """Control: loading the planted files the unsafe way would run their code."""
    marker = served_checkpoints / PICKLE_MARKER
    pickle.loads((served_checkpoints / "image" / "zz_pickle" / "model.safetensors").read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(served_checkpoints / "image" / "zz_torch_bin" / "pytorch_model.bin", weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("task", TASKS)
def test_discover_reports_each_broken_folder_by_file(served_checkpoints, task):
    found = discover(served_checkpoints, task, "cpu")
    for name, file in faulty(task).items():
        assert name not in found.predictors
        message = found.errors[name]
        assert f"/{name}/" in message and file in message, message
        assert str(served_checkpoints) not in message    # users see the checkpoint, not the server's layout
    shipped = {p.name for p in (REPO / "checkpoints" / task).iterdir() if (p / "config.json").is_file()}
    assert shipped <= set(found.predictors)
    assert not (served_checkpoints / PICKLE_MARKER).exists()


def test_wrong_label_count_says_what_does_not_match(served_checkpoints):
    message = discover(served_checkpoints, "image", "cpu").errors["zz_wrong_labels"]
    assert "config.json with 3 labels" in message and "model.safetensors" in message, message


@pytest.mark.parametrize("task", TASKS)
def test_the_app_lists_them_as_unavailable_and_serves_the_rest(app_client, served_checkpoints, task):
    from gradio_client import handle_file

    info = app_client.predict(api_name=f"/{task}_model_info")
    for name, file in faulty(task).items():
        assert f"Unavailable: **{name}**" in info and file in info, info
    assert not (served_checkpoints / PICKLE_MARKER).exists(), "a planted pickle was executed by the server"
    assert app_client.predict(handle_file(str(EXAMPLES / "image" / "cat-1.png")), api_name="/classify_image")["label"]
    assert app_client.predict("i feel wonderful today", api_name="/classify_text")["label"] == "joy"
    heard, _ = app_client.predict(handle_file(str(EXAMPLES / "speech" / "command-yes-1.wav")), api_name="/recognize_speech")
    assert heard["label"] == "yes"


@pytest.mark.parametrize("task,name", [(k.split("/")[0], k.split("/")[1]) for k in FAULTY])
def test_a_broken_model_cannot_be_picked(app_client, task, name):
    from gradio_client.exceptions import AppError

    api = {"image": "/classify_image", "text": "/classify_text", "speech": "/recognize_speech"}[task]
    arg = "i feel fine" if task == "text" else None
    with pytest.raises(AppError, match=f"Model '{name}' is unavailable: "):     # and why
        app_client.predict(arg, name, api_name=api)


def test_a_shipped_checkpoint_with_another_feature_version_is_refused(tmp_path):
    """Checkpoints written before feature versions were recorded load as version 1, the current one; one
    that says its features were computed by another version of the code is refused, naming the file."""
    import json
    import shutil

    from training.checkpoint import CheckpointError, load_model

    source = REPO / "checkpoints" / "speech" / "fsdd"
    if not (source / "config.json").is_file():
        pytest.skip("the shipped fsdd checkpoint is not present")
    load_model(source)
    copy = tmp_path / "fsdd"
    shutil.copytree(source, copy)
    config = json.loads((copy / "config.json").read_text())
    config["preprocessing"].pop("feature_version", None)          # as written before versions were recorded
    (copy / "config.json").write_text(json.dumps(config))
    load_model(copy)
    config["preprocessing"]["feature_version"] = 2
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: its speech preprocessing is version 2"):
        load_model(copy)
