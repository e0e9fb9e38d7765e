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
