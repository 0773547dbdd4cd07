"""Regions grown from a click in a probability map, bounded to a disk around the click.

Work happens in the disk's bounding window only, so a click costs the same on a 640 px or a 4k frame.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def window(shape: tuple[int, int], y: int, x: int, radius: int) -> tuple[slice, slice]:
    return (slice(max(y - radius, 0), min(y + radius + 1, shape[0])),
            slice(max(x - radius, 0), min(x + radius + 1, shape[1])))


def disk(win: tuple[slice, slice], y: int, x: int, radius: int) -> np.ndarray:
    """Boolean disk of ``radius`` around (y, x) on the window's pixel grid."""
    yy = np.arange(win[0].start, win[0].stop)[:, None] - y
    xx = np.arange(win[1].start, win[1].stop)[None, :] - x
    return yy * yy + xx * xx <= radius * radius


def component_at(candidates: np.ndarray, y: int, x: int) -> np.ndarray:
    """The 8-connected component of ``candidates`` containing (y, x) (empty when the pixel is not a candidate)."""
    if not candidates[y, x]:
        return np.zeros_like(candidates, dtype=bool)
    labels, _ = ndimage.label(candidates, structure=np.ones((3, 3), bool))
    return labels == labels[y, x]


def distance_to(targets: np.ndarray, y: int, x: int, cap: float) -> float:
    """Euclidean distance from (y, x) to the nearest True pixel of ``targets``; ``cap`` when there is none."""
    rows, cols = np.nonzero(targets)
    if rows.size == 0:
        return float(cap)
    return min(float(np.sqrt(((rows - y) ** 2 + (cols - x) ** 2).min())), float(cap))
