"""Training on several datasets at once (`--dataset A --dataset B`): flags, label mapping, the carve across
datasets, refusals, what a run records, and balanced sampling."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from test_speech import TINY, make_audio_parquet

from training.data import DatasetError, load_task_splits
from training.errors import SettingsError
from training.settings import DataSettings, to_record
from training.tasks import get_task

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SPEECH = get_task("speech")


def audio_parquet(root, words=("yes", "no"), *, per_label=10, speakers=("a", "b", "c", "d", "e"), **kwargs):
    return make_audio_parquet(root, per_label, words=words, speakers=speakers, **kwargs)


def splits(*paths, **kwargs):
    config = SPEECH.check(SPEECH.Config(sample_rate=8000))
    data = DataSettings(dataset=tuple(str(p) for p in paths), workers=0, **kwargs)
    return load_task_splits(SPEECH, data, config, seed=0)


def names_of(split, labels) -> list[str]:
    return [split.labels[i] for i in labels.tolist()]


# ------------------------------------------------------------------------------------------------ flags

def parse(*argv):
    from training.parser import get_args_parser, run_settings

    args = get_args_parser().parse_args(["speech", *argv, "--output", "out"])
    return run_settings(SPEECH, args).data


def test_each_dataset_flag_belongs_to_the_dataset_before_it():
    data = parse("--dataset", "a", "--dataset-id", "o/a", "--dataset", "b", "--dataset-config", "v0.01",
                 "--dataset", "c", "--revision", "main")
    assert data.sources == [("a", "o/a", None, None), ("b", None, "v0.01", None), ("c", None, None, "main")]
    record = to_record(data)
    assert record["dataset"] == ["a", "b", "c"] and record["dataset_id"] == ["o/a", None, None]


def test_one_dataset_is_recorded_as_before_and_old_records_still_read():
    data = parse("--dataset-id", "o/a", "--dataset", "a")   # before any --dataset: the first's
    assert data.sources == [("a", "o/a", None, None)]
    assert to_record(data)["dataset"] == "a" and to_record(data)["dataset_id"] == "o/a"
    old = DataSettings(dataset="x", dataset_id="o/x", revision=None)
    assert old.dataset == ("x",) and old.sources == [("x", "o/x", None, None)]


def test_a_flag_given_twice_for_one_dataset_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--dataset", "a", "--dataset-id", "o/a", "--dataset-id", "o/b")
    assert "given twice for one --dataset" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="owner/name"):
        DataSettings(dataset=("a", "b"), dataset_id=(None, "not an id"))


# ------------------------------------------------------------------------------------ combining splits

def test_labels_are_matched_by_name_and_columns_by_role(tmp_path):
    a = audio_parquet(tmp_path / "a", ("yes", "no"))
    # Another order, another input column name, a label it names but has no rows of, other speakers.
    b = audio_parquet(tmp_path / "b", ("no", "yes", "maybe"), names=("no", "maybe", "yes"), skip=("maybe",),
                      column="file", speakers=("f", "g", "h", "i", "j"), per_label=6)
    s = splits(a, b, group_column="speaker_id")
    assert s.labels == ["yes", "no"] and s.input_column == "audio"
    assert len(s.train) + len(s.val) == 20 + 12
    sources = s.info["sources"]
    assert [x["id"] for x in sources] == [str(a), str(b)]
    start, stop = sources[1]["val_rows"]
    assert stop == len(s.val)
    # Every row of b keeps its word: the clips of "yes" are high tones, of "no" low, in both datasets.
    alone = splits(b, group_column="speaker_id")
    assert Counter(names_of(s, s.val_labels[start:stop])) == Counter(names_of(alone, alone.val_labels))
    assert Counter(names_of(s, s.train_labels)) == Counter(
        names_of(splits(a, group_column="speaker_id"), splits(a, group_column="speaker_id").train_labels)
        + names_of(alone, alone.train_labels))


def test_each_dataset_is_carved_as_it_would_be_alone(tmp_path):
    a = audio_parquet(tmp_path / "a")
    b = audio_parquet(tmp_path / "b", speakers=("f", "g", "h", "i", "j"))
    both, alone = splits(a, b, group_column="speaker_id"), splits(a, group_column="speaker_id")
    start, stop = both.info["sources"][0]["val_rows"]
    assert both.val_labels[start:stop].tolist() == alone.val_labels.tolist()
    assert both.info["num_validation"] == len(both.val) and both.info["num_train"] == len(both.train)


def test_no_speaker_is_on_both_sides_across_datasets(tmp_path):
    """Speakers c, d and e are in both datasets: whoever one dataset validates on, the other may not train on."""
    a = audio_parquet(tmp_path / "a", speakers=("a", "b", "c", "d", "e"))
    b = audio_parquet(tmp_path / "b", speakers=("c", "d", "e", "f", "g", "h"), per_label=18)
    s = splits(a, b, group_column="speaker_id")
    parts = [splits(p, group_column="speaker_id") for p in (a, b)]
    val = [set(p.val["speaker_id"]) for p in parts]
    expected = [sum(g in val[1 - k] for g in p.train["speaker_id"]) for k, p in enumerate(parts)]
    dropped = [x["dropped_train_rows"] for x in s.info["sources"]]
    assert dropped == expected and sum(dropped) > 0
    assert len(s.train) == sum(len(p.train) for p in parts) - sum(dropped)
    assert [x["num_train"] for x in s.info["sources"]] == [len(p.train) - d for p, d in zip(parts, dropped)]


def test_labels_the_first_dataset_lacks_are_refused(tmp_path):
    a = audio_parquet(tmp_path / "a", ("yes", "no"))
    b = audio_parquet(tmp_path / "b", ("yes", "stop", "go"))
    with pytest.raises(DatasetError, match=r"label\(s\) \['stop', 'go'\] are not among the labels of .*first "
                                           r"--dataset.*put the dataset that has every label first"):
        splits(a, b)


def test_inputs_of_another_kind_are_refused(tmp_path):
    from conftest import make_image_parquet

    a = audio_parquet(tmp_path / "a", ("yes", "no"))
    images = make_image_parquet(tmp_path / "images", labels=["yes", "no"], image_column="audio")
    with pytest.raises(DatasetError, match="one kind of input"):
        load_task_splits(SPEECH, DataSettings(dataset=(str(a), str(images)), input_column=None, workers=0),
                         SPEECH.check(SPEECH.Config(sample_rate=8000)), seed=0)


def test_a_missing_dataset_is_named(tmp_path):
    a = audio_parquet(tmp_path / "a")
    with pytest.raises(DatasetError, match="nowhere"):
        splits(a, tmp_path / "nowhere")


def test_paths_given_for_a_recorded_run_must_match_its_datasets(tmp_path):
    a, b = audio_parquet(tmp_path / "a"), audio_parquet(tmp_path / "b", speakers=("f", "g", "h", "i", "j"))
    data = DataSettings(dataset=("x", "y"), group_column="speaker_id", workers=0)
    config = SPEECH.check(SPEECH.Config(sample_rate=8000))
    moved = load_task_splits(SPEECH, data, config, 0, dataset=[str(a), str(b)])
    assert [x["id"] for x in moved.info["sources"]] == [str(a), str(b)]
    with pytest.raises(DatasetError, match="1 dataset path.* for a run on 2 dataset"):
        load_task_splits(SPEECH, data, config, 0, dataset=str(a))


# ---------------------------------------------------------------------------------------- a whole run

def test_a_run_on_two_datasets_records_and_scores_each(tmp_path):
    from training.cli import main

    a = audio_parquet(tmp_path / "a", per_label=12)
    b = audio_parquet(tmp_path / "b", ("no", "yes"), speakers=("f", "g", "h", "i", "j"), per_label=8)
    out = tmp_path / "run"
    main(["speech", "--dataset", str(a), "--dataset-id", "google/speech_commands", "--dataset", str(b),
          "--group-column", "speaker_id", "--val-fraction", "0.2", "--balanced-sampling", "--output", str(out), *TINY])
    config = json.loads((out / "config.json").read_text())
    sources = config["dataset"]["sources"]
    assert [x["id"] for x in sources] == [str(a), str(b)] and sources[0]["hub_id"] == "google/speech_commands"
    by = config["metrics"]["by_dataset"]
    assert set(by) == {str(a), str(b)}
    assert sum(x["num_examples"] for x in by.values()) == config["metrics"]["num_examples"]
    assert config["train_args"]["dataset"] == [str(a), str(b)] and config["train_args"]["balanced_sampling"]
    card = (out / "README.md").read_text()
    assert "Trained on 2 datasets at once" in card and "Speech Commands by Pete Warden" in card
    assert "datasets:\n- google/speech_commands" in card

    # evaluate --split validation on one of them: its own carved rows, as the run held them out.
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(b), "--split", "validation", "--workers", "0"])
    assert report["num_examples"] == by[str(b)]["num_examples"]
    assert report["accuracy"] == pytest.approx(by[str(b)]["accuracy"], abs=1e-4)
    with pytest.raises(SystemExit, match="not one of the datasets"):
        main(["evaluate", "--checkpoint", str(out), "--dataset", str(audio_parquet(tmp_path / "c")), "--split",
              "validation", "--workers", "0"])
    # calibrate rebuilds every dataset's validation rows; moved data is given path by path.
    assert main(["calibrate", "--checkpoint", str(out), "--workers", "0"])["num_validation"] == len(
        splits(a, b, group_column="speaker_id", val_fraction=0.2).val)
    moved = tmp_path / "moved"
    a.rename(moved)
    assert main(["calibrate", "--checkpoint", str(out), "--dataset", str(moved), "--dataset", str(b),
                 "--workers", "0"])["num_validation"] > 0


# ------------------------------------------------------------------------------------------ imbalance

def test_balanced_sampling_draws_every_label_about_equally_and_reproducibly():
    from training.loop import balanced_order, epoch_generator

    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    order = balanced_order(labels, epoch_generator(0, 3))
    assert len(order) == len(labels)
    drawn = np.bincount(labels[order].numpy(), minlength=3) / len(labels)
    assert np.allclose(drawn, 1 / 3, atol=0.06), drawn
    assert torch.equal(order, balanced_order(labels, epoch_generator(0, 3)))
    assert not torch.equal(order, balanced_order(labels, epoch_generator(0, 4)))
