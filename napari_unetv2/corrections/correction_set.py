"""The correction set: (image, corrected mask, provenance) triples on disk, each written at once.

Layout: ``images/<id>.png|.tif``, ``masks/<id>.png``, ``provenance/<id>.json``. The JSON is written last
(and moved out first when an entry leaves the set), so an entry exists exactly when its provenance file and its image
and mask do: a crash mid-write leaves at most an orphan image that is never listed, never a half entry. Each id is claimed
first (``provenance/<id>.claim``, created exclusively), so two writers on one set never share one. An entry that
leaves the set (replaced by a later correction of its image, or removed) is kept in ``history/`` (:mod:`.history`).
"""
from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Collection, Iterable, Optional

import numpy as np

from ..engine.metrics import dice_iou_mae
from ..engine.pairs import Pair
from ..files import (
    UnsafePathError,
    atomic_write_text,
    child_path,
    file_safe,
    relative_inside,
    remove_stale_temporaries,
    write_png_atomic,
    write_tiff_atomic,
)
from ..files.times import instant, now_stamp
from .records import (  # (the record's own module; named here as they always were)
    ANNOTATOR_ENV,
    CLAIM_LIVE_S,
    ENTRY_ID,
    Correction,
    _create_exclusively,
    _read_entry,
    _younger_than,
    current_annotator,
    entry_from_record,
    image_hash,
    record_of,
    safe_id,
    stored_when_by,
)

__all__ = ["ANNOTATOR_ENV", "CLAIM_LIVE_S", "ENTRY_ID", "Correction", "CorrectionSet", "check_correction_arrays",
           "current_annotator", "entries_by_image", "entry_from_record", "image_hash", "not_a_correction_set", "safe_id",
           "stored_when_by"]


def check_correction_arrays(image: np.ndarray, mask: np.ndarray) -> None:
    """Refuse (ValueError, saying why) a pair that could not be trained on: not 2-D, mismatched,
    a channel count other than 1/3/4, non-numeric pixels, or NaN/infinite values."""
    if mask.ndim != 2:
        raise ValueError(f"A correction is one 2-D mask; got shape {mask.shape} (pick one slice of a stack).")
    if image.ndim not in (2, 3) or image.shape[:2] != mask.shape:
        raise ValueError(f"Image {image.shape} and mask {mask.shape} do not match.")
    if min(mask.shape) < 8:
        raise ValueError(f"The image is {mask.shape[0]}x{mask.shape[1]}; both sides must be at least 8 pixels.")
    if image.ndim == 3 and image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Image {image.shape} has {image.shape[-1]} channels; a correction needs gray, RGB or RGBA.")
    for what, array in (("image", image), ("mask", mask)):
        if not (array.dtype == bool or np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"The {what} has pixel type {array.dtype}; expected integers or floats.")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ValueError(f"The {what} contains NaN or infinite values; it cannot be trained on.")


# The entries read so far, per set folder: {provenance file name: ((mtime_ns, size, inode), entry, image, mask)}. A
# folder session's writer reads the whole set after each stored correction; parsing and checking every file each time
# made Accept & next slower with every image (soak test of session 36: 0.15 s at the start, 0.28 s after 57 entries).
_READ: dict[str, dict[str, tuple]] = {}


def entries_by_image(entries: Iterable[Correction]) -> dict[str, list[Correction]]:
    """A set's ``entries`` by their image's pixel hash (entries written without one left out), each list oldest first."""
    found: dict[str, list[Correction]] = {}
    for entry in entries:
        if entry.image_hash:
            found.setdefault(entry.image_hash, []).append(entry)
    return {key: sorted(entries, key=lambda entry: instant(entry.created)) for key, entries in found.items()}


