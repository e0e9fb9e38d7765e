#!/usr/bin/env bash
# Rebuilds checkpoints/speech/fsdd: conv + bidirectional GRU on 8 kHz log-mel, spoken digits, one speaker held out for validation (about 10 minutes on one CPU thread).
cd "$(dirname "$0")/.." && HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python -m training speech --dataset ../shared/data/fsdd --group-column speaker --sample-rate 8000 --epochs 40 --threads 1 --seed 0 --output checkpoints/speech/fsdd "$@"
