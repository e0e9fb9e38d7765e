"""The run's report files: metrics.json, a confusion-matrix PNG and a training-curve PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import torch

from training.checkpoint import atomic_write, write_json


def write_reports(folder, metrics: dict, confusion: torch.Tensor | None, labels: list[str],
                  history: list[dict] | None = None) -> None:
    folder = Path(folder)
    write_json(folder / "metrics.json", metrics)
    if confusion is not None:
        plot_confusion(folder / "confusion_matrix.png", confusion, labels)
    if history:
        plot_curves(folder / "training_curves.png", history)


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(path, cm: torch.Tensor, labels: list[str]) -> None:
    plt = _figure()
    cm = cm.double()
    rows = cm / cm.sum(1, keepdim=True).clamp(min=1)
    n = len(labels)
    size = min(4 + 0.45 * n, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Validation confusion matrix (row-normalised)")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                v = rows[i, j].item()
                if v >= 0.005:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def plot_curves(path, history: list[dict]) -> None:
    plt = _figure()
    epochs = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    if all("val_loss" in h for h in history):
        a1.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="validation accuracy")
    a2.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", label="validation macro-F1")
    a2.set_xlabel("epoch")
    a2.set_ylim(0, 1)
    a2.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
