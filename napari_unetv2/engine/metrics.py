"""Segmentation metrics as the paper computes them.

Per image (polyp protocol): prediction = probability >= threshold (optionally after per-image min-max
normalisation, the authors' step, which forces a detection into every frame);
Dice = (2I + 1e-5) / (|G| + |P| + 1e-5), IoU = (I + 1e-5) / (|G| + |P| - I + 1e-5),
MAE = mean |G - P| over pixels of the binary maps; each averaged over the images of a set.

Empty-mask convention: the 1e-5 smoothing makes a frame with an empty ground truth and an empty
prediction score Dice = IoU = 1, and one with an empty ground truth but any predicted pixel score ~0.
HD95 (pixels, symmetric 95th percentile of surface distances): 0 when both are empty, undefined (NaN,
left out of the mean and counted separately) when exactly one is empty.

Pooled (ISIC protocol): one confusion matrix over all pixels of the set: DSC = 2TP/(2TP+FP+FN),
IoU = TP/(TP+FP+FN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

SMOOTH = 1e-5


def binarize(probability: np.ndarray, threshold: float = 0.5, minmax: bool = False) -> np.ndarray:
    p = probability.astype(np.float64)
    if minmax:
        p = (p - p.min()) / (p.max() - p.min() + 1e-8)
    return p >= threshold


def dice_iou_mae(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    pred, gt = pred.astype(bool), gt.astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"Prediction {pred.shape} and ground truth {gt.shape} differ in shape.")
    inter = float(np.logical_and(pred, gt).sum())
    p, g = float(pred.sum()), float(gt.sum())
    dice = (2 * inter + SMOOTH) / (g + p + SMOOTH)
    iou = (inter + SMOOTH) / (g + p - inter + SMOOTH)
    mae = float(np.mean(pred != gt))
    return dice, iou, mae


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance in pixels (max of the two directed percentiles)."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        return math.nan
    sp, sg = _surface(pred), _surface(gt)
    dist_to_g = ndimage.distance_transform_edt(~sg)
    dist_to_p = ndimage.distance_transform_edt(~sp)
    return float(max(np.percentile(dist_to_g[sp], 95), np.percentile(dist_to_p[sg], 95)))


@dataclass
class ImageScore:
    name: str
    dice: float
    iou: float
    mae: float
    hd95: float
    gt_empty: bool


@dataclass
class MetricAccumulator:
    """Collects per-image scores and the pooled confusion matrix of a set."""

    scores: list[ImageScore] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray, with_hd95: bool = True) -> ImageScore:
        pred, gt = pred.astype(bool), gt.astype(bool)
        dice, iou, mae = dice_iou_mae(pred, gt)
        score = ImageScore(name, dice, iou, mae, hd95(pred, gt) if with_hd95 else math.nan, not gt.any())
        self.scores.append(score)
        self.tp += int(np.logical_and(pred, gt).sum())
        self.fp += int(np.logical_and(pred, ~gt).sum())
        self.fn += int(np.logical_and(~pred, gt).sum())
        return score

    def summary(self, scores: list[ImageScore] | None = None) -> dict:
        scores = self.scores if scores is None else scores
        if not scores:
            return {"n": 0}
        hd = [s.hd95 for s in scores if not math.isnan(s.hd95)]
        return {
            "dice": float(np.mean([s.dice for s in scores])),
            "iou": float(np.mean([s.iou for s in scores])),
            "mae": float(np.mean([s.mae for s in scores])),
            "hd95": float(np.mean(hd)) if hd else math.nan,
            "hd95_undefined": len(scores) - len(hd),
            "n": len(scores),
            "n_empty_gt": sum(s.gt_empty for s in scores),
        }

    def pooled(self) -> dict:
        denom_d = 2 * self.tp + self.fp + self.fn
        denom_i = self.tp + self.fp + self.fn
        return {
            "dsc": 2 * self.tp / denom_d if denom_d else 1.0,
            "iou": self.tp / denom_i if denom_i else 1.0,
        }
