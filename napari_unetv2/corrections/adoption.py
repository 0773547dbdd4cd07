"""Whether a freshly fine-tuned version replaces the one in use: yes by default.

The new version trained on every correction, including those of the images the clinician just
fixed, so it is the better guess unless there is evidence against it. Evidence means a paired
comparison on at least :data:`~napari_unetv2.engine.intervals.MIN_EVIDENCE` images neither version
trained on, whose 95% interval of the Dice difference lies entirely below zero. A score on 1 (or a
handful of) images decides nothing in either direction, and the reason always says what it rests on,
so a decision is never silent. Qt-free: the widget shows :attr:`AdoptionDecision.reason`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..engine.intervals import MIN_EVIDENCE, mean_interval


@dataclass(frozen=True)
class AdoptionDecision:
    adopt: bool
    reason: str


def should_adopt(dice_in_use: Sequence[float], dice_new: Sequence[float], min_images: int = MIN_EVIDENCE) -> AdoptionDecision:
    """Decide from per-image Dice of the version in use and the new version on the same images (in the
    same order) that neither trained on; empty sequences when there is no such set."""
    if len(dice_in_use) != len(dice_new):
        raise ValueError(f"Paired scores needed: {len(dice_in_use)} images for the version in use, {len(dice_new)} for the new.")
    n = len(dice_new)
    if n == 0:
        return AdoptionDecision(True, "new version in use (trained on every correction of its line; no held-out images to compare on)")
    change = mean_interval([b - a for a, b in zip(dice_in_use, dice_new)], bounds=(-1.0, 1.0))
    if n < min_images:
        return AdoptionDecision(True, f"new version in use: a comparison on {n} image{'s' if n > 1 else ''} "
                                      f"(Dice change {change.mean:+.3f}) is no evidence either way (needs {min_images}+)")
    interval = f"Dice change {change.mean:+.3f} [{change.low:+.3f}, {change.high:+.3f}] on {n} held-out images"
    if change.high < 0:
        return AdoptionDecision(False, f"the version in use stays: the new one is worse ({interval}); "
                                       "'Use this version' switches anyway")
    return AdoptionDecision(True, f"new version in use ({interval})")
