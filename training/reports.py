"""The run's report files: metrics.json, a confusion-matrix PNG and a training-curve PNG (matplotlib).

metrics.json holds the best epoch's scores (`best`), this run's epochs (`history`), the best epoch's
validation confusion matrix (`confusion`: rows are the true labels, columns the predicted ones, in
config.json's label order) and, for a run started with --init-from, the runs before it (`stages`, oldest
first; see training/records.py `earlier_stages`). `draw_recorded` draws the two figures again from a
checkpoint's metrics.json and config.json (`python -m training report`).

The figures are sized to be read at about 600 px wide, as a model card or the README shows them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import torch

from training.checkpoint import CheckpointError, atomic_write, read_record, write_json
from training.config_record import to_json
from training.data import default_name

METRICS_NAME = "metrics.json"
CONFUSION_NAME = "confusion_matrix.png"
CURVES_NAME = "training_curves.png"
FONT = 14   # points at 100 dpi on a ~750 px wide figure: about 16 px when shown 600 px wide
# Arguments that say how a run was carried out rather than what it trained with: left out of stage labels.
BOOKKEEPING = ("init_from", "output", "resume", "quiet", "workers", "threads", "device", "no_cache",
               "eval_batch_size", "epochs", "dataset_id")


def write_reports(folder, metrics: dict, confusion: torch.Tensor | None, labels: list[str],
                  history: list[dict] | None = None, *, stages: list[dict] = (), train_args: dict | None = None,
                  title: str | None = None, confusion_title: str | None = None) -> None:
    """metrics.json as given, the confusion matrix of `confusion` and the curves of `stages` + `history`."""
    folder = Path(folder)
    write_json(folder / METRICS_NAME, metrics)
    if confusion is not None:
        plot_confusion(folder / CONFUSION_NAME, confusion, labels, title=confusion_title)
    if history:
        plot_curves(folder / CURVES_NAME, history, stages=stages, train_args=train_args, title=title)


def dataset_name(info: dict) -> str:
    """How the figures name a run's dataset (config.json's `dataset`, or `Splits.info`): its Hub id, else
    the local folder's or file's name."""
    return info.get("hub_id") or default_name(str(info.get("id") or "")) or "?"


def run_name(name: str, info: dict) -> str:
    """A checkpoint's name with its dataset's, e.g. "emotion, dair-ai/emotion" (once where they agree)."""
    dataset = dataset_name(info)
    return name if dataset == name else f"{name}, {dataset}"


def curves_title(name: str, info: dict) -> str:
    return f"Training curves: {run_name(name, info)}"


def confusion_title(name: str, info: dict) -> str:
    return f"Validation confusion matrix: {run_name(name, info)}"


def draw_recorded(folder, confusion: torch.Tensor | None = None) -> list[Path]:
    """Draw a checkpoint's training curves and confusion matrix again from its metrics.json (history,
    earlier stages, best confusion matrix) and config.json (labels, dataset, arguments); `confusion`
    stands in for a metrics.json that holds none. Returns the files written."""
    folder = Path(folder)
    config = read_record(folder)
    info = to_json(config.dataset)
    path = folder / METRICS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint has no recorded metrics to draw.")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    written = []
    if metrics.get("history"):
        plot_curves(folder / CURVES_NAME, metrics["history"], stages=metrics.get("stages", []),
                    train_args=config.train_args, title=curves_title(folder.name, info))
        written.append(folder / CURVES_NAME)
    if metrics.get("confusion") is not None:
        confusion = torch.tensor(metrics["confusion"])
    if confusion is not None:
        plot_confusion(folder / CONFUSION_NAME, confusion, list(config.labels),
                       title=confusion_title(folder.name, info))
        written.append(folder / CONFUSION_NAME)
    return written


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(path, cm: torch.Tensor, labels: list[str], *, title: str | None = None) -> None:
    """The row-normalised matrix in per cent of each true label, its cells numbered up to 20 labels."""
    plt = _figure()
    cm = cm.double()
    rows = 100 * cm / cm.sum(1, keepdim=True).clamp(min=1)
    n = len(labels)
    size = 7.5 if n <= 12 else min(7.5 + 0.3 * (n - 12), 14)
    cell_font = FONT if n <= 6 else 12 if n <= 10 else 11 if n <= 12 else 9
    with plt.rc_context({"font.size": FONT}):
        fig, ax = plt.subplots(figsize=(size, size * 0.92))
        im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=100)
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        heading = textwrap.fill(title or "Validation confusion matrix", 46, break_long_words=False)
        ax.set_title(heading + "\n(% of each true label)", fontsize=FONT + 1)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    v = rows[i, j].item()
                    if v >= 0.5:
                        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=cell_font,
                                color="white" if v > 50 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def stage_label(number: int, args: dict | None, before: dict | None) -> str:
    """"stage 2" and what it trained with that the stage before did not (up to three settings, e.g.
    "image_size 160"), or the first stage's learning rate."""
    args = args or {}
    if before is None:
        changed = [k for k in ("lr",) if k in args]
    else:
        changed = [k for k in args if k not in BOOKKEEPING and args.get(k) != before.get(k)]
    shown = [f"{k} {json.dumps(args[k]) if isinstance(args[k], (list, dict)) else args[k]}" for k in changed[:3]]
    return "\n".join([f"stage {number}", *shown])


