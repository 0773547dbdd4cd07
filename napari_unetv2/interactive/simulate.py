"""The simulated user of the interactive-segmentation benchmarks (as in RITM, SimpleClick, SAM's NoC).

Each click goes to the largest error region (by area), at its pixel farthest from the region's
boundary: a positive click in a false-negative region, a negative one in a false-positive region.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage


@dataclass
class SimulatedClick:
    y: int
    x: int
    positive: bool


def next_click(mask: np.ndarray, truth: np.ndarray) -> Optional[SimulatedClick]:
    """Where the simulated user clicks next; None when the mask equals the truth."""
    mask, truth = np.asarray(mask) > 0, np.asarray(truth) > 0
    best = None  # (area, labels, label, positive)
    for positive, errors in ((True, truth & ~mask), (False, mask & ~truth)):
        labels, count = ndimage.label(errors)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())[1:]
        label = int(areas.argmax()) + 1
        if best is None or areas[label - 1] > best[0]:
            best = (areas[label - 1], labels, label, positive)
    if best is None:
        return None
    _, labels, label, positive = best
    region = np.pad(labels == label, 1)  # the image border counts as the region's boundary too
    distance = ndimage.distance_transform_edt(region)[1:-1, 1:-1]
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    return SimulatedClick(int(y), int(x), positive)


def clicks_to_reach(ious: list[float], target: float, cap: int = 20) -> int:
    """NoC: the first number of clicks whose IoU reaches ``target`` (ious[k] = IoU after k clicks); ``cap`` if never."""
    for k, value in enumerate(ious[: cap + 1]):
        if value >= target:
            return k
    return cap
