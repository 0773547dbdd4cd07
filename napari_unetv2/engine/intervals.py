"""A 95% interval for the mean of per-image scores: the one statistic behind every score we show.

Student-t interval, clipped to the score's range (Dice and IoU lie in [0, 1]; a difference of two in
[-1, 1]). Chosen over a bootstrap because it is honest on tiny samples: with 2 images a percentile
bootstrap returns roughly [min, max], which looks precise; the t-interval is as wide as two images
deserve (t = 12.7 at 1 degree of freedom). With 1 image there is no interval at all.
Torch-free (the correction set and the CLI summary use it without loading the training stack).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Fewest images a comparison or a held-out score must rest on to count as evidence: with the per-image
# Dice sd measured on PH2 after a round (0.17), 10 images give a 95% interval of +-0.12, 5 images +-0.22.
MIN_EVIDENCE = 10


@dataclass(frozen=True)
class MeanInterval:
    n: int
    mean: float
    low: Optional[float]  # None when n < 2: one image is no evidence of a spread
    high: Optional[float]

    def describe(self, digits: int = 3, unit: str = "image") -> str:
        """``0.812 [0.741, 0.873] on 12 images``; ``0.977 on 1 image: no interval``; ``1.000 on 2 images, all the same:
        no interval`` (trial of session 27: "[1.000, 1.000] on 2 images" looked precise); ``no images``."""
        if self.n == 0:
            return f"no {unit}s"
        if self.low is None:
            return f"{self.mean:.{digits}f} on 1 {unit}: no interval"
        if self.low == self.high:  # every score the same: the t-interval has zero width, which is no precision
            return f"{self.mean:.{digits}f} on {self.n} {unit}s, all the same: no interval"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] on {self.n} {unit}s"

    @classmethod
    def from_summary(cls, summary: dict, metric: str = "dice") -> "MeanInterval":
        """Back from a score summary's ``n``, ``<metric>`` and ``<metric>_interval`` (``finetune.score_summary``)."""
        low, high = summary[f"{metric}_interval"]
        return cls(summary["n"], summary[metric], low, high)

    def as_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "low": self.low, "high": self.high, "confidence": CONFIDENCE,
                "method": "t-interval"}


def mean_interval(values: Sequence[float], bounds: tuple[float, float] = (0.0, 1.0)) -> MeanInterval:
    """Mean of ``values`` with its 95% Student-t interval (clipped to ``bounds``)."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return MeanInterval(0, math.nan, None, None)
    mean = float(data.mean())
    if data.size < 2:
        return MeanInterval(1, mean, None, None)
    if np.all(data == data[0]):  # every score the same: exactly (the mean's rounding gave [0.700, 0.700] a width)
        return MeanInterval(int(data.size), float(data[0]), float(data[0]), float(data[0]))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return MeanInterval(int(data.size), mean, max(bounds[0], mean - half), min(bounds[1], mean + half))