def curve_segments(history: list[dict], stages: list[dict] = (), train_args: dict | None = None) -> list[dict]:
    """Every stage's epochs on one continuous axis: [{"label", "start", "epochs" (x values), "history"}],
    oldest first, this run's last. `stages` are metrics.json's earlier stages; without any, one segment."""
    parts = [*[(s.get("history") or [], s.get("train_args"), s.get("epochs")) for s in stages],
             (history, train_args, None)]
    segments, offset, before = [], 0, None
    for number, (rows, args, epochs) in enumerate(parts, 1):
        label = stage_label(number, args, before) if len(parts) > 1 else ""
        segments.append({"label": label, "start": offset, "epochs": [offset + h["epoch"] for h in rows],
                         "history": rows})
        offset += max([int(epochs or 0)] + [h["epoch"] for h in rows])
        before = args or {}
    return segments


def plot_curves(path, history: list[dict], *, stages: list[dict] = (), train_args: dict | None = None,
                title: str | None = None) -> None:
    """Loss above, validation accuracy and macro-F1 below, over every stage's epochs; a dashed line where
    each stage after the first begins and each stage's label above its span. One legend below both."""
    plt = _figure()
    segments = curve_segments(history, stages, train_args)
    series = [("train_loss", 0, "train loss", "C0"), ("val_loss", 0, "validation loss", "C1"),
              ("val_accuracy", 1, "validation accuracy", "C2"), ("val_macro_f1", 1, "validation macro-F1", "C3")]
    with plt.rc_context({"font.size": FONT}):
        fig, axes = plt.subplots(2, 1, figsize=(7.5, 8), sharex=True)
        for key, row, name, colour in series:
            labelled = False
            for seg in segments:   # one line per stage: the runs are separate, so are their lines
                points = [(x, h[key]) for x, h in zip(seg["epochs"], seg["history"]) if key in h]
                if points:
                    axes[row].plot(*zip(*points), marker="o", color=colour, label=None if labelled else name)
                    labelled = True
        top = max([h[k] for s in segments for h in s["history"] for k in ("train_loss", "val_loss") if k in h] or [1])
        axes[0].set_ylim(0, top * (1.45 if len(segments) > 1 else 1.05))   # headroom for the stage labels
        axes[0].set_ylabel("loss")
        axes[1].set_ylabel("validation score")
        axes[1].set_ylim(0, 1)
        axes[1].set_xlabel("epoch" + (" (all stages)" if len(segments) > 1 else ""))
        axes[1].xaxis.get_major_locator().set_params(integer=True)
        mark_stages(axes, segments)
        for ax in axes:
            ax.grid(alpha=0.3)
        handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=FONT - 1, frameon=False)
        fig.suptitle(textwrap.fill(title or "Training curves", 56, break_long_words=False), fontsize=FONT + 2)
        fig.tight_layout(rect=(0, 0.09, 1, 1))
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def mark_stages(axes, segments: list[dict]) -> None:
    """A dashed vertical line at each stage boundary and each stage's label at the top of its span."""
    if len(segments) < 2:
        return
    left = axes[0].get_xlim()[0]
    for k, seg in enumerate(segments):
        if k:
            for ax in axes:
                ax.axvline(seg["start"] + 0.5, color="0.3", linestyle="--", linewidth=1.2)
        axes[0].annotate(seg["label"], xy=(max(seg["start"] + 0.5, left), 1), xycoords=("data", "axes fraction"),
                         xytext=(5, -5), textcoords="offset points", ha="left", va="top", fontsize=FONT - 3,
                         color="0.15")
