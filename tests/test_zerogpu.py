"""What ZeroGPU does to the demo's calls, with a stand-in `spaces` that does it too: a wrapped function's
arguments, its return value and its exceptions cross a process boundary pickled (demo/zerogpu.py lists the
rules). Every input the tabs pass to a model, every result and explanation it gives, and every error a visitor
can cause must survive the trip; a stand-in that never pickles would let any of them break on a real Space."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
from conftest import REPO

from training.tasks import InputError

EXAMPLES = REPO / "demo" / "examples"


def pickling_spaces(monkeypatch) -> list:
    """A `spaces` module whose GPU runs the function as ZeroGPU's worker does: on pickled copies of its
    arguments, returning a pickled copy of its result or raising a pickled copy of its exception."""
    calls = []

    def GPU(fn=None, *, duration=None):
        def in_a_worker(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            calls.append(fn)
            try:
                result = fn(*args, **kwargs)
            except Exception as e:   # the worker sends the exception back pickled
                raise pickle.loads(pickle.dumps(e)) from None
            return pickle.loads(pickle.dumps(result))
        return in_a_worker

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    return calls


@pytest.fixture(scope="module")
def zerogpu_models():
    from demo.blocks import load_models

    with pytest.MonkeyPatch.context() as mp:
        calls = pickling_spaces(mp)
        yield load_models(REPO / "checkpoints", "cpu"), calls


def test_every_tab_input_and_result_crosses_pickled(zerogpu_models):
    import soundfile as sf

    models, calls = zerogpu_models
    rate, samples = 16_000, np.zeros(16_000, dtype=np.float32)
    samples[4000:8000] = 0.3 * np.sin(np.arange(4000) / 5)
    image = models["image"].get(None)
    clip = str(EXAMPLES / "speech" / "command-yes-1.wav")
    inputs = [(image, str(EXAMPLES / "image" / "horse-1.png")), (image, (EXAMPLES / "image" / "cat-1.png").read_bytes()),
              (models["text"].get(None), "i feel wonderful today"),
              (models["speech"].get(None), clip), (models["speech"].get(None), (rate, samples)),
              (models["speech"].get(None), sf.read(clip, dtype="int16")[::-1])]
    for predictor, raw in inputs:
        before = len(calls)
        probs = predictor.predict(raw)
        assert len(calls) == before + 1 and set(probs) == set(predictor.labels)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert predictor.explain(raw) is not None and len(calls) == before + 2


@pytest.mark.parametrize("task, raw", [("image", b"not an image"), ("text", "   "), ("speech", b"")])
def test_a_visitors_bad_input_comes_back_as_the_same_error(zerogpu_models, task, raw):
    models, _ = zerogpu_models
    with pytest.raises(InputError) as caught:
        models[task].get(None).predict(raw)
    assert str(caught.value)   # its message, for the visitor, survived the trip
