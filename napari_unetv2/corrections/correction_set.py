"""The correction set: (image, corrected mask, provenance) triples on disk, each written at once.

Layout: ``images/<id>.png|.tif``, ``masks/<id>.png``, ``provenance/<id>.json``. The JSON is written last
(and removed first), so an entry exists exactly when its provenance file does: a crash mid-write
leaves at most an orphan image that is never listed, never a half entry.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..engine.pairs import Pair
from ..files import atomic_write_text, write_png_atomic, write_tiff_atomic


@dataclass
class Correction:
    id: str
    image_file: str
    mask_file: str
    source: str  # the napari layer (or file) the image came from
    model_version: str
    created: str
    pixels_changed: int
    foreground_pixels: int
    seconds_spent: Optional[float]
    height: int
    width: int
    clicks: Optional[int] = None  # click corrections in effect when accepted (None: not made with clicks)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "image"


class CorrectionSet:
    def __init__(self, root: Path):
        self.root = Path(root)
        for sub in ("images", "masks", "provenance"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def add(
        self,
        image: np.ndarray,
        corrected_mask: np.ndarray,
        source: str,
        model_version: str = "",
        predicted_mask: Optional[np.ndarray] = None,
        seconds_spent: Optional[float] = None,
        clicks: Optional[int] = None,
    ) -> Correction:
        """Store one corrected pair; refuses (ValueError) shapes that do not match or are not 2-D."""
        image = np.asarray(image)
        mask = np.asarray(corrected_mask)
        if mask.ndim != 2:
            raise ValueError(f"A correction is one 2-D mask; got shape {mask.shape} (pick one slice of a stack).")
        if image.shape[:2] != mask.shape or image.ndim not in (2, 3):
            raise ValueError(f"Image {image.shape} and mask {mask.shape} do not match.")
        binary = (mask > 0).astype(np.uint8)
        if predicted_mask is not None and np.shape(predicted_mask) == mask.shape:
            changed = int(np.count_nonzero(binary != (np.asarray(predicted_mask) > 0)))
        else:
            changed = int(binary.sum())
        stamp = time.strftime("%Y%m%d-%H%M%S")
        entry_id = f"{stamp}-{_safe(source)}"
        n = 2
        while (self.root / "provenance" / f"{entry_id}.json").exists():
            entry_id = f"{stamp}-{_safe(source)}-{n}"
            n += 1
        if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[-1] in (3, 4)):
            image_file = f"images/{entry_id}.png"
            write_png_atomic(self.root / image_file, image)
        else:
            image_file = f"images/{entry_id}.tif"
            write_tiff_atomic(self.root / image_file, image)
        mask_file = f"masks/{entry_id}.png"
        write_png_atomic(self.root / mask_file, binary * 255)
        entry = Correction(entry_id, image_file, mask_file, source, model_version, time.strftime("%Y-%m-%dT%H:%M:%S"),
                           changed, int(binary.sum()), seconds_spent, mask.shape[0], mask.shape[1], clicks)
        atomic_write_text(self.root / "provenance" / f"{entry_id}.json", json.dumps(asdict(entry), indent=1) + "\n")
        return entry

    def entries(self) -> list[Correction]:
        found = []
        for path in sorted((self.root / "provenance").glob("*.json")):
            try:
                entry = Correction(**json.loads(path.read_text()))
            except (json.JSONDecodeError, TypeError):
                continue  # never half-written (atomic), but a hand-edited file should not break the list
            if (self.root / entry.image_file).is_file() and (self.root / entry.mask_file).is_file():
                found.append(entry)
        return found

    def remove(self, entry_id: str) -> None:
        provenance = self.root / "provenance" / f"{entry_id}.json"
        if not provenance.is_file():
            raise ValueError(f"No correction {entry_id!r} in {self.root}.")
        entry = Correction(**json.loads(provenance.read_text()))
        provenance.unlink()  # first: from here on the entry no longer exists
        for rel in (entry.image_file, entry.mask_file):
            (self.root / rel).unlink(missing_ok=True)

    def pairs(self) -> list[Pair]:
        return [Pair(self.root / e.image_file, self.root / e.mask_file) for e in self.entries()]

    def __len__(self) -> int:
        return len(self.entries())
