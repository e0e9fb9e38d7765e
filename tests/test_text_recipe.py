"""The text task's default recipe: the encoder on a schedule sized from the data, settings the user gave
left alone, off when the user names the from-scratch rnn; its values are flags the command line takes."""

from __future__ import annotations

from dataclasses import fields

import torch
from conftest import task_settings

from training.data import Splits
from training.settings import TrainSettings, flag_of
from training.tasks import text
from training.tasks.text import recipe as text_recipe


def splits(per_label: list[int]) -> Splits:
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(per_label)])
    names = [f"label{k}" for k in range(len(per_label))]
    return Splits(train=None, val=None, train_labels=labels, val_labels=labels[:2], labels=names,
                  input_column="text", label_column="label")


def as_flags(recipe) -> list[str]:
    out = []
    for cls, values in ((text.TextConfig, recipe.task), (TrainSettings, recipe.train)):
        for f in fields(cls):
            if f.name in values:
                value = values[f.name]
                out += [flag_of(f)] if value is True else [flag_of(f), str(value)]
    return out


def test_few_rows_get_many_short_epochs_and_many_rows_a_few_long_ones():
    few = text_recipe.default_recipe(splits([27] * 6), frozenset())
    assert few.task["architecture"] == text_recipe.DEFAULT and few.task["weights_dtype"] == "float16"
    assert few.train["batch_size"] == 16 and few.train["epochs"] == 15                    # 10 steps an epoch
    assert few.train["patience"] == text_recipe.PATIENCE
    assert few.train["lr"] * few.train["backbone_lr_scale"] == 5e-5
    assert "162 training rows, 6 labels, 27 to 27 per label" in few.reason
    assert few.task["frozen_layers"] == 0 and "all 6 layers fine-tuned" in few.name
    tiny = text_recipe.default_recipe(splits([4, 4, 4]), frozenset())
    assert tiny.train["epochs"] == text_recipe.MAX_EPOCHS and tiny.train["batch_size"] == 4   # 3 steps an epoch
    assert tiny.task["frozen_layers"] == 0                                  # a handful of rows fine-tunes too
    many = text_recipe.default_recipe(splits([4666, 5362, 1304, 2159, 1937, 572]), frozenset())
    assert many.train["batch_size"] == 32 and many.train["epochs"] == text_recipe.MIN_EPOCHS
    assert many.train["patience"] == 0                                    # two epochs: both run
    assert "572 to 5362 per label" in many.reason


def test_settings_the_user_gave_are_left_out_and_naming_the_rnn_turns_it_off():
    data = splits([30] * 4)
    given = frozenset({"epochs", "dropout"})
    recipe = text_recipe.default_recipe(data, given)
    assert "epochs" not in recipe.train and "dropout" not in recipe.task and "lr" in recipe.train
    rnn = text.TextConfig(architecture="rnn")
    assert text_recipe.default_recipe(data, frozenset({"architecture"}), rnn) is None
    assert text_recipe.default_recipe(data, frozenset({"architecture"})) is None        # which one unknown: today's defaults
    linear = text_recipe.default_recipe(data, frozenset({"architecture"}), text.TextConfig(architecture="minilm-linear"))
    assert "architecture" not in linear.task and linear.task["pooling"] == "mean" and "linear head" in linear.name


def test_the_recipe_is_flags_the_command_line_takes():
    recipe = text_recipe.default_recipe(splits([30] * 6), frozenset())
    settings = task_settings("text", *as_flags(recipe))
    for name, value in recipe.task.items():
        assert getattr(settings.task, name) == value, name
    for name, value in recipe.train.items():
        assert getattr(settings.train, name) == value, name
    assert settings.task.embedding_size == 384                                  # settled by the task's check
