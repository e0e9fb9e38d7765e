#!/usr/bin/env bash
# Rebuilds checkpoints/speech/speech_commands: conv + bidirectional GRU on log-mel, 12 keywords, validation held out by speaker (about 10 minutes on one CPU thread).
cd "$(dirname "$0")/.." && HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python -m training speech --dataset ../shared/data/speech_commands --dataset-id google/speech_commands --group-column speaker_id --epochs 25 --threads 1 --seed 0 --output checkpoints/speech/speech_commands "$@"
