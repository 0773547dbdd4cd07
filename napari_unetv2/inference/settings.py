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


def settings_from_text(text: object) -> dict:
    """The keyword arguments of ``Predictor.predict`` that :func:`settings_text` wrote as ``text`` (``mode``,
    ``tile_size``, ``threshold``, ``tta``); {} for text it did not write."""
    if not isinstance(text, str):
        return {}
    parts = [part.strip() for part in text.split(",")]
    found: dict = {}
    mode = parts[0].split() if parts and parts[0] else []
    if mode == ["resize"]:
        found["mode"] = "resize"
    elif len(mode) == 2 and mode[0] == "tile" and mode[1].isascii() and mode[1].isdigit() and 64 <= int(mode[1]) <= 4096:
        found.update(mode="tile", tile_size=int(mode[1]))
    else:
        return {}
    for part in parts[1:]:
        if part.startswith("threshold "):
            try:
                threshold = float(part.removeprefix("threshold "))
            except ValueError:
                return {}
            if not 0.0 < threshold < 1.0:
                return {}
            found["threshold"] = threshold
        elif part == "flip TTA":
            found["tta"] = True
        else:
            return {}
    if "threshold" not in found:
        return {}
    found.setdefault("tta", False)
    return found
