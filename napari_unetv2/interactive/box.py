"""A box: the model run again on the boxed crop at its own input size, so a small lesion gets many more pixels.

The crop fed to the model carries context around the box (half the box's size on each side: the
network was trained on whole frames, and a lesion filling its entire input looks like nothing it has
seen). Inside the box the zoomed pass is averaged with the whole-frame probability and stretched to
[0, 1] (the paper's per-image min-max step): the user has said an object is in the box, so its most
lesion-like part is kept even where both passes were unsure. Only the box's own pixels come back.
"""
from __future__ import annotations

import numpy as np

MIN_BOX_SIDE = 8  # the predictor's smallest image side


def clip_box(shape: tuple[int, int], top: float, left: float, bottom: float, right: float) -> tuple[int, int, int, int]:
    """Integer (top, left, bottom, right) inside the image, corners in any order; ValueError when too small."""
    t, b = sorted((int(round(top)), int(round(bottom))))
    lft, r = sorted((int(round(left)), int(round(right))))
    t, lft = max(t, 0), max(lft, 0)
    b, r = min(b, shape[0]), min(r, shape[1])
    if b - t < MIN_BOX_SIDE or r - lft < MIN_BOX_SIDE:
        raise ValueError(f"The box must cover at least {MIN_BOX_SIDE}x{MIN_BOX_SIDE} pixels of the image "
                         f"(got {max(b - t, 0)}x{max(r - lft, 0)} inside it).")
    return t, lft, b, r


def box_probability(predictor, image: np.ndarray, box: tuple[int, int, int, int], frame_probability: np.ndarray,
                    rgb=None, context: float = 0.5) -> np.ndarray:
    """Probability inside ``box`` (top, left, bottom, right): one model pass on the crop plus context, averaged
    with ``frame_probability`` (the whole frame's map) there, min-max stretched.

    ``predictor`` is a :class:`napari_unetv2.inference.Predictor`; its default mode applies (in
    ``resize`` mode the crop is scaled to the model's input size).
    """
    top, left, bottom, right = box
    height, width = np.shape(image)[:2]
    pad_y, pad_x = int(round(context * (bottom - top))), int(round(context * (right - left)))
    y0, x0 = max(top - pad_y, 0), max(left - pad_x, 0)
    y1, x1 = min(bottom + pad_y, height), min(right + pad_x, width)
    crop = np.asarray(image)[y0:y1, x0:x1]
    zoomed = predictor.predict(crop, rgb=rgb).probability[top - y0:bottom - y0, left - x0:right - x0]
    combined = (zoomed + np.asarray(frame_probability, np.float32)[top:bottom, left:right]) / 2
    low, high = float(combined.min()), float(combined.max())
    return ((combined - low) / (high - low + 1e-8)).astype(np.float32)
