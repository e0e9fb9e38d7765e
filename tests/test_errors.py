"""No raw error reaches a visitor (demo.tabs.common.user_errors): bad input is its message with server paths
taken out, a fault is a generic message whose detail (the traceback) goes to the server's log, for plain
event functions and generators alike; and a webcam image too large to be one is refused before decoding."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from demo.predictor import ModelUnavailable
from demo.tabs.common import FAULT_MESSAGE, user_errors, without_paths
from training.tasks import InputError


def raising(error: Exception):
    def fn(value=None):
        raise error
    return fn


def generating(error: Exception):
    def fn(value=None):
        yield "first"
        raise error
    return fn


FAULTS = [OSError(2, "No such file or directory", "/tmp/gradio/3f2a/upload.png"), ZeroDivisionError("a bug"),
          RuntimeError("CUDA error at /opt/torch/lib/x.cpp:12"), ValueError("the shape (3, 4) is wrong"),
          KeyError("/srv/app/checkpoints/text/emotion")]


@pytest.mark.parametrize("error", FAULTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("shape", [raising, generating])
def test_a_fault_is_a_generic_message_and_its_traceback_is_logged(caplog, error, shape):
    fn = user_errors(shape(error))
    with caplog.at_level(logging.ERROR, logger="demo.tabs.common"):
        with pytest.raises(gr.Error) as info:
            list(fn("x")) if shape is generating else fn("x")
    assert info.value.message == FAULT_MESSAGE and "/" not in info.value.message
    record = caplog.records[-1]
    assert record.exc_info and record.exc_info[1] is error      # the detail is in the log


@pytest.mark.parametrize("error,shown", [
    (InputError("The file /tmp/gradio/ab12/cat.png is empty."), "The file cat.png is empty."),
    (InputError("cannot read '/home/user/x/y/photo.zip' (bad)"), "cannot read 'photo.zip' (bad)"),
    (ModelUnavailable("Model 'x' is unavailable: /srv/ckpt/x/config.json: missing"),
     "Model 'x' is unavailable: config.json: missing"),
    (InputError("see https://huggingface.co/datasets/a/b and 1/2 of a/b"), "see https://huggingface.co/datasets/a/b and 1/2 of a/b"),
])
def test_bad_input_is_its_own_message_without_server_paths(caplog, error, shown):
    with caplog.at_level(logging.ERROR, logger="demo.tabs.common"):
        with pytest.raises(gr.Error) as info:
            user_errors(raising(error))()
    assert info.value.message == shown and not caplog.records   # the visitor's to fix: nothing logged


def test_a_cancel_closes_a_wrapped_generator_as_it_is():
    closed = []

    def steps():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    running = user_errors(steps)()
    assert next(running) == 1
    running.close()                               # GeneratorExit passes through the wrapper
    assert closed == [True]


def test_without_paths_keeps_relative_names():
    assert without_paths("checkpoints/text/emotion: no tokenizer.json") == "checkpoints/text/emotion: no tokenizer.json"


def test_a_webcam_image_too_large_to_be_one_is_refused_before_it_is_decoded():
    from gradio.data_classes import FileData

    from demo.tabs.image import ImageFile

    payload = FileData(url="data:image/png;base64," + "A" * (70 * 2**20), path="webcam.png")
    with pytest.raises(gr.Error, match="images up to 50 MB"):
        ImageFile().preprocess(payload)
