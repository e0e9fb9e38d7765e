"""Errors stay errors: the project's own (a user can act on them) end a command with their message; anything
else is a bug and raises with its traceback; --debug shows the traceback of the project's own too."""

from __future__ import annotations

import pytest
from conftest import make_imagefolder

from training.checkpoint import CheckpointError
from training.config_record import RecordError
from training.cli import main
from training.data import DatasetError
from training.errors import SettingsError, TriptychError
from training.export import ExportError
from training.push import PushError
from training.records import TrainingError
from training.tasks.base import FeatureVersionError, InputError
from training.weights import WeightsError


@pytest.mark.parametrize("error", [DatasetError, CheckpointError, TrainingError, SettingsError, WeightsError,
                                   FeatureVersionError, PushError, ExportError, RecordError, InputError])
def test_the_projects_errors_are_its_own_not_a_libraries(error):
    assert issubclass(error, TriptychError) and not issubclass(error, (ValueError, RuntimeError))


def test_an_own_error_is_a_message_and_debug_shows_its_traceback(tmp_path):
    argv = ["image", "--dataset", str(tmp_path / "nothing-here"), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="error: .*no such file or folder"):
        main(argv)
    with pytest.raises(DatasetError, match="no such file or folder"):
        main([*argv, "--debug"])


def test_a_bad_flag_value_is_a_message(tmp_path):
    with pytest.raises(SystemExit, match="error: --crop-scale 2.0: choose from 0.05 to 1"):
        main(["image", "--dataset", str(tmp_path), "--crop-scale", "2"])


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    from training.tasks import image

    def broken(config, raw):
        raise ValueError("a shape mismatch in a new task's code")

    monkeypatch.setattr(image.TASK, "encode", broken)
    data = make_imagefolder(tmp_path / "photos", per_label=4)
    with pytest.raises(ValueError, match="a shape mismatch"):
        main(["image", "--dataset", str(data), "--output", str(tmp_path / "out"), "--from-scratch", "--quiet",
              "--workers", "0", "--no-cache"])
