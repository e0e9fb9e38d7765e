#!/usr/bin/env bash
# Rebuilds checkpoints/text/emotion: WordPiece tokenizer + bi-GRU trained from scratch (--from-scratch: the
# plain command fine-tunes the pretrained MiniLM-L6 encoder), 8 epochs, the dataset's validation split.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}   # the folder of staged datasets
PY=${PY:-.venv/bin/python}
"$PY" -m training text --dataset "$DATA/emotion" --dataset-id dair-ai/emotion --from-scratch --epochs 8 --seed 0 --output checkpoints/text/emotion "$@"
