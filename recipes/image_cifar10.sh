#!/usr/bin/env bash
# Rebuilds checkpoints/image/cifar10: ResNet-20 from scratch, 10 epochs, 10% of train held out.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10}
.venv/bin/python -m training image --dataset "$DATA" --model resnet20 --epochs 10 --seed 0 \
    --output checkpoints/image/cifar10 "$@"
