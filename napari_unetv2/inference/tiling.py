"""Sliding-window geometry and Gaussian blending weights (as in nnU-Net's predictor)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets covering [0, length) with windows of ``tile`` overlapping by about ``overlap``."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / step) + 1
    # Spread the windows evenly so the last one ends exactly at the border.
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_boxes(height: int, width: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes; a side shorter than the tile gets one window of its own length."""
    th, tw = min(tile, height), min(tile, width)
    return [
        (y, y + th, x, x + tw)
        for y in tile_starts(height, th, overlap)
        for x in tile_starts(width, tw, overlap)
    ]


@lru_cache(maxsize=8)
def gaussian_weight(height: int, width: int, sigma_scale: float = 0.125) -> np.ndarray:
    """Centre-heavy weights (sigma = side / 8) so tile borders, where context is poor, count less."""
    ys = np.arange(height) - (height - 1) / 2
    xs = np.arange(width) - (width - 1) / 2
    gy = np.exp(-(ys**2) / (2 * (sigma_scale * height) ** 2))
    gx = np.exp(-(xs**2) / (2 * (sigma_scale * width) ** 2))
    weight = np.outer(gy, gx).astype(np.float32)
    weight /= weight.max()
    return np.maximum(weight, 1e-3)  # never zero: every pixel must receive some weight
