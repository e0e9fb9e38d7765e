"""Models from the Hugging Face Hub: `Predictor.load("owner/name")` and the app's `--checkpoints owner/name`
go through `huggingface_hub.snapshot_download` (replaced here by a local folder: nothing goes online),
and offline the message says what to do."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
from tiny_models import image_checkpoint, photo, text_checkpoint

from demo.predictor import Predictor, checkpoint_root, discover, is_hub_id
from training.checkpoint import CheckpointError


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub: snapshot_download(repo_id, revision) returns the local folder tmp_path/hub/<repo_id>."""
    asked = []

    def snapshot_download(repo_id, *, revision=None, **kwargs):
        asked.append((repo_id, revision))
        folder = tmp_path / "hub" / repo_id
        if not folder.is_dir():
            raise OSError(f"404 for {repo_id}")   # what an unknown repository gives, without a response object
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return tmp_path / "hub", asked


def test_predictor_loads_a_hub_id(hub, tmp_path):
    root, asked = hub
    image_checkpoint(root / "someone" / "tiny-cats", labels=("cat", "dog"))
    predictor = Predictor.load("someone/tiny-cats")
    assert asked == [("someone/tiny-cats", None)]
    assert predictor.name == "tiny-cats" and predictor.labels == ["cat", "dog"]
    assert set(predictor.predict(photo(0))) == {"cat", "dog"}
    Predictor.load("someone/tiny-cats@v1")
    assert asked[-1] == ("someone/tiny-cats", "v1")


def test_a_missing_repository_is_a_clear_error(hub):
    with pytest.raises(CheckpointError, match=r"someone/nothing: a Hugging Face Hub model id, but it could not be "
                                              r"downloaded \(OSError: 404 for someone/nothing\)"):
        Predictor.load("someone/nothing")


def test_offline_the_message_says_what_to_do():
    """HF_HUB_OFFLINE=1 (as every test runs) and nothing in the Hub's cache: the real snapshot_download
    refuses without touching the network, and the message names the two ways out."""
    with pytest.raises(CheckpointError) as refused:
        Predictor.load("someone/not-cached-anywhere")
    message = str(refused.value)
    assert "HF_HUB_OFFLINE=1 is set and it is not in the Hub cache" in message
    assert "Unset HF_HUB_OFFLINE" in message and "hf download someone/not-cached-anywhere --local-dir DIR" in message


@pytest.mark.parametrize("source,hub_id", [("owner/name", True), ("owner/name@main", True), ("./owner/name", False),
                                           ("/abs/path", False), ("a/b/c", False), ("name", False), ("~/x/y", False)])
def test_what_is_taken_for_a_hub_id(source, hub_id):
    assert is_hub_id(source) is hub_id


def test_a_local_folder_of_that_shape_is_a_folder(hub, tmp_path, monkeypatch):
    root, asked = hub
    image_checkpoint(tmp_path / "owner" / "name")
    monkeypatch.chdir(tmp_path)
    assert Predictor.load("owner/name").folder.resolve() == (tmp_path / "owner" / "name").resolve() and asked == []
    with pytest.raises(CheckpointError, match=r"\./nope: no such folder, and not a Hugging Face Hub id"):
        Predictor.load("./nope")


def test_the_app_serves_a_hub_repository_of_one_checkpoint(hub):
    root, asked = hub
    text_checkpoint(root / "someone" / "moods")
    served, from_hub = checkpoint_root("someone/moods")
    assert from_hub and asked == [("someone/moods", None)]
    found = discover(served, "text")
    assert list(found.predictors) == ["moods"] and not found.errors
    assert discover(served, "image").predictors == {}


def test_the_app_serves_a_hub_repository_of_checkpoint_folders(hub):
    root, _ = hub
    image_checkpoint(root / "someone" / "zoo" / "checkpoints" / "image" / "cats")
    text_checkpoint(root / "someone" / "zoo" / "checkpoints" / "text" / "moods")
    served, from_hub = checkpoint_root("someone/zoo")
    assert from_hub and served == root / "someone" / "zoo" / "checkpoints"
    assert list(discover(served, "image").predictors) == ["cats"] and list(discover(served, "text").predictors) == ["moods"]



def test_a_local_model_folder_is_served_as_it_is(hub):
    _, asked = hub
    assert checkpoint_root("checkpoints") == (Path("checkpoints"), False) and asked == []
