"""Which entries of a correction set hold a given image: by its pixels (their hash, then the pixels themselves), or for
entries written before hashes were kept by the names one image goes by. One rule for Accept (replacing an image's
correction), the session (following it) and the history (a restore never puts a second correction of an image back)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..files import IMAGE_SUFFIXES, UnreadableImageError, read_image, read_mask
from .records import Correction, image_hash


def source_key(source: str) -> str:
    """One key for the names one image goes by: the folder session stores ``frame.png``, *Correct & retrain* the
    layer ``frame``, and napari calls a second copy ``frame [1]`` (two masks of one image were kept and trained
    together). Only entries with the same key have their pixels compared (reading every image would be slow)."""
    return re.sub(r" \[\d+\]$", "", Path(source).stem if Path(source).suffix.lower() in IMAGE_SUFFIXES else source)


def same_image_entries(corrections, image: np.ndarray, source: str,
                       pixels: Optional[str] = None) -> list[tuple[Correction, np.ndarray]]:
    """Entries of this image in ``corrections`` (a CorrectionSet, not imported: the set imports its history, which
    imports this): the same pixel hash, or for entries written without one the same source key, then exactly these
    pixels; with their stored masks. ``pixels``: the image's hash, when known already."""
    found, key, pixels = [], source_key(source), pixels or image_hash(image)
    for entry in corrections.entries():
        candidate = entry.image_hash == pixels if entry.image_hash else source_key(entry.source) == key
        if not candidate or (entry.height, entry.width) != image.shape[:2]:
            continue
        try:
            stored = read_image(corrections.root / entry.image_file)
            if stored.shape == image.shape and np.array_equal(stored, image):
                found.append((entry, read_mask(corrections.root / entry.mask_file)))
        except (UnreadableImageError, FileNotFoundError):
            continue  # removed meanwhile, or damaged: not the same image
    return found
