"""Numbers and pictures for the model card: per-domain validation scores and a contact sheet of failures.

    .venv/bin/python training/evaluate_for_card.py --checkpoint napari_unetv2/weights/polyp_default.safetensors \
        --data ../shared/data/polypgen/val --out training/card

Writes OUT/val_metrics.json (same numbers `unetv2 evaluate` prints), OUT/contact_sheet.png (the
worst frames by Dice: image, ground truth in green, prediction in red) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def contact_sheet(items, path: Path, columns: int = 4, size: int = 256) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.transform import resize

    rows = int(np.ceil(len(items) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 3, rows * 3.2), dpi=90)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (name, image, gt, pred, dice) in zip(np.ravel(axes), items):
        h, w = image.shape[:2]
        scale = size / max(h, w)
        shape = (int(h * scale), int(w * scale))
        ax.imshow(resize(image, shape + (3,), anti_aliasing=True))
        ax.contour(resize(gt.astype(float), shape) > 0.5, levels=[0.5], colors="lime", linewidths=1.2)
        if pred.any():
            ax.contour(resize(pred.astype(float), shape) > 0.5, levels=[0.5], colors="red", linewidths=1.2)
        ax.set_title(f"{name[:22]}\nDice {dice:.2f}", fontsize=7)
    fig.suptitle("Worst validation frames (green: ground truth, red: prediction)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    from napari_unetv2.engine.data import find_pairs
    from napari_unetv2.engine.evaluate import evaluate_pairs, format_table, iter_scores
    from napari_unetv2.engine.metrics import MetricAccumulator
    from napari_unetv2.inference import Predictor

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--worst", type=int, default=12)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(args.checkpoint, device="cpu")
    pairs = find_pairs(args.data).pairs
    result = evaluate_pairs(predictor, pairs)
    result["model"] = predictor.description
    (args.out / "val_metrics.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(format_table(result))

    worst = sorted(result["images"], key=lambda s: s["dice"])[: args.worst]
    chosen = [p for p in pairs if p.stem in {s["name"] for s in worst}]
    items = []
    for pair, score, prob in iter_scores(predictor, chosen, MetricAccumulator(), with_hd95=False):
        from napari_unetv2.engine.data import load_pair_arrays

        image, gt = load_pair_arrays(pair)
        items.append((pair.stem, image, gt, prob >= predictor.config.threshold, score.dice))
    items.sort(key=lambda t: t[4])
    contact_sheet(items, args.out / "contact_sheet.png")
    print(f"wrote {args.out / 'val_metrics.json'} and {args.out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
