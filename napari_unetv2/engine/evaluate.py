"""Score a model on image/mask pairs with the paper's metrics, per image and per domain group."""
from __future__ import annotations

import math
import re
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from ..errors import PER_FILE_ERRORS, one_line
from ..inference import Predictor
from .data import Pair, load_pair_arrays
from .metrics import ImageScore, MetricAccumulator, binarize

# File-name groups of PolypGen (see ../shared/data/README.md); first match wins.
DOMAIN_PATTERNS = [
    ("C3", re.compile(r"^C3_EndoCV2021_")),
    ("C5", re.compile(r"_C5_")),
    ("C6", re.compile(r"_C6_")),
    ("EndoCV2021_0", re.compile(r"^EndoCV2021_0")),
    ("OLCV1", re.compile(r"OLCV1_100")),
    ("endocv2021-seq", re.compile(r"_endocv2021_(positive|negative)_")),
]


def domain_of(name: str) -> str:
    for label, pattern in DOMAIN_PATTERNS:
        if pattern.search(name):
            return label
    return "other"


def iter_scores(
    predictor: Predictor, pairs: Iterable[Pair], accumulator: MetricAccumulator, threshold: Optional[float] = None,
    minmax: bool = False, with_hd95: bool = True, failures: Optional[list[dict]] = None, **predict_kwargs,
) -> Iterator[tuple[Pair, ImageScore, np.ndarray]]:
    """Predict each pair at its own resolution (the paper: resize in, resize the probability back).

    ``failures``: when given, a pair that cannot be read or segmented (truncated file, NaN pixels, sizes
    that differ) is appended to it as {"file", "reason"} and left out, instead of stopping the run."""
    threshold = predictor.config.threshold if threshold is None else threshold
    for pair in pairs:
        try:
            image, gt = load_pair_arrays(pair)
            prediction = predictor.predict(image, threshold=threshold, rgb=True, **predict_kwargs)
        except PER_FILE_ERRORS as err:
            if failures is None:
                raise
            failures.append({"file": pair.image.name, "reason": one_line(err)})
            continue
        pred = binarize(prediction.probability, threshold, minmax=minmax)
        yield pair, accumulator.add(pair.stem, pred, gt, with_hd95=with_hd95), prediction.probability


def evaluate_pairs(
    predictor: Predictor, pairs: list[Pair], threshold: Optional[float] = None, minmax: bool = False,
    with_hd95: bool = True, progress: Optional[Callable[[int, int], None]] = None, **predict_kwargs,
) -> dict:
    """{"dice", "iou", "mae", "hd95", "n", ..., "pooled": {...}, "domains": {group: summary}, "images": [...],
    "failed": [{"file", "reason"}, ...]}: a pair that cannot be scored is listed, not fatal."""
    acc = MetricAccumulator()
    failures: list[dict] = []
    scored = iter_scores(predictor, pairs, acc, threshold, minmax, with_hd95, failures=failures, **predict_kwargs)
    for _ in scored:
        if progress is not None:
            progress(len(acc.scores) + len(failures), len(pairs))
    if pairs and not acc.scores:
        raise ValueError(f"No pair could be scored ({len(failures)} failed), e.g. {failures[0]['file']}: "
                         f"{failures[0]['reason']}")
    result = acc.summary()
    result["failed"] = failures
    result["pooled"] = acc.pooled()
    groups: dict[str, list[ImageScore]] = {}
    for score in acc.scores:
        groups.setdefault(domain_of(score.name), []).append(score)
    result["domains"] = {name: acc.summary(scores) for name, scores in sorted(groups.items())}
    result["images"] = [vars(s) for s in acc.scores]
    return result


def format_table(result: dict) -> str:
    rows = [("all", result)] + list(result.get("domains", {}).items())
    # HD95 is undefined where exactly one of prediction and truth is empty (a missed polyp): such images are left out
    # of its mean, and the table said so nowhere (a group of three with two missed read "HD95 0.00"; trial of session
    # 28). The count left out is beside it.
    lines = [f"{'group':<16}{'n':>5}{'Dice':>9}{'IoU':>9}{'MAE':>9}{'HD95 px':>10}  HD95 left out"]
    for name, r in rows:
        hd = r.get("hd95", math.nan)
        hd = math.nan if hd is None else hd
        undefined = r.get("hd95_undefined", 0) or 0
        out = f"  {undefined} (one mask empty)" if undefined else ""
        lines.append(f"{name:<16}{r['n']:>5}{r['dice']:>9.4f}{r['iou']:>9.4f}{r['mae']:>9.4f}{hd:>10.2f}{out}")
    pooled = result.get("pooled")
    if pooled:
        lines.append(f"pooled pixels (ISIC protocol): DSC {pooled['dsc']:.4f}, IoU {pooled['iou']:.4f}")
    failed = result.get("failed") or []
    if failed:
        lines.append(f"{len(failed)} pairs could not be scored (left out of the figures above):")
        lines += [f"  {f['file']}: {f['reason']}" for f in failed]
    return "\n".join(lines)
