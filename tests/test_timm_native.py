"""Image checkpoints are timm's own format for the networks timm builds: `timm.create_model("local-dir:DIR",
pretrained=True)` with timm's transform from the folder's config gives the Predictor's top-1 on real photos,
and the model card says `library_name: timm` and shows how. Networks timm lacks say how to load them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, SHARED_DATA
from tiny_models import image_checkpoint

from demo.predictor import Predictor
from training.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PHOTOS = SHARED_DATA / "hymenoptera"
CIFAR = REPO / "checkpoints" / "image" / "cifar10"


def read(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def front_matter(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---\n")[1])


def timm_top1(model, transform, path: Path) -> str:
    from PIL import Image

    with torch.no_grad(), Image.open(path) as image:
        logits = model(transform(image.convert("RGB")).unsqueeze(0))[0]
    return model.pretrained_cfg["label_names"][int(logits.argmax())]


@pytest.fixture(scope="module")
def bees(tmp_path_factory):
    """EfficientNet-Lite0 from its ImageNet weights, a linear probe at 64 px on real photos of ants and bees."""
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} is not present")
    out = tmp_path_factory.mktemp("timm") / "checkpoints" / "image" / "bees"
    main(["image", "--dataset", str(PHOTOS), "--output", str(out), "--model", "efficientnet_lite0", "--pretrained",
          "--image-size", "64", "--freeze-backbone", "--epochs", "2", "--batch-size", "32", "--optimizer", "adamw",
          "--lr", "0.01", "--workers", "0", "--quiet", "--precision", "fp32"])
    return out


def test_training_writes_timms_keys(bees):
    config = read(bees)
    assert config["format_version"] == 2 and config["model"]["architecture"] == "efficientnet_lite0"
    assert config["architecture"] == "tf_efficientnet_lite0"          # the network built, in timm's name
    assert config["num_classes"] == 2 and config["label_names"] == config["labels"] == ["ants", "bees"]
    assert config["num_features"] == 1280
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [3, 64, 64] and cfg["interpolation"] == "bilinear"
    assert (cfg["crop_pct"], cfg["crop_mode"]) == (1.0, "center")
    assert cfg["mean"] == config["preprocessing"]["mean"] and cfg["std"] == config["preprocessing"]["std"]


def test_timm_alone_gives_the_predictors_top1_on_real_photos(bees):
    import timm

    predictor = Predictor.load(bees)
    model = timm.create_model(f"local-dir:{bees}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
    photos = sorted((PHOTOS / "validation").glob("*/*.jpg"))
    assert len(photos) > 100
    ours = [max(p := predictor.predict(str(path)), key=p.get) for path in photos]
    theirs = [timm_top1(model, transform, path) for path in photos]
    agree = sum(a == b for a, b in zip(ours, theirs)) / len(photos)
    right = sum(label == path.parent.name for label, path in zip(ours, photos)) / len(photos)
    assert right > 0.7                        # a model that learned something: agreement means something
    assert agree >= 0.98, agree               # the same top-1 but where the two resizes round a near-tie apart


def test_the_card_says_timm_and_its_snippet_runs(bees, tmp_path, monkeypatch):
    meta = front_matter(bees)
    assert meta["library_name"] == "timm" and meta["license"] == "apache-2.0"
    text = (bees / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"With timm alone.*?```python\n(.*?)```", text, re.S).group(1)
    assert f'timm.create_model("local-dir:checkpoints/image/bees", pretrained=True)' in snippet
    photo = sorted((PHOTOS / "validation" / "bees").glob("*.jpg"))[0]
    shutil.copy(photo, tmp_path / "photo.jpg")
    monkeypatch.chdir(bees.parents[2])      # the folder that holds checkpoints/, as the snippet expects
    printed = []
    monkeypatch.setattr("builtins.print", lambda *values: printed.append(values))
    exec(compile(snippet.replace('"photo.jpg"', repr(str(tmp_path / "photo.jpg"))), "card", "exec"), {})
    probs = Predictor.load(bees).predict(str(photo))
    assert printed[0][0] == max(probs, key=probs.get)


def test_pushing_names_the_hub_repository_in_the_snippets(bees, tmp_path):
    from training.push import push

    class Hub:
        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            return "https://huggingface.co/me/bees/commit/abc"

    folder = tmp_path / "bees"
    shutil.copytree(bees, folder)
    push(folder, "me/bees", api=Hub())
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert 'timm.create_model("hf-hub:me/bees", pretrained=True)' in text and 'Predictor.load("me/bees")' in text


def test_a_network_timm_lacks_says_how_to_load_it(tmp_path):
    folder = image_checkpoint(tmp_path / "checkpoints" / "image" / "tiny")
    main(["card", "--checkpoint", str(folder)])
    config = read(folder)
    assert "pretrained_cfg" not in config and config["architecture"] == "resnet20"
    assert front_matter(folder)["library_name"] == "pytorch"
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert "timm does not have this network (`resnet20`): load it with Triptych as above, or export it" in text
    assert 'Predictor.load("checkpoints/image/tiny")' in text


def test_the_shipped_efficientnet_migrated_loads_in_timm_as_what_it_is(tmp_path):
    """config.json named it efficientnet_lite0, but the network is timm's tf_efficientnet_lite0 (TF "same"
    padding, BatchNorm eps 1e-3): timm's efficientnet_lite0 takes the same weights without a missing key
    and predicts otherwise. After `migrate`, timm builds the right one."""
    import timm
    from safetensors.torch import load_file

    if read(CIFAR).get("model", {}).get("architecture") != "efficientnet_lite0":
        pytest.skip("the shipped image checkpoint is not EfficientNet-Lite0")
    folder = tmp_path / "cifar10"
    shutil.copytree(CIFAR, folder, ignore=shutil.ignore_patterns("resume.pt", "*.png"))
    assert main(["migrate", "--checkpoint", str(folder)])["timm"] is True
    ours = Predictor.load(folder).model
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(theirs(x), ours(x), atol=1e-5)
        trap = timm.create_model("efficientnet_lite0", num_classes=10)
        trap.load_state_dict(load_file(folder / "model.safetensors"))   # strict: not one key missing
        assert (trap.eval()(x) - ours(x)).abs().max() > 0.1
    assert read(folder)["label_names"] == read(CIFAR)["labels"]


def test_a_card_for_an_older_folder_upgrades_it_first(tmp_path):
    """`card` (and `export`, which writes the card) on a format-1 EfficientNet folder: config.json is
    format 2 with timm's keys first, so that the card can say what the folder is."""
    if read(CIFAR).get("model", {}).get("architecture") != "efficientnet_lite0":
        pytest.skip("the shipped image checkpoint is not EfficientNet-Lite0")
    folder = tmp_path / "cifar10"
    shutil.copytree(CIFAR, folder, ignore=shutil.ignore_patterns("resume.pt", "*.png"))
    config = read(folder)
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 1}), encoding="utf-8")
    main(["card", "--checkpoint", str(folder)])
    assert read(folder)["format_version"] == 2 and read(folder)["architecture"] == "tf_efficientnet_lite0"
    assert front_matter(folder)["library_name"] == "timm"
    assert "timm does not have" not in (folder / "README.md").read_text(encoding="utf-8")


