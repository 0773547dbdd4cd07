"""napari's *File → Save Selected Layer(s)...* of a mask as ``.png``, with a record of how it was made beside it.

napari has no PNG writer for a Labels layer: a mask saved as ``IMG_0001_mask.png`` wrote nothing ("No data
written!"), and one saved as ``.tif`` carried no model or settings (clinician trial of session 42). This writer keeps
the project's mask convention (0/255, as ``unetv2 predict`` writes; a layer with more labels than 0/1 keeps its
values) and writes ``<name>.json`` beside the PNG: the model version and settings that made the mask, the pixels
painted since, who saved it and when. napari's save dialog asks before replacing the PNG; a JSON of that name that
is not such a record (someone's own file) is never replaced: the save is refused and nothing is written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .annotator import current_annotator
from .files import atomic_write_text, read_json, write_png_atomic
from .files.times import now_stamp

RECORD_KIND = "napari-unetv2 mask"  # the sidecar's "kind": what marks a JSON as this writer's own


class MaskNotWritten(RuntimeError):
    """Why a mask was not saved (nothing was written). Not a ValueError: napari takes a writer's ValueError for "no
    writer found" and says only "No data written! A plugin could not be found"."""


def record_path(mask_path: Path) -> Path:
    return Path(mask_path).with_suffix(".json")


def write_mask_png(path: str, data, meta: dict) -> list[str]:
    """napari's single-layer writer (npe2): the Labels ``data`` to ``path`` and its record beside; returns both."""
    mask_path = Path(path)
    if mask_path.suffix.lower() != ".png":
        mask_path = mask_path.with_suffix(".png")
    labels = np.asarray(data)
    if labels.ndim != 2:
        raise MaskNotWritten(f"{meta.get('name', 'This layer')} has {labels.ndim} dimensions: a PNG holds one 2-D mask "
                             "(save a stack as .tif, napari's own labels writer). Nothing was written.")
    record = record_path(mask_path)
    if record.exists() and not _is_our_record(record):
        raise MaskNotWritten(f"{record} exists and is not a mask record of this plugin: it is not replaced; save the "
                             "mask under another name. Nothing was written.")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise MaskNotWritten(f"{meta.get('name', 'This layer')} holds labels outside 0-65535: a PNG cannot hold "
                             "them (save as .tif). Nothing was written.")
    binary = labels.max(initial=0) <= 1
    pixels = (labels > 0).astype(np.uint8) * 255 if binary else labels.astype(
        np.uint8 if labels.max(initial=0) <= 255 else np.uint16)
    write_png_atomic(mask_path, pixels, run_length=True)
    atomic_write_text(record, json.dumps(describe(labels, meta, mask_path.name, binary), indent=1) + "\n")
    return [str(mask_path), str(record)]


def describe(labels: np.ndarray, meta: dict, file_name: str, binary: bool) -> dict:
    """What the record says of a mask layer (from its metadata: the model that made its starting point and how)."""
    metadata = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
    started = metadata.get("unetv2_predicted_mask")
    painted = (int(np.count_nonzero((np.asarray(started) > 0) != (labels > 0)))
               if isinstance(started, np.ndarray) and started.shape == labels.shape else None)
    version = metadata.get("model_version") if isinstance(metadata.get("model_version"), str) else ""
    settings = metadata.get("model_settings") if isinstance(metadata.get("model_settings"), str) else ""
    return {"kind": RECORD_KIND, "mask_file": file_name, "layer": str(meta.get("name", "")),
            "values": "0/255 (0 background, 255 mask)" if binary else "the layer's labels",
            "height": int(labels.shape[0]), "width": int(labels.shape[1]),
            "foreground_pixels": int(np.count_nonzero(labels)), "model_version": version or None,
            "model_settings": settings or None,
            # against the mask the model showed (None: no model's mask to compare, e.g. drawn by hand)
            "pixels_painted": painted, "saved_at": now_stamp(), "saved_by": current_annotator()}


def _is_our_record(path: Path) -> bool:
    try:
        found = read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("kind") == RECORD_KIND
