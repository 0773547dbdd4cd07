"""Image/mask pairs from folders in the common layouts, with a report of what was skipped and why.

No torch here: the correction set and the CLI pair files without loading the training stack.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..files import IMAGE_SUFFIXES, UnreadableImageError, read_header

MASK_SUFFIX = re.compile(r"(_mask|_segmentation|_lesion|_Segmentation|_seg|_gt)$", re.IGNORECASE)
MASK_FOLDERS = {"masks", "mask", "labels", "ground_truth", "groundtruth", "gt", "annotations"}


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path

    @property
    def stem(self) -> str:
        return self.image.stem


def pairs_fingerprint(pairs: Sequence[Pair]) -> dict:
    """How many pairs and a hash of their images' file names (not their folder): what a resumed run compares to know
    it trains on the data it started with, wherever the folder is mounted now."""
    names = "\n".join(sorted(pair.image.name for pair in pairs))
    return {"n": len(pairs), "names": hashlib.blake2b(names.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()}


@dataclass
class PairReport:
    """Usable pairs and every file that was skipped, with the reason."""

    root: Path
    pairs: list[Pair] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.root}: {len(self.pairs)} usable pairs, {len(self.skipped)} files skipped"]
        lines += [f"  skipped {path}: {why}" for path, why in self.skipped[:50]]
        if len(self.skipped) > 50:
            lines.append(f"  ... and {len(self.skipped) - 50} more")
        return "\n".join(lines)


class NoUsablePairsError(ValueError):
    pass


def _is_mask(path: Path, root: Path) -> tuple[bool, str]:
    rel_parts = {p.lower() for p in path.relative_to(root).parts[:-1]}
    match = MASK_SUFFIX.search(path.stem)
    if match:
        return True, path.stem[: match.start()]
    return bool(rel_parts & MASK_FOLDERS), path.stem


def _image_size(path: Path) -> Optional[tuple[int, int]]:
    """(height, width) in displayed orientation from the file header, or None if unreadable."""
    try:
        return read_header(path)
    except (UnreadableImageError, OSError):
        return None


def is_correction_set(root: Path) -> bool:
    """A folder laid out as a correction set (``corrections/correction_set.py``): images/, masks/ and provenance/."""
    return all((Path(root) / name).is_dir() for name in ("images", "masks", "provenance"))


def find_pairs(root: str | Path, check_sizes: bool = True) -> PairReport:
    """Pair images with masks under ``root``.

    Layouts: ``images/`` + ``masks/`` with equal stems (Kvasir, PraNet, this project's data), and masks
    named ``<stem>_mask`` / ``_segmentation`` / ``_lesion`` anywhere below (PolypGen, ISIC, PH2).
    Raises :class:`NoUsablePairsError` (saying why) when nothing usable is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise NoUsablePairsError(f"{root} is not a folder.")
    report = PairReport(root)
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    # a correction set's own records (provenance/*.json, the index) are not skipped data: they were listed as such, a
    # line each, when a correction set was evaluated (trial of session 29)
    records = root / "provenance" if is_correction_set(root) else None
    # ... nor are its history (corrections replaced or removed: corrections/history.py) and the model masks its scores
    # were taken against (tested/: listed as "duplicate name" files skipped, read as corrections dropped: trial of
    # session 41); neither is data to train or score on
    records_only = [root / "history", root / "tested"] if records is not None else []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and not any(folder in p.parents for folder in records_only)):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            if not (records is not None and path.parent == records and path.suffix.lower() in (".json", ".claim")):
                report.skipped.append((path, "not an image file"))
            continue
        is_mask, key = _is_mask(path, root)
        table = masks if is_mask else images
        if key in table:
            report.skipped.append((path, f"duplicate name {key!r} (kept {table[key]})"))
            continue
        table[key] = path
    for key, image in images.items():
        mask = masks.get(key)
        if mask is None:
            report.skipped.append((image, "no mask found"))
            continue
        if check_sizes:
            size_i, size_m = _image_size(image), _image_size(mask)
            if size_i is None or size_m is None:
                report.skipped.append((image if size_i is None else mask, "unreadable image file"))
                continue
            if size_i != size_m:
                report.skipped.append((image, f"image {size_i} and mask {size_m} differ in size"))
                continue
        report.pairs.append(Pair(image, mask))
    report.skipped += [(m, "no image found for this mask") for k, m in masks.items() if k not in images]
    if not report.pairs:
        reasons = sorted({why for _, why in report.skipped}) or ["the folder holds no image files"]
        raise NoUsablePairsError(f"No usable image/mask pair in {root}: " + "; ".join(reasons) + ".")
    return report


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Deterministic train/validation split by seed (independent of file-system order)."""
    ordered = sorted(pairs, key=lambda p: str(p.image))
    rng = random.Random(seed)
    rng.shuffle(ordered)
    n_val = int(round(len(ordered) * val_fraction))
    if val_fraction > 0 and len(ordered) > 1:
        n_val = max(1, n_val)
    return ordered[n_val:], ordered[:n_val]
