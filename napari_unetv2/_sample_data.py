"""napari sample data: real images with their ground truth (see sample_data/ATTRIBUTION.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import read_image, read_mask


def sample_data_dir() -> Path:
    """The shipped samples: inside the package in a wheel, at the repository root in a checkout."""
    packaged = Path(__file__).parent / "sample_data"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "sample_data"


SAMPLES = {
    "polyp": "polypgen_10_endocv2021_positive_1006",
    "kvasir": "kvasir_cju0qkwl35piu0993l0dewei2",
    "skin": "ph2_IMD002",
}


def load_sample(key: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(RGB image, 0/1 ground-truth mask, name) of one shipped sample."""
    stem = SAMPLES[key]
    root = sample_data_dir()
    image = read_image(root / "images" / f"{stem}.jpg")
    mask = read_mask(root / "masks" / f"{stem}.png")
    return image, mask, stem


def _layers(key: str) -> list:
    image, mask, stem = load_sample(key)
    return [
        (image, {"name": stem, "rgb": True}, "image"),
        # a reference to compare with, not a correction: the retrain widget does not follow it when it is selected
        (mask.astype(np.uint8), {"name": f"{stem} ground truth", "opacity": 0.6, "visible": False,
                                 "colormap": {None: "transparent", 0: "transparent", 1: "yellow"},
                                 "metadata": {"unetv2_role": "reference"}}, "labels"),
    ]


def polyp_sample() -> list:
    return _layers("polyp")


def kvasir_sample() -> list:
    return _layers("kvasir")


def skin_sample() -> list:
    return _layers("skin")