def test_timm_keys_with_a_timm_before_data_config(monkeypatch):
    """timm 1.0.29's `save_config_for_hf` takes no data_config and writes the model's own pretrained_cfg to a
    Path: the keys written through it are the ones the current timm writes, and the model is left as it was."""
    import inspect

    import timm
    import timm.models._hub as hub

    from training.tasks.image import TASK
    from training.tasks.image.config import ImageConfig

    model = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    config = ImageConfig(architecture="efficientnet_lite0", image_size=96, mean=(0.5,) * 3, std=(0.5,) * 3)
    current = TASK.timm_config(config, model, ["a", "b", "c"])
    real = hub.save_config_for_hf

    def old_save_config_for_hf(model, config_path, model_config=None, model_args=None):
        assert isinstance(config_path, Path)
        return real(model, config_path, model_config=model_config, model_args=model_args)

    monkeypatch.setattr(hub, "save_config_for_hf", old_save_config_for_hf)
    assert "data_config" not in inspect.signature(hub.save_config_for_hf).parameters
    before = dict(model.pretrained_cfg)
    assert TASK.timm_config(config, model, ["a", "b", "c"]) == current
    assert current["pretrained_cfg"]["input_size"] == [3, 96, 96] and current["pretrained_cfg"]["crop_pct"] == 1.0
    assert dict(model.pretrained_cfg) == before
