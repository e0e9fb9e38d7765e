"""Classification metrics from a confusion matrix (rows: true label, columns: predicted)."""

from __future__ import annotations

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_labels: int) -> torch.Tensor:
    idx = targets.long() * num_labels + preds.long()
    return torch.bincount(idx, minlength=num_labels * num_labels).view(num_labels, num_labels)


def from_confusion(cm: torch.Tensor, labels: list[str]) -> dict:
    """accuracy, macro-F1 (over labels seen in targets or predictions) and per-label scores."""
    cm = cm.double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(tp))
    present = (support + predicted) > 0
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_examples": int(total),
        "per_label": {name: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                             "f1": round(float(f1[i]), 4), "support": int(support[i])}
                      for i, name in enumerate(labels)},
    }


def unsure_threshold(confidence: torch.Tensor, correct: torch.Tensor, *, window: int = 20) -> dict:
    """The top-label probability below which the model is no better than a coin toss on validation data.

    Below it the demo says the model is unsure instead of presenting its guess as fact. The validation
    predictions are sorted by confidence and read in sliding windows of `window` neighbours; the threshold
    is the confidence just above the most confident window that is right at most half the time, so every
    window above it is right more often than not. 0.0 (never unsure) when no window is that bad.
    """
    n = len(confidence)
    order = confidence.double().argsort()
    conf, ok = confidence.double()[order], correct.double()[order]
    below = 0
    if n >= window:
        hits = torch.cat([torch.zeros(1, dtype=torch.double), ok.cumsum(0)])
        window_accuracy = (hits[window:] - hits[:-window]) / window     # window ending before row k
        coin_toss = torch.nonzero(window_accuracy <= 0.5).flatten()
        below = int(coin_toss.max()) + window if len(coin_toss) else 0
    threshold = 0.0 if below == 0 else (float(conf[below]) if below < n else 1.0)
    return {"threshold": round(threshold, 4), "fraction_below": round(below / max(1, n), 4),
            "accuracy_below": round(float(ok[:below].mean()), 4) if below else None,
            "accuracy_above": round(float(ok[below:].mean()), 4) if below < n else None,
            "rule": f"above the most confident run of {window} validation predictions right <= 50% of the time"}
