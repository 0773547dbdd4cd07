"""Semantics and Detail Infusion (SDI): every level is fused into every other by a Hadamard product."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def resize_to(feature: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring ``feature`` to ``size`` as the paper does: average-pool when larger, bilinear when smaller.

    Unlike the reference code, height and width are compared separately, so non-square maps work.
    """
    h, w = feature.shape[-2:]
    if (h, w) == tuple(size):
        return feature
    if h >= size[0] and w >= size[1]:
        return F.adaptive_avg_pool2d(feature, size)
    if h <= size[0] and w <= size[1]:
        return F.interpolate(feature, size=size, mode="bilinear", align_corners=True)
    # Mixed case (larger in one axis, smaller in the other): pool the larger axis, then interpolate.
    pooled = F.adaptive_avg_pool2d(feature, (min(h, size[0]), min(w, size[1])))
    return F.interpolate(pooled, size=size, mode="bilinear", align_corners=True)


class SDI(nn.Module):
    """One SDI module for one target level: a 3x3 conv per source level, then the product of all."""

    def __init__(self, channels: int, num_levels: int = 4):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1) for _ in range(num_levels)
        )

    def forward(self, features: Sequence[torch.Tensor], anchor: torch.Tensor) -> torch.Tensor:
        size = tuple(anchor.shape[-2:])
        out = None
        for conv, feature in zip(self.convs, features):
            smoothed = conv(resize_to(feature, size))
            out = smoothed if out is None else out * smoothed
        return out
