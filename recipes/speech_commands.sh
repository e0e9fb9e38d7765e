#!/usr/bin/env bash
# Rebuilds checkpoints/speech/speech_commands from scratch (it is the base that the default speech recipe transfers
# from): conv + bidirectional GRU on log-mel, 12 keywords, trained on
# two datasets at once: the staged Speech Commands v0.02 clips and the extra v0.01 clips of other speakers
# (speech_commands_more: mostly up/down/left/right/go and other words, few yes/no/on/off/stop), each with
# its own speakers held out for validation (about 8 minutes on one CPU thread).
# Balanced sampling (every label equally likely in each epoch) measured better than the inverse-frequency
# weighted loss on the same run: 95.6% against 94.1% on Speech Commands' held-out speakers, 93.3% against
# 91.5% on speech_commands_more's. With the second dataset, Speech Commands' held-out speakers went from
# 92.2% (its clips alone) to 95.9%.
# Rooms and channels (half the clips in a synthetic room, 30% band-limited like a phone, +-6 dB gain, 10%
# clipped): on Speech Commands' held-out speakers, evaluate --corrupt reverb 90.2%, noise 88.5%, telephone
# 92.9% against 95.9% clean.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}   # the folder of staged datasets
PY=${PY:-.venv/bin/python}
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$PY" -m training speech \
    --dataset "$DATA/speech_commands" --dataset-id google/speech_commands \
    --dataset "$DATA/speech_commands_more/v0.01" --dataset-id google/speech_commands \
    --from-scratch --group-column speaker_id --balanced-sampling --reverb-prob 0.5 --band-prob 0.3 --gain-db 6 --clip-prob 0.1 \
    --epochs 25 --threads 1 --workers 1 --seed 0 --output checkpoints/speech/speech_commands "$@"
