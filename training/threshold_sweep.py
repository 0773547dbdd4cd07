"""Mean Dice on a folder of pairs at several thresholds, from one prediction per image.

    .venv/bin/python training/threshold_sweep.py --checkpoint training/runs/lite0-320-warm/best.safetensors \
        --data ../shared/data/polypgen/val [--json training/card/threshold_sweep.json]

The threshold is part of the model (its config's ``threshold``): choosing it here is model selection, so
run it only on the selection (val) set, never on the images a figure is reported for.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def main() -> int:
    from napari_unetv2.engine.data import find_pairs, load_pair_arrays
    from napari_unetv2.engine.evaluate import iter_scores
    from napari_unetv2.engine.metrics import MetricAccumulator, binarize, dice_iou_mae
    from napari_unetv2.inference import Predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    predictor = Predictor(args.checkpoint, device="cpu")
    pairs = find_pairs(args.data).pairs
    dice = {t: [] for t in THRESHOLDS}
    for pair, _, probability in iter_scores(predictor, pairs, MetricAccumulator(), with_hd95=False):
        _, gt = load_pair_arrays(pair)
        for t in THRESHOLDS:
            dice[t].append(dice_iou_mae(binarize(probability, t), gt)[0])
    rows = {t: float(np.mean(v)) for t, v in dice.items()}
    print(f"{predictor.description} on {args.data} ({len(pairs)} images)")
    print("| threshold | mean Dice |\n|---|---|")
    for t, v in rows.items():
        print(f"| {t:.2f} | {v:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": predictor.description, "data": str(args.data), "n": len(pairs),
                                         "mean_dice": {str(t): v for t, v in rows.items()}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
