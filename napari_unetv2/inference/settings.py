"""How a mask was made, as one line of text: ``resize, threshold 0.5`` or ``tile 256, threshold 0.2, flip TTA``.

One wording for summary.csv's ``settings`` column (a batch run's) and a correction's ``model_settings`` (the mask a
widget showed), so that a reviewer re-runs either with the same options (``--tile``, ``--threshold``, ``--tta``)."""
from __future__ import annotations

from typing import Optional


def settings_text(mode: str, tile_size: Optional[int], threshold: float, tta: bool) -> str:
    mode_text = f"tile {tile_size}" if mode == "tile" else mode
    return f"{mode_text}, threshold {threshold:g}" + (", flip TTA" if tta else "")


def settings_of_prediction(prediction) -> str:
    """The settings a :class:`Prediction` was made with ("" when it does not say)."""
    info, mode = getattr(prediction, "info", None), getattr(prediction, "mode", None)
    if not isinstance(info, dict) or mode not in ("resize", "tile") or not isinstance(info.get("threshold"), (int, float)):
        return ""
    return settings_text(mode, info.get("tile_size"), float(info["threshold"]), bool(info.get("tta")))
