"""Which rows of a dataset train and which validate: a validation share carved out by label or by whole
groups (e.g. speakers), the folds of K-fold cross-validation, and a seeded subsample. Row indices in, row
indices out; training/data.py applies them to the datasets.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from training.errors import DatasetError


def carve_validation(labels: torch.Tensor, fraction: float, seed: int, groups: Sequence | None = None):
    """Split row indices into (train, val): stratified by label, or by whole groups (e.g. speakers)."""
    if not 0 < fraction < 1:
        raise DatasetError(f"--val-fraction {fraction}: must be between 0 and 1 when the dataset has no "
                           "validation split.")
    rng = np.random.default_rng(seed)
    n = len(labels)
    val = np.zeros(n, dtype=bool)
    if groups is not None:
        keys = sorted({str(g) for g in groups})
        if len(keys) < 2:
            raise DatasetError("the group column has fewer than two groups; cannot hold one out.")
        keys = [keys[i] for i in rng.permutation(len(keys))]
        size = {k: 0 for k in keys}
        for g in groups:
            size[str(g)] += 1
        chosen, total = set(), 0
        for k in keys:   # whole groups until the fraction is reached; at least one, never all
            if total >= fraction * n or len(chosen) == len(keys) - 1:
                break
            chosen.add(k)
            total += size[k]
        val = np.array([str(g) in chosen for g in groups])
    else:
        y = labels.numpy()
        for label in np.unique(y):
            rows = np.flatnonzero(y == label)
            rows = rows[rng.permutation(len(rows))]
            # Every label with two or more rows lands in both parts, even where the fraction rounds to 0
            # (a rare label missing from validation would have no score; a tiny dataset no split at all).
            take = min(max(1, int(round(fraction * len(rows)))), len(rows) - 1) if len(rows) > 1 else 0
            val[rows[:take]] = True
    return np.flatnonzero(~val).tolist(), np.flatnonzero(val).tolist()


def subsample(ds, labels: torch.Tensor, limit: int | None, seed: int):
    if limit is None or limit >= len(ds):
        return ds, labels
    rows = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit]).tolist()
    return ds.select(rows), labels[rows]


def fold_of_rows(labels: torch.Tensor, folds: int, seed: int, groups: Sequence | None = None) -> np.ndarray:
    """Each row's fold, 0 to folds - 1: whole groups dealt to the smallest fold so far, largest group first
    (ties in a seeded order), or each label's rows dealt round the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    if groups is not None:
        keys = sorted({str(g) for g in groups})
        if len(keys) < folds:
            raise DatasetError(f"--folds {folds}: the group column has {len(keys)} groups; each fold needs one.")
        size = {k: 0 for k in keys}
        for g in groups:
            size[str(g)] += 1
        order = sorted((keys[i] for i in rng.permutation(len(keys))), key=lambda k: -size[k])
        load, chosen = [0] * folds, {}
        for key in order:
            chosen[key] = int(np.argmin(load))
            load[chosen[key]] += size[key]
        return np.array([chosen[str(g)] for g in groups], dtype=np.int64)
    y = labels.numpy()
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        fold[rows[rng.permutation(len(rows))]] = (np.arange(len(rows)) + int(rng.integers(folds))) % folds
    return fold
