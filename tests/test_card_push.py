"""Model cards (Hugging Face README.md) and `python -m training push`, without a network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from training.card import describe_size, parameter_count, write_model_card
from training.checkpoint import load_model
from training.cli import main
from training.push import push

SHIPPED = sorted(p.parent for p in (REPO / "checkpoints").glob("*/*/config.json"))


def front_matter(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_card_matches_config(folder):
    config = json.loads((folder / "config.json").read_text())
    meta = front_matter(folder / "README.md")
    assert meta["library_name"] == ("timm" if "pretrained_cfg" in config else "pytorch")   # timm's own format
    assert meta["pipeline_tag"] == {"image": "image-classification", "text": "text-classification",
                                    "speech": "audio-classification"}[config["task"]]
    result = meta["model-index"][0]["results"][0]
    scores = {m["type"]: m["value"] for m in result["metrics"]}
    assert scores["accuracy"] == pytest.approx(config["metrics"]["accuracy"], abs=1e-4)
    assert scores["f1"] == pytest.approx(config["metrics"]["macro_f1"], abs=1e-4)
    body = (folder / "README.md").read_text(encoding="utf-8")
    for label in config["labels"]:
        assert f"| {label} |" in body


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_card_states_the_models_parameter_count(folder, tmp_path):
    model, _, _ = load_model(folder, "cpu")
    count = sum(p.numel() for p in model.parameters())
    assert parameter_count(folder / "model.safetensors") == count
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("resume.pt"))
    text = write_model_card(copy).read_text(encoding="utf-8")
    architecture = json.loads((copy / "config.json").read_text())["architecture"]   # timm's name, once upgraded
    assert f"(`{architecture}`{describe_size(count)})" in text
    assert f"{count / 1e6:.1f} M parameters" in text


def test_card_names_hub_dataset_only_when_given(tmp_path):
    """fsdd trains on the staged FSDD copy (no Hub id) and a copy of Speech Commands' digits recorded under
    its Hub id: the card names the one it knows, never a local folder, until told the other's."""
    folder = tmp_path / "fsdd"
    shutil.copytree(REPO / "checkpoints" / "speech" / "fsdd", folder)
    assert front_matter(write_model_card(folder))["datasets"] == ["google/speech_commands"]
    meta = front_matter(write_model_card(folder, "someone/fsdd"))
    assert meta["datasets"] == ["someone/fsdd"]
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "someone/fsdd"


class FakeHub:
    """Records what push asks of the Hub API instead of sending it."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return "https://huggingface.co/me/model/commit/abc"


def test_push_builds_the_upload(tmp_path):
    folder = tmp_path / "emotion"
    shutil.copytree(REPO / "checkpoints" / "text" / "emotion", folder)
    (folder / "resume.pt").write_bytes(b"local only")
    hub = FakeHub()
    assert push(folder, "me/emotion-gru", private=True, api=hub) == "https://huggingface.co/me/model/commit/abc"
    (create, repo_id, create_kwargs), (upload, upload_kwargs) = hub.calls
    assert (create, repo_id) == ("create_repo", "me/emotion-gru")
    assert create_kwargs == {"repo_type": "model", "private": True, "exist_ok": True}
    assert upload_kwargs["repo_id"] == "me/emotion-gru" and upload_kwargs["repo_type"] == "model"
    assert Path(upload_kwargs["folder_path"]) == folder
    assert "resume.pt" in upload_kwargs["ignore_patterns"]
    assert "validation accuracy" in upload_kwargs["commit_message"]


def test_push_uploads_format_2_with_timms_keys(tmp_path):
    """A format-1 folder is rewritten as format 2 before it goes up (what timm's hf-hub: loader reads), and
    its card's snippets name the repository."""
    source = REPO / "checkpoints" / "image" / "cifar10"
    if json.loads((source / "config.json").read_text())["model"].get("architecture") != "efficientnet_lite0":
        pytest.skip("the shipped image checkpoint is not a network timm builds")
    folder = tmp_path / "cifar10"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("resume.pt"))
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 1
    config["dataset"].pop("validation", None)
    (folder / "config.json").write_text(json.dumps(config))
    push(folder, "me/cifar10", api=FakeHub())
    pushed = json.loads((folder / "config.json").read_text())
    assert pushed["format_version"] == 2 and pushed["architecture"] == "tf_efficientnet_lite0"
    size = pushed["model"]["image_size"]
    assert pushed["pretrained_cfg"]["input_size"] == [3, size, size] and pushed["label_names"] == pushed["labels"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert 'timm.create_model("hf-hub:me/cifar10", pretrained=True)' in card
    assert front_matter(folder / "README.md")["library_name"] == "timm"


def test_push_refuses_a_broken_checkpoint(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    hub = FakeHub()
    with pytest.raises(Exception, match="config.json"):
        push(folder, "me/broken", api=hub)
    assert hub.calls == []


def test_push_cli_offline_is_a_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    shutil.copytree(REPO / "checkpoints" / "image" / "cifar10", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="could not push .*hf auth login"):
        main(["push", "--checkpoint", str(folder), "--repo-id", "me/cifar10"])
