"""What a run records beyond its weights, and what is drawn and scored from it: the Hub id of the dataset
(--dataset-id), the stages of a run started from earlier checkpoints (--init-from) in metrics.json and
its training curves, `python -m training report`, and `evaluate --split validation` on a dataset whose
validation rows the checkpoint carved from train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import make_image_parquet

from training import reports
from training.card import hub_dataset_id
from training.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FAST = ["--from-scratch", "--image-size", "16", "--batch-size", "8", "--workers", "0", "--quiet", "--width", "8", "--epochs", "1"]


def train(dataset, output, *extra) -> dict:
    return main(["image", "--dataset", str(dataset), "--output", str(output), *FAST, *extra])


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def card_meta(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---\n")[1])


@pytest.fixture(scope="module")
def plotted():
    """Every call of reports.plot_curves during the module's runs: (path, history, keyword arguments)."""
    calls = []
    real = reports.plot_curves

    def spy(path, history, **kwargs):
        calls.append((Path(path), history, kwargs))
        return real(path, history, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reports, "plot_curves", spy)
        yield calls


@pytest.fixture(scope="module")
def stages(colours_parquet, tmp_path_factory, plotted):
    """Three runs of one epoch each, every one started from the one before: (first, second, third)."""
    root = tmp_path_factory.mktemp("stages")
    train(colours_parquet, root / "first")
    train(colours_parquet, root / "second", "--init-from", str(root / "first"), "--lr", "0.01",
          "--dataset-id", "someone/colours")
    train(colours_parquet, root / "third", "--init-from", str(root / "second"), "--cutout", "4")
    return root / "first", root / "second", root / "third"


# ------------------------------------------------------------------------------------------ --dataset-id

def test_dataset_id_is_recorded_and_named_by_the_card(stages, colours_parquet):
    first, second, _ = stages
    config = read(second, "config.json")
    assert config["dataset"]["id"] == str(colours_parquet)          # where the rows were read from
    assert config["dataset"]["hub_id"] == "someone/colours"         # what they are a copy of
    assert config["train_args"]["dataset_id"] == "someone/colours"
    assert card_meta(second)["datasets"] == ["someone/colours"]
    assert "[`someone/colours`](https://huggingface.co/datasets/someone/colours)" in (second / "README.md").read_text()
    # without --dataset-id, a local folder has no Hub id and the card names none
    assert read(first, "config.json")["dataset"]["hub_id"] is None
    assert "datasets" not in card_meta(first)


def test_a_hub_id_given_as_dataset_is_recorded_as_the_hub_id(colours_parquet, tmp_path, monkeypatch):
    import datasets

    real = datasets.load_dataset
    asked = []

    def from_the_hub(path, *args, **kwargs):   # the Hub, served from the local copy
        if path == "someone/colours":
            asked.append(path)
            return real(str(colours_parquet))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", from_the_hub)
    train("someone/colours", tmp_path / "out")
    assert asked
    dataset = read(tmp_path / "out", "config.json")["dataset"]
    assert dataset["id"] == dataset["hub_id"] == "someone/colours"
    assert card_meta(tmp_path / "out")["datasets"] == ["someone/colours"]


@pytest.mark.parametrize("bad", ["colours", "a/b/c", "../data/cifar10", "-x/y", "a//b", "x/y--z", "x y/z"])
def test_a_dataset_id_not_of_the_form_owner_name_is_refused(colours_parquet, tmp_path, bad):
    with pytest.raises(SystemExit) as refused:
        train(colours_parquet, tmp_path / "out", f"--dataset-id={bad}")
    assert str(refused.value.code) == (f"error: --dataset-id {bad!r}: expected a Hugging Face Hub dataset id of "
                                       "the form owner/name (e.g. uoft-cs/cifar10): letters, digits, '-', '_' "
                                       "and '.', one '/'.")
    assert not (tmp_path / "out").exists()


