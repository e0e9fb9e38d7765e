"""A page load copies the app's config and nothing else: Gradio deep-copies the whole config for every
visitor's page load (`/config`), so nothing in it may lead to the models. A bound method there (the Teach
session's delete callback) once made every page load copy every model's weights: 1.6 s, against 0.04 s."""

from __future__ import annotations

import pytest
import torch
from tiny_models import image_checkpoint, text_checkpoint

from demo.blocks import build_demo


@pytest.mark.parametrize("sessions", [False, True], ids=["local", "space"])
def test_copying_the_page_config_copies_no_model(tmp_path, monkeypatch, sessions):
    from gradio.utils import safe_deepcopy

    image_checkpoint(tmp_path / "image" / "tiny")
    text_checkpoint(tmp_path / "text" / "tiny")
    demo = build_demo(tmp_path, "cpu", warm_up=False, teach=True, sessions=sessions)
    config = demo.get_config_file()
    copied = []
    for cls in (torch.Tensor, torch.nn.Parameter):         # a Parameter copies itself its own way
        def spy(self, memo, real=cls.__deepcopy__):
            copied.append(tuple(self.shape))
            return real(self, memo)

        monkeypatch.setattr(cls, "__deepcopy__", spy)
    safe_deepcopy(config)                                  # what gradio.routes does for each page load
    assert copied == []
    safe_deepcopy({"model": torch.nn.Linear(2, 2)})
    assert copied                                           # and the spy sees a model that is copied
