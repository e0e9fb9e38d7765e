"""Dataset loading (training/data.py): hub ids offline, column detection, label names, validation splits."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import torch
from conftest import IMAGE_LABELS, image_rows, make_imagefolder, make_image_parquet, write_image_parquet

from training.data import DatasetError, carve_validation, label_ids, load_eval_split, load_splits

pytestmark = pytest.mark.usefixtures("torch_one_thread")

IMAGE_INPUTS = ("img", "image")


def splits_of(dataset, **kwargs):
    return load_splits(str(dataset), input_candidates=IMAGE_INPUTS, input_flag="--image-column", **kwargs)


def error_of(dataset, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        splits_of(dataset, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------ hub id, offline

@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network is recorded and fails at once (so nothing can wait on a timeout)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the tests never use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_hub_id_offline_says_what_to_do_without_touching_the_network(no_network):
    message = error_of("triptych-tests/no-such-dataset")
    assert "triptych-tests/no-such-dataset" in message
    assert "HF_HUB_OFFLINE" in message
    assert "local folder" in message and "--dataset" in message
    assert no_network == []


def test_hub_id_offline_through_the_cli(no_network, tmp_path):
    from training.cli import main

    with pytest.raises(SystemExit) as info:
        main(["image", "--dataset", "triptych-tests/no-such-dataset", "--output", str(tmp_path / "out"), "--quiet"])
    assert str(info.value.code).startswith("error: ") and "local folder" in str(info.value.code)
    assert not (tmp_path / "out").exists()
    assert no_network == []


def test_a_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path, no_network):
    message = error_of(tmp_path / "missing" / "folder")
    assert "no such file or folder" in message and no_network == []


# ----------------------------------------------------------------------------------- column detection

@pytest.mark.parametrize("image_column,label_column", [("img", "label"), ("image", "labels")])
def test_columns_are_detected(tmp_path, image_column, label_column):
    path = write_image_parquet(tmp_path / "d.parquet", image_rows(4), image_column=image_column,
                               label_column=label_column)
    s = splits_of(path)
    assert (s.input_column, s.label_column) == (image_column, label_column)
    assert s.labels == list(IMAGE_LABELS)      # ClassLabel names, in their own order
    assert len(s.train) + len(s.val) == 12


def test_missing_input_column_lists_the_columns_and_the_flag(tmp_path):
    path = write_image_parquet(tmp_path / "d.parquet", image_rows(2), image_column="picture", label_column="target")
    message = error_of(path)
    assert "'picture'" in message and "'target'" in message
    assert "img" in message and "image" in message and "--image-column" in message
    s = splits_of(path, input_column="picture", label_column="target")
    assert (s.input_column, s.label_column) == ("picture", "target")


def test_missing_label_column_lists_the_columns_and_the_flag(tmp_path):
    path = write_image_parquet(tmp_path / "d.parquet", image_rows(2), label_column="target")
    message = error_of(path)
    assert "'image'" in message and "'target'" in message and "--label-column" in message
    message = error_of(path, label_column="nope")
    assert "nope" in message and "'target'" in message


def test_string_labels_become_sorted_names(tmp_path):
    labels = ("zebra", "ant", "moose")
    rows = image_rows(4, labels=labels)
    path = write_image_parquet(tmp_path / "d.parquet", rows, labels=labels, string_labels=True)
    s = splits_of(path, val_fraction=0.25)
    assert s.labels == ["ant", "moose", "zebra"]
    # Ids follow the names: compare with the strings stored in the file.
    names = [s.labels[i] for i in torch.cat([s.train_labels, s.val_labels]).tolist()]
    stored = list(s.train[s.label_column]) + list(s.val[s.label_column])
    assert names == stored


def test_imagefolder_labels_come_from_the_folder_names(tmp_path):
    s = splits_of(make_imagefolder(tmp_path / "f", per_label=4))
    assert s.labels == sorted(IMAGE_LABELS) and s.input_column == "image"
    # Only 4 rows per label at --val-fraction 0.1: one of each still goes to validation.
    assert sorted(s.val_labels.tolist()) == [0, 1, 2] and len(s.train) == 9


# ------------------------------------------------------------------------------------ label problems

def test_a_label_outside_the_label_list_is_named(tmp_path):
    root = tmp_path / "d"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", image_rows(2), string_labels=True)
    odd = IMAGE_LABELS + ("zebra",)
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", image_rows(1, labels=odd),
                        labels=odd, string_labels=True)
    message = error_of(root)
    assert "'zebra'" in message and "validation" in message and "red" in message


def test_label_ids_name_unknown_labels():
    class Feature:   # a plain string column
        pass

    class Fake:
        features = {"label": Feature()}

        def __getitem__(self, column):
            return ["a", "b", "c", "a"]

    assert label_ids(Fake(), "label", ["a", "b", "c"], split="train").tolist() == [0, 1, 2, 0]
    with pytest.raises(DatasetError, match=r"'c'.*not in the label list"):
        label_ids(Fake(), "label", ["a", "b"], split="train")


def test_evaluating_against_other_labels_names_the_label(tmp_path):
    root = make_image_parquet(tmp_path / "d", train_per_label=1, val_per_label=1, string_labels=True)
    with pytest.raises(DatasetError, match="'blue'"):
        load_eval_split(str(root), "validation", ["red", "green"], input_candidates=IMAGE_INPUTS)


def test_a_single_label_is_refused(tmp_path):
    path = write_image_parquet(tmp_path / "d.parquet", image_rows(3, labels=("only",)), labels=("only",))
    assert "two" in error_of(path)


# ---------------------------------------------------------------------------------------- splits

def test_empty_validation_split(tmp_path):
    root = tmp_path / "d"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", image_rows(2))
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", [])
    message = error_of(root)
    assert "'validation'" in message and "empty" in message


def test_empty_train_split(tmp_path):
    root = tmp_path / "d"
    write_image_parquet(root / "data" / "train-00000-of-00001.parquet", [])
    write_image_parquet(root / "data" / "validation-00000-of-00001.parquet", image_rows(2))
    message = error_of(root)
    assert "'train'" in message and "empty" in message


def test_missing_split_lists_the_splits(tmp_path):
    root = make_image_parquet(tmp_path / "d", train_per_label=2, val_per_label=1)
    message = error_of(root, eval_split="test")
    assert "'test'" in message and "train" in message and "validation" in message


def test_validation_split_is_used_and_test_never_is(tmp_path):
    root = make_image_parquet(tmp_path / "d", train_per_label=4, val_per_label=2)
    s = splits_of(root)
    assert (len(s.train), len(s.val)) == (12, 6) and s.info["validation_split"] == "validation"
    # A dataset with train and test only: validation is carved from train; test stays untouched.
    other = tmp_path / "e"
    write_image_parquet(other / "data" / "train-00000-of-00001.parquet", image_rows(10))
    write_image_parquet(other / "data" / "test-00000-of-00001.parquet", image_rows(5, seed=99))
    s = splits_of(other, val_fraction=0.2)
    assert (len(s.train), len(s.val)) == (24, 6)
    assert s.info["validation_split"].startswith("train (held out 0.2")


def test_max_samples_subsample(tmp_path):
    root = make_image_parquet(tmp_path / "d", train_per_label=4, val_per_label=2)
    s = splits_of(root, max_train_samples=5, max_eval_samples=4)
    assert (len(s.train), len(s.val), len(s.train_labels), len(s.val_labels)) == (5, 4, 5, 4)
    assert s.info["num_train"] == 5 and s.info["num_validation"] == 4


def test_carve_validation_is_stratified_and_respects_the_fraction():
    counts = {0: 50, 1: 30, 2: 11, 3: 5, 4: 2, 5: 1}
    labels = torch.tensor([y for y, n in counts.items() for _ in range(n)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    train, val = carve_validation(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(len(labels)))            # a partition of the rows
    in_train, in_val = Counter(labels[train].tolist()), Counter(labels[val].tolist())
    for y, n in counts.items():
        if n == 1:
            assert in_train[y] == 1 and in_val[y] == 0
            continue
        assert in_train[y] >= 1 and in_val[y] >= 1, f"label {y} ({n} rows) is missing from a part"
        assert abs(in_val[y] - 0.2 * n) <= 1, f"label {y}: {in_val[y]} of {n} held out"
    assert abs(len(val) / len(labels) - 0.2) < 0.05
    assert carve_validation(labels, 0.2, seed=3) == (train, val)                 # reproducible
    assert carve_validation(labels, 0.2, seed=4)[1] != val                      # and seeded


def test_carve_validation_by_group_never_splits_a_group():
    groups = [f"speaker{g}" for g in range(12) for _ in range(3 + g % 4)]
    labels = torch.tensor([i % 3 for i in range(len(groups))])
    train, val = carve_validation(labels, 0.25, seed=0, groups=groups)
    assert sorted(train + val) == list(range(len(groups)))
    train_groups, val_groups = {groups[i] for i in train}, {groups[i] for i in val}
    assert val_groups and train_groups and not train_groups & val_groups
    largest = max(Counter(groups).values())
    assert 0.25 <= len(val) / len(groups) <= 0.25 + largest / len(groups)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_carve_validation_refuses_impossible_fractions(fraction):
    with pytest.raises(DatasetError, match="--val-fraction"):
        carve_validation(torch.tensor([0, 1, 0, 1]), fraction, seed=0)


def test_carve_validation_with_a_single_group_is_refused():
    with pytest.raises(DatasetError, match="two groups"):
        carve_validation(torch.tensor([0, 1, 0, 1]), 0.5, seed=0, groups=["a"] * 4)