def not_a_correction_set(folder: Path) -> Optional[str]:
    """Why ``folder`` should not be used as a correction set (None when it may): a folder holding other files but
    no ``provenance/`` is someone's data; opening it as a set would add ``images/``, ``masks/`` and ``provenance/``
    to it."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "provenance").is_dir():
        return None
    if any(True for _ in folder.iterdir()):
        return (f"{folder} is not a correction set (it holds other files and no provenance/ folder): choose an empty "
                "or new folder, or an existing set")
    return None


class CorrectionSet:
    def __init__(self, root: Path):
        self.root = Path(root)
        for sub in ("images", "masks", "provenance"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.root / sub)  # leftovers of writes killed mid-way
        if (self.root / "tested").is_dir():  # (made with the first entry that keeps a tested mask)
            remove_stale_temporaries(self.root / "tested")
        if (self.root / "history").is_dir():  # entries a killed process was taking out or bringing back
            from .history import finish_interrupted

            finish_interrupted(self.root)

    def _entry_files(self, entry: Correction) -> tuple[Path, Path]:
        """The entry's image and mask, which must lie directly in ``images/`` and ``masks/`` of this set
        (the JSON may come from a copied or shared set: its paths are data, not trusted)."""
        return (relative_inside(self.root, entry.image_file, "correction image", subfolder="images"),
                relative_inside(self.root, entry.mask_file, "correction mask", subfolder="masks"))

    def _tested_path(self, entry: Correction) -> Optional[Path]:
        """The entry's tested model mask, directly in ``tested/`` of this set (None when it keeps none)."""
        if entry.tested_mask_file is None:
            return None
        return relative_inside(self.root, entry.tested_mask_file, "tested model mask", subfolder="tested")

    def tested_mask(self, entry: Correction) -> Optional[np.ndarray]:
        """The model's mask the entry's prospective score compares against (0/1), or None when it keeps none."""
        path = self._tested_path(entry)
        if path is None or not path.is_file():
            return None
        from ..files import read_mask

        return read_mask(path)

    @staticmethod
    def read_entry(root: Path, entry_id: object) -> Optional[Correction]:
        """One entry of the set at ``root`` from its record alone (None when the set holds none of that id); nothing is
        created. ValueError for an id naming no file of a set, or a damaged record."""
        path = child_path(Path(root) / "provenance", f"{safe_id(entry_id)}.json", "correction id")
        return _read_entry(path) if path.is_file() else None

    def holds(self, entry_id: object) -> bool:
        """Whether the set has an entry of this id (one file check; ValueError for an id that names no file of the set)."""
        return self._provenance_path(entry_id).is_file()

    def _provenance_path(self, entry_id: object) -> Path:
        return child_path(self.root / "provenance", f"{safe_id(entry_id)}.json", "correction id")

    def add(
        self,
        image: np.ndarray,
        corrected_mask: np.ndarray,
        source: str,
        model_version: str = "",
        predicted_mask: Optional[np.ndarray] = None,
        seconds_spent: Optional[float] = None,
        clicks: Optional[int] = None,
        prospective: Optional[tuple[Optional[float], Optional[float]]] = None,
        pixels: Optional[str] = None,
        tested_mask: Optional[np.ndarray] = None,
        model_settings: Optional[str] = None,
        source_folder: Optional[str] = None,
    ) -> Correction:
        """Store one corrected pair; refuses (ValueError) shapes that do not match or are not 2-D.
        ``prospective``: (Dice, IoU) of ``model_version`` carried over from the entry this one replaces (a revisit
        of an accepted image shows the accepted mask, not the model's, so it is no new test of the model); (None, None):
        no test at all. ``pixels``: the image's :func:`image_hash`, when the caller has it already. ``tested_mask``: the
        model's mask to score against when it is not the mask shown (a revisit shows an accepted mask; the model's mask
        of the entry it replaces is scored against the new correction). The mask scored against is kept with the entry.
        """
        image = np.asarray(image)
        mask = np.asarray(corrected_mask)
        check_correction_arrays(image, mask)
        binary = (mask > 0).astype(np.uint8)
        dice = iou = tested = None
        if predicted_mask is not None and np.shape(predicted_mask) == mask.shape:
            shown = np.asarray(predicted_mask) > 0
            changed = int(np.count_nonzero(binary != shown))
            tested = shown
        else:
            changed = int(binary.sum())
        if tested_mask is not None and np.shape(tested_mask) == mask.shape:
            tested = np.asarray(tested_mask) > 0
        if prospective is not None:  # carried over (its model mask unknown), or (None, None): no test
            dice, iou = prospective
            tested = None
        elif tested is not None:
            dice, iou, _ = dice_iou_mae(tested, binary > 0)
            # (the metric's smoothing leaves 7e-11 for "nothing in common": stored as the 0 it is)
            dice, iou = round(float(dice), 6), round(float(iou), 6)
        entry_id, claim = self._claim_id(f"{time.strftime('%Y%m%d-%H%M%S')}-{file_safe(source)}")
        try:
            if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[-1] in (3, 4)):
                image_file = f"images/{entry_id}.png"
                write_png_atomic(self.root / image_file, image)
            else:
                image_file = f"images/{entry_id}.tif"
                write_tiff_atomic(self.root / image_file, image)
            mask_file = f"masks/{entry_id}.png"
            write_png_atomic(self.root / mask_file, binary * 255, run_length=True)
            tested_file = None
            if tested is not None:
                tested_file = f"tested/{entry_id}.png"
                write_png_atomic(self.root / tested_file, tested.astype(np.uint8) * 255, run_length=True)
            entry = Correction(entry_id, image_file, mask_file, source, model_version, now_stamp(),
                               changed, int(binary.sum()), seconds_spent, mask.shape[0], mask.shape[1], dice, iou, clicks,
                               pixels or image_hash(image), tested_file, current_annotator(), model_settings or None,
                               source_folder or None)
            atomic_write_text(self.root / "provenance" / f"{entry_id}.json", json.dumps(record_of(entry), indent=1) + "\n")
        finally:
            claim.unlink(missing_ok=True)
        return entry

    def _claim_id(self, base: str) -> tuple[str, Path]:
        """An entry id no other writer holds, and the claim file that holds it (remove it when done).

        Two writers on one set (two napari windows, the CLI beside the GUI) may accept a layer of the same
        name within the same second: checking that ``<id>.json`` does not exist yet is not enough, since both
        would then write the same image and mask files. Creating ``<id>.claim`` with O_EXCL is atomic, so
        exactly one writer gets each id. A claim left by a killed writer only makes later ids skip that one.
        """
        provenance = self.root / "provenance"
        for n in range(1, 10_000):
            entry_id = base if n == 1 else f"{base}-{n}"
            claim = provenance / f"{entry_id}.claim"
            # (an id of the history too: a restore, and a round's list of ids trained on, name one entry by it)
            if (provenance / f"{entry_id}.json").exists() or os.path.lexists(self.root / "history" / entry_id):
                continue
            if not _create_exclusively(claim):
                continue
            if (provenance / f"{entry_id}.json").exists():  # finished between our check and our claim
                claim.unlink(missing_ok=True)
                continue
            return entry_id, claim
        raise OSError(f"No free correction id for {base!r} in {provenance}.")

    def entries(self) -> list[Correction]:
        """Every readable entry whose image and mask are there, in id order. A provenance file is parsed and checked
        again only when it changed (its time, size or inode) since this process last read it."""
        found = []
        earlier = _READ.get(str(self.root), {})
        now = {}
        for path in sorted((self.root / "provenance").glob("*.json")):
            try:
                stat = path.stat()
                key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if earlier.get(path.name, (None,))[0] == key:
                    _, entry, image_path, mask_path = earlier[path.name]
                else:
                    entry = _read_entry(path)
                    image_path, mask_path = self._entry_files(entry)
            except (OSError, ValueError, TypeError):
                continue  # never half-written (atomic), but a hand-edited or foreign file must not break the list
            now[path.name] = (key, entry, image_path, mask_path)
            if image_path.is_file() and mask_path.is_file():
                found.append(copy.copy(entry))  # (a caller's change to one stays its own)
        _READ[str(self.root)] = now
        return found

    def remove(self, entry_id: str, why: str = "removed") -> None:
        """Take one entry out of the set: its image, masks and record move to the set's ``history/`` (:mod:`.history`;
        `unetv2 corrections restore` brings it back). ``why``: what the history says ("removed", "replaced by <id>").
        Only files inside this set are moved; an entry whose JSON names files elsewhere is refused and nothing moves."""
        from .history import retire

        try:
            provenance = self._provenance_path(entry_id)
        except UnsafePathError as err:
            raise ValueError(f"No correction {entry_id!r} in {self.root}: {err}") from err
        if not provenance.is_file():
            raise ValueError(self._not_held(entry_id))
        try:
            entry = _read_entry(provenance)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"Correction {entry_id!r} has an unreadable provenance file ({err}); nothing was deleted or moved.") from err
        self._entry_files(entry)  # raises UnsafePathError (a ValueError) before anything moves
        self._tested_path(entry)
        # Hold the id while its files go: a writer seeing no JSON must not claim it and write files we then move.
        claim = provenance.with_suffix(".claim")
        held = _create_exclusively(claim)
        if not held and _younger_than(claim, CLAIM_LIVE_S):  # another window takes it out now (no writer claims an
            raise ValueError(f"Correction {entry_id!r} is being taken out by another window (or was, by a process "
                             "killed less than a minute ago: try again then).")  # id whose JSON exists)
        try:  # (an older claim was left by a killed process)
            if not provenance.is_file():  # (taken out meanwhile by another window)
                raise ValueError(self._not_held(entry_id))
            retire(self.root, provenance, why, current_annotator())
        finally:
            if held:
                claim.unlink(missing_ok=True)

    def _not_held(self, entry_id: str) -> str:
        if os.path.lexists(self.root / "history" / entry_id):  # (the second of two windows removing it)
            return f"Correction {entry_id!r} was taken out of {self.root} already (by another window?): it is in its history."
        return f"No correction {entry_id!r} in {self.root}."

    def pairs(self, ids: Optional[Collection[str]] = None) -> list[Pair]:
        """The entries' image/mask files; only those of ``ids`` when given."""
        return [Pair(*self._entry_files(e)) for e in self.entries() if ids is None or e.id in ids]

    def __len__(self) -> int:
        return len(self.entries())
