"""The text task's default recipe for the data at hand: the pretrained MiniLM-L6 encoder with a head,
its top layers fine-tuned, on a schedule sized from the number of training rows (bench/text_defaults.py
measures it). Settings the user gives keep their values; naming the from-scratch architecture
(`--model rnn`) turns the recipe off, as `--from-scratch` does.
"""

from __future__ import annotations

import math

from training.tasks.base import Recipe
from training.tasks.text.config import FROM_SCRATCH, TextConfig
from training.tasks.text.encoder import LAYERS

DEFAULT = "minilm-gru"
NAMES = {"minilm-gru": "MiniLM-L6 encoder + bidirectional GRU head", "minilm-linear": "MiniLM-L6 encoder + mean-pooled "
                                                                                         "linear head"}
# What each encoder architecture's head takes: the GRU head max-pools its states (the rnn's pooling); the
# linear head mean-pools the encoder's, as the encoder was trained to be read (sentence-transformers).
HEADS = {"minilm-gru": {"pooling": "max", "hidden_size": 128}, "minilm-linear": {"pooling": "mean"}}
FROZEN_LAYERS = 0         # the embeddings frozen (45 MB that never change), all six layers fine-tuned ...
WEIGHTS_DTYPE = "float16"  # ... and stored in half precision: 21 MB (the limit is 25 MB; in float32, 42 MB)
HEAD_LR = 2e-3            # AdamW; the encoder at 1/40 of it, 5e-5, the usual BERT fine-tuning rate
ENCODER_LR_SCALE = 0.025
TARGET_STEPS = 150        # few rows: enough passes for about this many steps (162 rows: 15 epochs of 16)
MAX_EPOCHS, MIN_EPOCHS = 20, 2
# ... stopping once PATIENCE epochs pass without a better validation score (the best epoch is kept): on 30
# TREC questions per type the best epoch was the 7th of 15, on a Teach project of 3 x 50 lines the 4th of 19,
# and every encoder epoch costs (3 x 50 lines: 284 s for 19 epochs on one busy thread).
PATIENCE = 3
# No rule for a handful of rows: with the encoder frozen and the head alone trained (the image recipe's
# linear probe), 8 TREC questions per type scored 50.9% on TREC's test questions against 55.9% with every
# layer fine-tuned, for 7.5 s of training against 10.0 (bench/text_defaults.py --per-class 8).


def batch_size(rows: int) -> int:
    """16 for a few hundred rows (10 steps an epoch on 162), fewer for a handful (so an epoch is several
    steps: 27 rows, batches of 4), 32 from a few thousand (faster per row)."""
    return min(16, max(4, rows // 8)) if rows < 2000 else 32


def epochs(rows: int, batch: int) -> int:
    """Enough passes for TARGET_STEPS steps on small data, within [MIN_EPOCHS, MAX_EPOCHS]."""
    steps = max(1, rows // batch)
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(TARGET_STEPS / steps)))


def default_recipe(splits, given: frozenset[str], config: TextConfig | None = None) -> Recipe | None:
    """The encoder recipe for `splits`, or None where the user chose the from-scratch rnn. `config` is the
    task settings as given: with "architecture" in `given` it tells which one (without it, a given
    architecture counts as the from-scratch one, whose defaults are today's)."""
    chosen = config.architecture if config is not None and "architecture" in given else None
    if "architecture" in given and chosen in (None, FROM_SCRATCH):
        return None
    architecture = chosen or DEFAULT
    rows, labels = len(splits.train_labels), len(splits.labels)
    counts = [int(c) for c in splits.train_labels.bincount(minlength=labels)]
    batch = batch_size(rows)
    n_epochs = epochs(rows, batch)
    task = {"architecture": architecture, "frozen_layers": FROZEN_LAYERS, "weights_dtype": WEIGHTS_DTYPE,
            "dropout": 0.1, "token_dropout": 0.0, **HEADS[architecture]}
    train = {"epochs": n_epochs, "batch_size": batch, "lr": HEAD_LR, "backbone_lr_scale": ENCODER_LR_SCALE,
             "weight_decay": 0.01, "warmup_fraction": 0.1, "patience": PATIENCE if n_epochs > MIN_EPOCHS else 0}
    reason = (f"{rows} training rows, {labels} labels, {min(counts)} to {max(counts)} per label: {n_epochs} epochs "
              f"of batches of {batch} ({n_epochs * max(1, rows // batch)} steps)")
    layers = "all" if FROZEN_LAYERS == 0 else f"top {LAYERS - FROZEN_LAYERS}"
    return Recipe(name=f"{NAMES[architecture]}, {layers} {LAYERS} layers fine-tuned", reason=reason,
                  task={k: v for k, v in task.items() if k not in given},
                  train={k: v for k, v in train.items() if k not in given})
