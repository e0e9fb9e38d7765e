"""The default recipes: what a plain `python -m training <task> --dataset X` trains, chosen from the data, for
every flag not given; printed, recorded in config.json and the card; off with --from-scratch; the same for
the Teach tab."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, image_png, make_imagefolder, task_settings

from training.cli import main
from training.data import Splits
from training.parser import given_fields, settings_from_argv
from training.tasks import get_task


def splits_of(rows, labels=("a", "b")) -> Splits:
    """Splits of image rows (bytes, label id), as training.data builds them."""
    import datasets

    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b, _ in rows],
                                     "label": [y for _, y in rows]})
    y = torch.tensor([y for _, y in rows])
    return Splits(ds, ds, y, y, list(labels), "image", "label")


def photo(width: int, height: int, seed: int = 0) -> bytes:
    import io

    from PIL import Image
    pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    out = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(out, "JPEG")
    return out.getvalue()


# ------------------------------------------------------------------------------------ which flags are given

def test_given_fields_are_the_flags_on_the_command_line_even_at_their_default():
    image = get_task("image")
    given = given_fields(image, ["image", "--dataset", "x", "--epochs", "15", "--image-column", "img",
                                 "--model", "resnet20", "--no-class-weights"])
    assert given == {"dataset", "epochs", "input_column", "architecture", "class_weights"}   # 15 is the default
    assert given_fields(image, ["image", "--dataset", "a", "--dataset", "b", "--dataset-id", "x/y"]) == {
        "dataset", "dataset_id"}
    task, settings = settings_from_argv(["text", "--dataset", "x", "--from-scratch"])
    assert task.name == "text" and settings.given == {"dataset", "from_scratch"} and settings.train.from_scratch


def test_settings_built_in_code_apply_no_recipe():
    assert task_settings("image").given is None


# ---------------------------------------------------------------------------------------- the image recipe

def test_photos_are_fine_tuned_at_160_px_and_a_few_per_label_train_the_head_alone():
    recipe = get_task("image").recipe
    plain = settings_from_argv(["image", "--dataset", "x"])[1]
    many = recipe(splits_of([(photo(400, 300, k), k % 2) for k in range(80)]), plain)
    assert many.task["architecture"] == "efficientnet_lite0" and many.task["pretrained"]
    assert many.task["image_size"] == 160 and many.task["cache_size"] == 0
    assert "freeze_backbone" not in many.train and many.train["backbone_lr_scale"] == 0.25
    assert "300 px" in many.reason and "40 to 40 per label" in many.reason
    few = recipe(splits_of([(photo(400, 300, k), k % 2) for k in range(12)]), plain)
    assert few.train["freeze_backbone"] and few.train["epochs"] == 20


def test_small_images_are_cached_at_their_own_size_and_enlarged():
    recipe = get_task("image").recipe(splits_of([(image_png((200, 10, 10), 32, seed=k), k % 2) for k in range(80)]),
                                      settings_from_argv(["image", "--dataset", "x"])[1])
    assert (recipe.task["cache_size"], recipe.task["image_size"], recipe.task["train_size"]) == (32, 128, 112)


def test_a_from_scratch_architecture_named_on_the_command_line_means_no_recipe():
    settings = settings_from_argv(["image", "--dataset", "x", "--model", "airbench"])[1]
    assert get_task("image").recipe(splits_of([(photo(64, 64), 0), (photo(64, 64), 1)]), settings) is None
    named = settings_from_argv(["image", "--dataset", "x", "--model", "efficientnet_lite1"])[1]
    chosen = get_task("image").recipe(splits_of([(photo(300, 300, k), k % 2) for k in range(40)]), named)
    assert chosen.task["architecture"] == "efficientnet_lite1" and chosen.task["pretrained"]


# ------------------------------------------------------------------------------------------------ a run

def test_the_plain_command_fine_tunes_with_the_recipe_and_records_it(tmp_path, capsys):
    data, out = make_imagefolder(tmp_path / "photos", per_label=6, size=24), tmp_path / "run"
    main(["image", "--dataset", str(data), "--output", str(out), "--epochs", "1", "--workers", "0"])
    said = capsys.readouterr().err
    assert "[triptych] recipe: efficientnet_lite0 from ImageNet weights" in said and "--from-scratch" in said
    config = json.loads((out / "config.json").read_text())
    recipe = config["recipe"]
    assert recipe["settings"]["architecture"] == "efficientnet_lite0" and recipe["settings"]["freeze_backbone"]
    assert "epochs" not in recipe["settings"]              # given: the user's value, not the recipe's
    assert config["train_args"]["epochs"] == 1 and config["train_args"]["model"] == "efficientnet_lite0"
    assert config["model"]["pretrained"] and config["model"]["cache_size"] == 24
    assert config["pretrained"]["license"] == "Apache-2.0"
    for unused in ("width", "widths", "tta"):   # ResNet-20's and airbench's sizes, which EfficientNet does not use
        assert unused not in config["model"] and unused not in config["train_args"]
    assert "Recipe: efficientnet_lite0 from ImageNet weights" in (out / "README.md").read_text()


def test_from_scratch_trains_the_settings_own_defaults(tmp_path):
    data, out = make_imagefolder(tmp_path / "photos", per_label=6, size=16), tmp_path / "run"
    main(["image", "--dataset", str(data), "--output", str(out), "--epochs", "1", "--workers", "0", "--quiet",
          "--from-scratch", "--width", "8"])
    config = json.loads((out / "config.json").read_text())
    assert "recipe" not in config and config["architecture"] == "resnet20" and not config["model"]["pretrained"]


# ------------------------------------------------------------------------------------- the speech recipe

def test_speech_transfers_from_the_base_in_the_checkpoints_folder(tmp_path):
    from test_speech import TINY, make_audio_parquet

    base_data = make_audio_parquet(tmp_path / "words", per_label=6)
    shipped = tmp_path / "shipped"
    main(["speech", "--dataset", str(base_data), "--output", str(shipped / "speech" / "speech_commands"), *TINY])
    digits = make_audio_parquet(tmp_path / "digits", per_label=6, words=("zero", "one"))
    out = tmp_path / "run"
    main(["speech", "--dataset", str(digits), "--output", str(out), "--checkpoints", str(shipped), "--epochs", "1",
          "--workers", "0", "--threads", "1", "--quiet"])
    config = json.loads((out / "config.json").read_text())
    assert config["transferred_from"]["checkpoint"] == str(shipped / "speech" / "speech_commands")
    assert config["recipe"]["settings"]["sample_rate"] == 8000 and config["model"]["channels"] == 8   # the base's
    assert config["model"]["reverb_prob"] == 0.5 and config["train_args"]["lr"] == 2e-3


def test_speech_without_a_base_says_so_and_trains_from_scratch(tmp_path, capsys):
    from test_speech import make_audio_parquet

    data, out = make_audio_parquet(tmp_path / "words", per_label=6), tmp_path / "run"
    main(["speech", "--dataset", str(data), "--output", str(out), "--checkpoints", str(tmp_path / "none"),
          "--epochs", "1", "--workers", "0", "--threads", "1", "--channels", "8", "--hidden-size", "16"])
    assert "recipe: the network from scratch (no base model at" in capsys.readouterr().err
    assert "transferred_from" not in json.loads((out / "config.json").read_text())


# ------------------------------------------------------------------------------------------------ Teach

def test_teach_trains_with_the_command_lines_recipe(tmp_path):
    from demo.teach import Project, run_settings_for
    from training.data import load_task_splits

    folder = make_imagefolder(tmp_path / "photos", per_label=6, size=24)
    project = Project("image", {label.name: sorted(label.iterdir()) for label in sorted(folder.iterdir())})
    taught = run_settings_for(project, folder, tmp_path / "out", REPO / "checkpoints", 60)
    command = settings_from_argv(["image", "--dataset", str(folder), "--val-fraction", "0.2"])[1]
    assert {"dataset", "output", "time_limit", "checkpoints"} <= taught.given and "architecture" not in taught.given
    task = get_task("image")
    recipes = [task.recipe(load_task_splits(task, s.data, s.task, s.train.seed), s) for s in (taught, command)]
    assert recipes[0] == recipes[1] and recipes[0].train["freeze_backbone"]
