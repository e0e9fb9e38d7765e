"""The speech task's default recipe (Task.recipe): transfer from the shipped keyword model, which
`python -m training speech --dataset X` and the Teach tab share.

The base (checkpoints/speech/speech_commands under --checkpoints) has heard about a thousand speakers, rooms,
microphones and phone lines; every weight but its classifier head is the new model's start, and the new
clips are resampled to its rate and heard through its features (its model settings are this run's). Epochs,
batch size and learning rate follow the number of clips; the rooms and channels it was trained with stay on.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from training.settings import role_of
from training.tasks.base import Recipe

BASE = "speech_commands"
FEW_CLIPS = 500     # below this many training clips: small batches, more epochs, a higher learning rate
# Rooms and channels, as the shipped models were trained (a synthetic room for half the clips, 30% through a
# phone line's band, +-6 dB, 10% clipped): on speech_commands' held-out speakers they cost 0.4-3 points clean
# and made every corrupted copy score within 8 points of clean (recipes/speech_commands.sh).
ROBUST = dict(reverb_prob=0.5, band_prob=0.3, gain_db=6.0, clip_prob=0.1)


def base_folder(settings) -> Path:
    return Path(settings.train.transfer_from or Path(settings.train.checkpoints) / "speech" / BASE)


def recipe(splits, settings) -> Recipe:
    """Transfer from the base, or, without one, the network from scratch with the reason said."""
    folder = base_folder(settings)
    config_file = folder / "config.json"
    if not config_file.is_file():
        return Recipe(name="the network from scratch", reason=f"no base model at {folder} to transfer from")
    base = json.loads(config_file.read_text(encoding="utf-8"))
    model = {f.name: base["model"][f.name] for f in fields(settings.task)
             if f.compare and role_of(f) == "network" and f.name in base.get("model", {})}
    rows = len(splits.train)
    few = rows < FEW_CLIPS
    # Measured: 10 clips per word of new words and a new voice learned best in 60 epochs of batches of 16 at
    # 2e-3 (bench/teach.py); FSDD's 2,000 clips in 40 epochs of 64 at 1e-3 (3e-3 swung validation between
    # 85% and 97% from epoch to epoch; recipes/speech_fsdd.sh).
    train = dict(transfer_from=str(folder), epochs=60 if few else 40, batch_size=16 if few else 64,
                 lr=2e-3 if few else 1e-3)
    return Recipe(name=f"transfer from {folder} (every weight but its head), {train['epochs']} epochs",
                  reason=f"{rows} training clips, {len(splits.labels)} labels; resampled to its "
                         f"{model.get('sample_rate', '?')} Hz", task={**model, **ROBUST}, train=train)