def test_the_card_uses_the_recorded_hub_id_unless_told_otherwise(stages, tmp_path):
    assert hub_dataset_id({"dataset": {"id": "../shared/data/x", "hub_id": "owner/x"}}) == "owner/x"
    assert hub_dataset_id({"dataset": {"id": "../shared/data/x", "hub_id": "owner/x"}}, "other/x") == "other/x"
    assert hub_dataset_id({"dataset": {"id": "owner/x"}}) == "owner/x"          # recorded before hub_id was
    assert hub_dataset_id({"dataset": {"id": "../shared/data/x"}}) is None
    folder = tmp_path / "second"
    shutil.copytree(stages[1], folder)
    main(["card", "--checkpoint", str(folder)])
    assert card_meta(folder)["datasets"] == ["someone/colours"]
    main(["card", "--checkpoint", str(folder), "--dataset-id", "other/colours"])
    assert card_meta(folder)["datasets"] == ["other/colours"]
    with pytest.raises(SystemExit, match="--dataset-id 'colours': expected a Hugging Face Hub dataset id"):
        main(["card", "--checkpoint", str(folder), "--dataset-id", "colours"])


# ------------------------------------------------------------------------------------------------ stages

def test_a_staged_run_records_every_earlier_stage(stages):
    first, second, third = stages
    one, two, three = (read(f, "metrics.json") for f in stages)
    assert one["stages"] == [] and [h["epoch"] for h in one["history"]] == [1]
    assert two["stages"] == [{"checkpoint": str(first), "epochs": 1,
                              "train_args": read(first, "config.json")["train_args"], "history": one["history"]}]
    assert [h["epoch"] for h in two["history"]] == [1]             # `history` stays this run's own epochs
    # the third carries the second's stages (recursively) and then the second itself
    assert three["stages"] == [*two["stages"], {"checkpoint": str(second), "epochs": 1,
                                                "train_args": read(second, "config.json")["train_args"],
                                                "history": two["history"]}]


def test_the_curves_are_drawn_over_every_stage(stages, plotted):
    _, _, third = stages
    path, history, kwargs = [c for c in plotted if c[0] == third / "training_curves.png"][-1]
    recorded = read(third, "metrics.json")
    assert history == recorded["history"] and kwargs["stages"] == recorded["stages"]
    assert kwargs["title"] == "Training curves: third, colours"
    segments = reports.curve_segments(history, kwargs["stages"], kwargs["train_args"])
    assert [s["epochs"] for s in segments] == [[1], [2], [3]]      # one continuous epoch axis
    assert [s["start"] for s in segments] == [0, 1, 2]
    assert [s["label"] for s in segments] == ["stage 1\nlr 0.1", "stage 2\nlr 0.01", "stage 3\ncutout 4\nlr 0.1"]


