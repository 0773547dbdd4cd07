"""Painted masks kept on disk until they are stored: a mask corrected in the viewer outside a folder session (a
*Segment* result, touched up) lived only in napari's layer, and closing napari lost it without a question (stop 32's
list). The folder session keeps its own drafts (``AnnotationSession.keep_draft``); this keeps the others.

One entry per image, named by the hash of the image's pixels (the same image opened again, from wherever, finds its
edits): ``<root>/<key>.png`` the mask (0/255; a stack's, such as a clip's frames, ``<root>/<key>.tif``, one page per
frame), ``<root>/<key>.model.png`` (``.tif``) the mask it was painted from (the model's, or a file's: what its edits
are measured against, with that model's version) and ``<root>/<key>.json`` what it is (image name, shape, model
version, when). The JSON is removed first and written last, so a half-written entry is never read. Keys are checked
to be plain hashes: a name read from anywhere never leaves the folder. Qt-free; the widgets decide when to keep, find
and drop.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from ..files import file_safe, read_mask_of_shape, safe_name, write_png_atomic, write_tiff_atomic
from ..files.atomic import atomic_write_text
from ..files.times import instant, now_stamp, shown
from ..storage import default_kept_edits_dir

KEY = re.compile(r"^[0-9a-f]{32}$")  # ``image_hash``'s hex digest
ROLES = {"mask": "", "proposal": ".proposal"}  # the layer a kept mask came from -> its files' infix: an image's mask and
# its proposal, both painted on, are kept side by side (keeping only the one painted last lost the other's strokes)


@dataclasses.dataclass
class KeptEdit:
    key: str
    mask: np.ndarray  # 0/1, uint8
    model_mask: Optional[np.ndarray]  # the mask it was painted from (0/1), None when that was not kept
    about: dict  # image, shape, model_version, kept_at (ISO time), process
    written_at: float = 0.0  # its JSON's modification time (seconds since the epoch): to compare with other files

    @property
    def kept_at(self) -> str:
        return shown(self.about.get("kept_at"))  # as lines show it

    def newer_than(self, created: str) -> bool:
        """Kept after ``created`` (a correction's ISO time; both to the second, compared as instants (``files.times``),
        and an entry kept in the same second counts as later: storing a correction in this napari drops the entries
        before it)."""
        return instant(self.about.get("kept_at")) >= instant(created)

    def painted_from(self, default_mask: np.ndarray, default_version: str) -> tuple[np.ndarray, str]:
        """(the mask these edits are measured against, its model's version): the one they were painted from, of the
        model that made it; the defaults (the mask shown instead) when that was not kept."""
        if self.model_mask is not None:
            return self.model_mask, self.about.get("model_version") or "?"
        return default_mask, default_version

    def painted_with(self, default_settings: str) -> str:
        """The settings of the mask :meth:`painted_from` gives ("" when unknown: kept before they were recorded)."""
        if self.model_mask is not None:
            settings = self.about.get("model_settings")
            return settings if isinstance(settings, str) else ""
        return default_settings


class KeptEdits:
    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_kept_edits_dir()

    def _paths(self, key: str, role: str = "mask") -> tuple[Path, Path, Path]:
        if not isinstance(key, str) or not KEY.match(key):
            raise ValueError(f"not an image key: {key!r}")
        if role not in ROLES:
            raise ValueError(f"not a kept layer's role: {role!r}")
        stem = key + ROLES[role]
        return self.root / f"{stem}.png", self.root / f"{stem}.json", self.root / f"{stem}.model.png"

    def keep(self, key: str, mask: np.ndarray, about: dict, model_mask: Optional[np.ndarray] = None,
             role: str = "mask") -> None:
        """Keep ``mask`` (any non-zero label is lesion) as the edits of the image ``key``'s ``role`` layer (its mask or
        its proposal), painted from ``model_mask``, replacing an older entry."""
        png, info, model_png = self._paths(key, role)
        mask = np.asarray(mask)
        if mask.ndim not in (2, 3):
            raise ValueError(f"a kept mask is 2-D or a stack of 2-D planes, got shape {mask.shape}")
        if model_mask is not None and np.shape(model_mask) != mask.shape:
            model_mask = None  # (not the mask it was painted from)
        self.root.mkdir(parents=True, exist_ok=True)
        # Each file is replaced atomically and the JSON last; the entry stays readable all along: a key is an image's
        # pixels, so the old JSON's shape is the new mask's. (The JSON was deleted first: napari killed during the 1-3
        # s a long clip's rewrite takes lost the whole entry, earlier edits too; verification of session 39.)
        _write_mask(png, mask)
        if model_mask is not None:
            _write_mask(model_png, model_mask)
        else:
            _unlink_mask(model_png)
        record = {**about, "shape": list(mask.shape), "kept_at": now_stamp(),
                  "process": os.getpid()}
        atomic_write_text(info, json.dumps(record, indent=1, default=str))

    def find(self, key: str, shape: tuple, role: str = "mask") -> Optional[KeptEdit]:
        """The kept edits of image ``key``'s ``role`` layer when they fit its ``shape`` ((H, W), or (N, H, W) for a
        stack); None when there are none, or when they cannot be read (the image is then shown as it would be without
        them). No file is read beyond the pixels of ``shape``."""
        shape = tuple(int(n) for n in shape)
        try:
            png, info, model_png = self._paths(key, role)
            about = json.loads(info.read_text(encoding="utf-8"))
            if not isinstance(about, dict) or tuple(about.get("shape", ())) != shape:
                return None
            written_at = info.stat().st_mtime
            mask = _read_mask(png, shape)
        except (ValueError, OSError):  # (json's decode error is a ValueError)
            return None
        try:
            model_mask = _read_mask(model_png, shape)
        except (ValueError, OSError):
            model_mask = None
        if model_mask is not None and model_mask.shape != mask.shape:
            model_mask = None
        return KeptEdit(key, mask, model_mask, about, written_at) if mask.shape == tuple(shape) else None

    def holds(self, key: str, role: str = "mask") -> bool:
        """Whether the image ``key`` has an entry of ``role`` (one file check: :meth:`find` reads it)."""
        return self._paths(key, role)[1].is_file()

    def unchanged(self, kept: KeptEdit, role: str = "mask") -> bool:
        """Whether ``kept`` (found earlier) is still the image's entry: not dropped, nor written again since (its
        JSON, written last, has the same modification time: one file check)."""
        try:
            return self._paths(kept.key, role)[1].stat().st_mtime == kept.written_at
        except OSError:
            return False

    def drop(self, key: str, role: Optional[str] = None) -> None:
        """Forget the image's kept edits of its ``role`` layer, or of both (stored as a correction, undone, or deleted
        by the user)."""
        for each in ROLES if role is None else (role,):
            png, info, model_png = self._paths(key, each)
            info.unlink(missing_ok=True)  # first: without it the entry is never read
            _unlink_mask(png)
            _unlink_mask(model_png)

    def keys(self) -> list[str]:
        """The images with kept mask edits (their proposals' entries aside)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if KEY.match(p.stem))

    def listing(self) -> list[tuple[str, str, dict]]:
        """(key, role, what the entry says) of every readable entry, the oldest first (read from the JSON files only)."""
        found = []
        for info in self.root.glob("*.json") if self.root.is_dir() else ():
            key, _, infix = info.stem.partition(".")
            role = next((r for r, i in ROLES.items() if i == (f".{infix}" if infix else "")), None)
            if not KEY.match(key) or role is None:
                continue
            try:
                about = json.loads(info.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                about = None
            found.append((key, role, about if isinstance(about, dict) else {"damaged": True}))
        return sorted(found, key=lambda item: (instant(item[2].get("kept_at")), item[0], item[1]))

    def export(self, key: str, folder: Path, role: str = "mask", with_key: bool = False) -> Path:
        """Write the entry's mask (0/255 PNG) into ``folder`` as ``<image name>_mask.png`` (``_proposal.png``; with
        ``with_key``, ``<image name>-<key's first 8>_mask.png``: for images of one name): the names a folder session's
        "existing masks" finds; a stack's as a multi-page TIFF (``_mask.tif``), as *Batch folder* writes a stack's
        mask. An existing file is never replaced (FileExistsError)."""
        png, info, _ = self._paths(key, role)
        try:
            about = json.loads(info.read_text(encoding="utf-8"))
            shape = tuple(int(n) for n in about.get("shape", ())) if isinstance(about, dict) else ()
            mask = _read_mask(png, shape)
        except (ValueError, OSError, TypeError) as err:
            raise ValueError(f"kept entry {key} ({role}) cannot be read: {err}") from err
        suffix = ".tif" if mask.ndim == 3 else ".png"
        target = Path(folder) / f"{export_stem(about)}{'-' + key[:8] if with_key else ''}_{role}{suffix}"
        if target.exists():
            raise FileExistsError(f"{target} exists already; it was left as it is")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_mask_file(target, mask)
        return target


def _file_of(png: Path, ndim: int) -> Path:
    """Where a mask of ``ndim`` dimensions is kept: a 2-D one in the PNG, a stack in a multi-page TIFF beside it (one
    tall PNG of a clip's planes went past Pillow's pixel limit at 87 frames of 1080p, and was never read back: cold
    review of session 38)."""
    return png.with_suffix(".tif") if ndim == 3 else png


def _write_mask(png: Path, mask: np.ndarray) -> None:
    """``mask`` kept at ``_file_of(png, ...)``; a file of the other kind goes."""
    ndim = np.ndim(mask)
    _write_mask_file(_file_of(png, ndim), mask)
    _file_of(png, 5 - ndim).unlink(missing_ok=True)


def _write_mask_file(target: Path, mask: np.ndarray) -> None:
    """``mask`` (any non-zero label is lesion) as 0/255: a 2-D one a PNG, a stack a compressed multi-page TIFF."""
    mask = (np.asarray(mask) > 0).astype(np.uint8) * np.uint8(255)
    if mask.ndim == 3:
        write_tiff_atomic(target, mask, compress=True)
    else:
        write_png_atomic(target, mask, run_length=True)


def _unlink_mask(png: Path) -> None:
    for ndim in (2, 3):
        _file_of(png, ndim).unlink(missing_ok=True)


def _read_mask(png: Path, shape: tuple) -> np.ndarray:
    """The kept mask of ``shape`` ((H, W) or (N, H, W)) as 0/1 (:func:`read_mask_of_shape`)."""
    return read_mask_of_shape(_file_of(png, len(shape)), shape)


NAPARI_COPY = re.compile(r" \[\d+\]$")  # napari's name for a second layer of one name: "frame [1]"


def export_stem(about: dict) -> str:
    """The image's file name's stem (else its layer's name, less napari's " [1]" for an image opened twice, and less an
    image suffix) from an entry's JSON: exactly the name a folder session's "existing masks" finds for that file
    (``frame 01_mask.png`` for ``frame 01.jpg``; clinician trial and cold review of session 39: ``frame_1_mask.png``
    and ``frame_01_mask.png`` were never found, and ``scan.v2`` lost its ``.v2``). The JSON is data: only its last
    path component is taken, made file-safe unless it is a plain name, so nothing of it leaves the folder it is written
    into."""
    from ..files import IMAGE_SUFFIXES

    about = about if isinstance(about, dict) else {}
    file_name = about.get("file") if isinstance(about.get("file"), str) and about["file"].strip() else None
    name = file_name or NAPARI_COPY.sub("", str(about.get("image", "")))
    name = PurePosixPath(name.replace("\\", "/")).name
    if file_name or PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES:
        name = PurePosixPath(name).stem
    return name if _plain(name) and name.strip() else file_safe(name)


def _plain(name: str) -> bool:
    try:
        safe_name(name)
    except ValueError:
        return False
    return not name.startswith(".")
