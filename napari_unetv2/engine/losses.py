"""Losses: the structure loss (weighted BCE + weighted IoU) and CE + soft Dice, with deep supervision."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def boundary_weights(mask: torch.Tensor) -> torch.Tensor:
    """w = 1 + 5 |avgpool31(m) - m|: pixels near the object boundary weigh up to 6x."""
    return 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A true weighted BCE plus weighted IoU, per image, averaged over the batch.

    (The reference code's BCE ends up unweighted through a legacy ``reduce`` argument; the intent,
    weighted BCE, is what is computed here.)
    """
    weights = boundary_weights(mask)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    weighted_bce = (weights * bce).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weights).sum(dim=(2, 3))
    union = ((prob + mask) * weights).sum(dim=(2, 3))
    weighted_iou = 1 - (inter + 1) / (union - inter + 1)
    return (weighted_bce + weighted_iou).mean()


def ce_dice_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float = 1.0, smooth: float = 1e-5) -> torch.Tensor:
    """Cross-entropy + ``dice_weight`` x soft Dice (batch Dice, nnU-Net style). Binary: sigmoid; else softmax."""
    if logits.shape[1] == 1:
        ce = F.binary_cross_entropy_with_logits(logits, mask)
        prob, target = torch.sigmoid(logits), mask
    else:
        labels = mask[:, 0].long()
        ce = F.cross_entropy(logits, labels)
        prob = torch.softmax(logits, dim=1)
        target = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    inter = (prob * target).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + dice_weight * (1 - dice.mean())


def deep_supervision_loss(
    all_logits: Sequence[torch.Tensor], mask: torch.Tensor, weights: Sequence[float], loss: str = "structure",
    dice_weight: float = 1.0,
) -> torch.Tensor:
    """Weighted sum over heads (full resolution first); each head is upsampled to the mask's size.

    Weights are normalised to sum to 1; heads with weight 0 are skipped.
    """
    total_weight = float(sum(weights))
    result = None
    for logits, weight in zip(all_logits, weights):
        if weight == 0:
            continue
        if logits.shape[-2:] != mask.shape[-2:]:
            logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits.float()
        term = structure_loss(logits, mask) if loss == "structure" else ce_dice_loss(logits, mask, dice_weight)
        term = term * (weight / total_weight)
        result = term if result is None else result + term
    return result