def test_stages_of_old_checkpoints_still_plot(tmp_path):
    """A stage recorded without its history (a checkpoint without metrics.json) keeps its place on the axis."""
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.5, "val_macro_f1": 0.5}]
    segments = reports.curve_segments(history, [{"checkpoint": "old", "epochs": 0, "history": []},
                                                {"checkpoint": "older", "epochs": 4}])
    assert [s["epochs"] for s in segments] == [[], [], [5]]
    assert [s["label"] for s in segments] == ["stage 1", "stage 2", "stage 3"]
    assert [s["start"] for s in segments] == [0, 0, 4]
    reports.plot_curves(tmp_path / "curves.png", history, stages=[{"epochs": 4, "history": history}])
    assert (tmp_path / "curves.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------ report

def test_report_draws_the_figures_again_from_metrics_json(stages, tmp_path, plotted):
    folder = tmp_path / "third"
    shutil.copytree(stages[2], folder)
    for name in ("training_curves.png", "confusion_matrix.png"):
        (folder / name).unlink()
    before = read(folder, "metrics.json")
    report = main(["report", "--checkpoint", str(folder)])
    assert sorted(Path(p).name for p in report["written"]) == ["confusion_matrix.png", "training_curves.png"]
    assert (folder / "training_curves.png").stat().st_size > 10_000 and (folder / "confusion_matrix.png").is_file()
    _, history, kwargs = plotted[-1]
    assert history == before["history"] and kwargs["stages"] == before["stages"]
    assert "rescored" not in report and read(folder, "metrics.json") == before


def test_report_scores_an_old_checkpoint_again_for_its_confusion_matrix(stages, tmp_path):
    """metrics.json written before it held the confusion matrix: the validation rows are scored again
    and the matrix, the one the run found, is recorded."""
    folder = tmp_path / "first"
    shutil.copytree(stages[0], folder)
    metrics = read(folder, "metrics.json")
    old = {k: v for k, v in metrics.items() if k not in ("confusion", "stages")}
    (folder / "metrics.json").write_text(json.dumps(old))
    (folder / "confusion_matrix.png").unlink()
    report = main(["report", "--checkpoint", str(folder), "--workers", "0"])
    assert report["rescored"]["accuracy"] == report["rescored"]["recorded_accuracy"]
    assert read(folder, "metrics.json") == {**old, "confusion": metrics["confusion"]}
    assert (folder / "confusion_matrix.png").is_file()


def test_report_without_metrics_is_a_clear_error(stages, tmp_path):
    folder = tmp_path / "bare"
    shutil.copytree(stages[0], folder)
    (folder / "metrics.json").unlink()
    with pytest.raises(SystemExit, match="metrics.json: missing"):
        main(["report", "--checkpoint", str(folder)])


# ------------------------------------------------------------------------ evaluate on carved validation

@pytest.fixture(scope="module")
def carved(tmp_path_factory):
    """A dataset with a train split only, and a checkpoint that carved 30% of it with seed 3."""
    root = tmp_path_factory.mktemp("carved")
    dataset = make_image_parquet(root / "train_only", train_per_label=10, val_per_label=0)
    train(dataset, root / "out", "--seed", "3", "--val-fraction", "0.3")
    return dataset, root / "out"


def test_evaluate_scores_the_validation_rows_the_checkpoint_carved(carved, monkeypatch, capsys):
    from training import evaluate as evaluate_module
    from training.evaluate import recorded_splits

    dataset, out = carved
    scored = []
    real = evaluate_module.encode_split

    def encode_split(task, task_config, ds, *args, **kwargs):   # the rows evaluate scores
        scored.append(ds)
        return real(task, task_config, ds, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "encode_split", encode_split)
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(dataset), "--workers", "0"])
    assert report["split"] == "validation (carved from train as recorded)"
    config = read(out, "config.json")
    calibrated = recorded_splits(config, str(dataset)).val        # the rows `calibrate` scores
    assert scored[-1]["image"] == calibrated["image"] and len(calibrated) == 9
    assert report["num_examples"] == config["dataset"]["num_validation"] == 9
    assert report["accuracy"] == pytest.approx(config["metrics"]["accuracy"], abs=1e-6)
    assert report["per_label"] == config["metrics"]["per_label"]
    # --max-samples still applies
    assert main(["evaluate", "--checkpoint", str(out), "--dataset", str(dataset), "--workers", "0",
                 "--max-samples", "4"])["num_examples"] == 4


def test_evaluate_falls_back_only_for_validation_rows_the_checkpoint_carved(carved, stages, capsys):
    dataset, out = carved
    with pytest.raises(SystemExit, match=r"no 'test' split; it has \['train'\]"):
        main(["evaluate", "--checkpoint", str(out), "--dataset", str(dataset), "--split", "test", "--workers", "0"])
    # a checkpoint validated on its dataset's own validation split has no carved rows to fall back on
    with pytest.raises(SystemExit, match=r"no 'validation' split; it has \['train'\]"):
        main(["evaluate", "--checkpoint", str(stages[0]), "--dataset", str(dataset), "--workers", "0"])
