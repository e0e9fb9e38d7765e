"""`python -m training migrate --checkpoint DIR`: rewrite a checkpoint folder in today's format.

config.json becomes format 2 (read from format 1 by training/legacy.py), with timm's keys where timm
builds the network, and the model card is written again from it. The weights are not touched: the model
loads and predicts exactly as before.
"""

from __future__ import annotations

from pathlib import Path

from training import checkpoint as ckpt
from training.card import write_model_card


def migrate_folder(folder) -> dict:
    """Rewrite the checkpoint in `folder` as format 2: config.json (with timm's keys where timm builds the
    network, `architecture` then being timm's name of it) and its model card. The weights are untouched.
    Returns what was done."""
    folder = Path(folder)
    before = ckpt.read_json(folder).get("format_version")
    record = ckpt.upgrade_folder(folder, always=True)
    card = write_model_card(folder)
    return {"checkpoint": str(folder), "format_version": {"before": before, "after": record.format_version},
            "architecture": record.architecture, "timm": record.timm is not None, "card": str(card)}
