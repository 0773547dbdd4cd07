"""Storing a correction: exactly the image and mask given, never an exact duplicate, and a newer mask
for the same image replaces the older one (saying so) instead of standing beside it."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Optional

import numpy as np

from ..corrections import CorrectionSet
from ..corrections.correction_set import Correction, image_hash, stored_when_by
from ..corrections.same_image import same_image_entries, source_key
from ..files import UnreadableImageError, file_safe, read_image, read_mask
from ..files.times import instant


class DuplicateCorrection(ValueError):
    """The same image with the same mask is already in the set: nothing was added."""

    def __init__(self, message: str, entry_id: Optional[str] = None):
        super().__init__(message)
        self.entry_id = entry_id  # the entry that holds it already


class WouldDiscardCorrection(ValueError):
    """The mask is the model's unchanged prediction and would replace an edited correction of the image."""


class WouldReplaceCorrection(WouldDiscardCorrection):
    """The mask would replace a correction of the image that it was neither started from nor accepted from its layer."""


# What a folder session records as a mask's "model version" when no model made it: an accepted mask shown again, a mask
# given with the images. Never a version: said as what it is (the widgets said "segmented with version accepted
# earlier": trial of session 41).
ACCEPTED_EARLIER, GIVEN_MASK = "accepted earlier", "given mask"
NOT_FROM_A_MODEL = {GIVEN_MASK: "the given mask", ACCEPTED_EARLIER: "the mask accepted earlier"}


@dataclass
class StoredCorrection:
    entry: Correction
    replaced: list[str] = field(default_factory=list)  # ids of earlier corrections of the same image
    restored: bool = False  # the entry came back from the set's history (its mask accepted again, unchanged)

    def describe(self) -> str:
        if self.restored:
            return (f"restored {self.entry.id} from the correction set's history (its record as it was: "
                    f"{self.entry.pixels_changed} pixels changed, {stored_when_by(self.entry)})")
        note = f" (replaced the earlier correction {', '.join(self.replaced)})" if self.replaced else ""
        # an empty mask is a finding too ("no lesion here"), but one quick Accept away from a missed one: said (trial
        # of session 35: an empty mask accepted on a frame whose ground truth holds a 1,082 px polyp, unnoticed)
        empty = "; the mask is EMPTY: nothing marked in this image" if self.entry.foreground_pixels == 0 else ""
        return f"stored {self.entry.id}: {self.entry.pixels_changed} pixels changed{empty}{note}"


def _revisit_of_retired(corrections: CorrectionSet, binary: np.ndarray, pixels: str):
    """For a revisited image whose correction is no longer in the set: the entry restored from the history when this
    mask is the mask of one that left (a StoredCorrection); else (the latest to leave, the model's mask it kept or
    None); None without a history entry of the image."""
    from ..corrections.history import restore, retired_file, retired_of

    retired = retired_of(corrections.root, pixels)
    for item in reversed(retired):
        try:
            kept = read_mask(retired_file(corrections.root, item, item.entry.mask_file)) > 0
            if kept.shape == binary.shape and np.array_equal(kept, binary > 0):
                return StoredCorrection(restore(corrections, item.name), [], restored=True)
        except (ValueError, OSError, UnreadableImageError):
            continue  # (a restore refused, or killed halfway: stored below as a correction of its model)
    if not retired:
        return None
    latest = retired[-1]
    try:
        tested = (read_mask(retired_file(corrections.root, latest, latest.entry.tested_mask_file)) > 0
                  if latest.entry.tested_mask_file else None)
    except (ValueError, OSError, UnreadableImageError):
        tested = None
    return latest, tested


def stored_correction_of(corrections_dir: Path, image: np.ndarray, source: str,
                         pixels: Optional[str] = None) -> Optional[tuple[Correction, np.ndarray]]:
    """The set's latest correction of exactly this image, with its mask; None when it holds none, or when the folder is
    no correction set yet (then nothing is created; an existing set is opened as any reader opens it, which removes
    temporary files its killed writers left hours ago). ``pixels``: the image's hash, when known already."""
    folder = Path(corrections_dir)
    if not (folder / "provenance").is_dir():
        return None
    found = same_image_entries(CorrectionSet(folder), np.asarray(image), source, pixels)
    return max(found, key=lambda item: (instant(item[0].created), item[0].id)) if found else None


def entry_ids_named(corrections_dir: Path, source: str) -> frozenset[str]:
    """The ids of the set's entries made from a file called ``source``, by their file names alone (one listing of
    ``provenance/``, no entry read): compared with an earlier answer, it tells a reader that another writer (a second
    window, a colleague's workstation) stored or removed a correction of that image since it looked."""
    # the names one image goes by (source_key: the file's, or a layer's without a file), with any suffix
    named = re.compile(r"\d{8}-\d{6}-" + re.escape(file_safe(source_key(source))) + r"(\.[A-Za-z0-9]+)?(-\d+)?\.json")
    try:
        names = os.listdir(Path(corrections_dir) / "provenance")
    except OSError:
        return frozenset()
    return frozenset(name[:-len(".json")] for name in names if named.fullmatch(name))


def images_with_corrections(corrections_dir: Optional[Path], folder: Path, names: Collection[str]) -> list[str]:
    """Those of the image files ``names`` (in ``folder``) of which the correction set holds a correction: the same
    pixels, looked at only where an entry's source names the file (a folder of thousands is not read again). For
    *Batch folder*: it wrote the model's masks of images corrected already and said nothing (trial of session 35).
    Never creates the set."""
    if corrections_dir is None or not (Path(corrections_dir) / "provenance").is_dir():
        return []
    hashes_by_name: dict[str, set[str]] = {}
    for entry in CorrectionSet(Path(corrections_dir)).entries():
        if entry.image_hash:
            hashes_by_name.setdefault(source_key(entry.source), set()).add(entry.image_hash)
    found = []
    for name in names:
        hashes = hashes_by_name.get(source_key(name))
        if not hashes:
            continue
        try:
            if image_hash(read_image(Path(folder) / name)) in hashes:
                found.append(name)
        except (UnreadableImageError, OSError):
            continue  # (changed or removed since it was segmented: not known to be corrected)
    return found


def _what_was_stored(entry: Correction) -> str:
    return (f"{entry.pixels_changed} pixels changed" if entry.pixels_changed
            else "accepted with no pixel changed from the mask shown")


def store_correction(corrections: CorrectionSet, image: np.ndarray, mask: np.ndarray, source: str,
                     model_version: str = "", predicted_mask: Optional[np.ndarray] = None,
                     seconds_spent: Optional[float] = None, clicks: Optional[int] = None,
                     keep_edited: bool = False, revisit: bool = False,
                     seen_by_model: Collection[str] = (),
                     accepted_from_layer: Optional[Collection[str]] = None, model_settings: str = "",
                     source_folder: str = "") -> StoredCorrection:
    """Add (image, mask) to the set. Raises :class:`DuplicateCorrection` when the same image with the
    same mask is stored already; an earlier, different mask of the same image is removed once the new
    entry is safely written (so no moment exists without a correction for the image).

    ``keep_edited``: raise :class:`WouldDiscardCorrection` instead when the mask is exactly ``predicted_mask`` (no
    pixel corrected: edits undone, or Accept pressed before painting) and an earlier entry of the image exists (one
    accepted with no pixel changed too: a reviewed mask): one click would otherwise swap a clinician's correction for
    the model's mask.

    ``accepted_from_layer`` (with ``keep_edited``): the pixel hashes of the 0/1 masks accepted before from the layer
    this mask comes from. Then :class:`WouldReplaceCorrection` is raised instead when an earlier entry holds a
    correction (or a mask accepted unchanged) that this mask neither started from (``predicted_mask``) nor was
    accepted from that layer: an image corrected yesterday, segmented again today and touched up replaced the careful
    correction for good (trial of session 31). Painting on and accepting again from the same layer is how a correction
    is improved: not asked.

    ``revisit``: the mask shown was an earlier accepted one (the session's revisit), not a model's: the replaced
    entry's model version is kept, and its prospective score is taken again against this mask, from the model mask the
    entry kept (entries written before those were kept carry their score over).

    ``seen_by_model``: what ``model_version`` trained on (:func:`~napari_unetv2.corrections.auto_retrain.trained_on_by_version`:
    the correction ids and their images' pixel hashes). When this image is among them (by its pixels, or as the
    earlier correction of it), the mask is not scored as a prospective test of that version: it saw the image (trial
    of session 27: a version's score counted an image it had trained on)."""
    image, binary = np.asarray(image), (np.asarray(mask) > 0).astype(np.uint8)
    pixels = image_hash(image)  # once: a large image took three hashes per Accept
    earlier = same_image_entries(corrections, image, source, pixels)
    for entry, stored_mask in earlier:
        if stored_mask.shape == binary.shape and np.array_equal(stored_mask, binary):
            raise DuplicateCorrection(f"{source} with this mask is already in the correction set ({entry.id}); "
                                      "nothing was added", entry.id)
    unedited = predicted_mask is not None and np.array_equal((np.asarray(predicted_mask) > 0), binary > 0)
    # Every earlier entry is a clinician's decision, one accepted with no pixel changed too ("this mask is right"): a
    # mask painted over another model's prediction replaced such an entry without a question (trial of session 35).
    if keep_edited and unedited and earlier:
        # (a folder session's given masks are no model's: review of session 29)
        shown = NOT_FROM_A_MODEL.get(model_version, "the model's mask")
        old = earlier[0][0]
        raise WouldDiscardCorrection(
            f"this is {shown}, unchanged; it would replace the earlier correction {old.id} ({_what_was_stored(old)})")
    if keep_edited and accepted_from_layer is not None and not unedited:
        started = None if predicted_mask is None else np.asarray(predicted_mask) > 0
        for old, stored_mask in earlier:
            if (image_hash((stored_mask > 0).astype(np.uint8)) not in accepted_from_layer
                    and not (started is not None and np.array_equal(started, stored_mask > 0))):
                differing = (int(np.count_nonzero((stored_mask > 0) != (binary > 0)))
                             if stored_mask.shape == binary.shape else binary.size)
                raise WouldReplaceCorrection(
                    f"the correction set already holds a correction of {source} ({old.id}: {_what_was_stored(old)}, "
                    f"{stored_when_by(old)}), and this mask was not started from it: "
                    f"{differing} pixels differ from it")
    prospective, tested_mask = None, None
    if revisit and not earlier:  # its correction left the set (removed) while the session kept the accepted mask
        back = _revisit_of_retired(corrections, binary, pixels)
        if isinstance(back, StoredCorrection):
            return back
        if back is None:  # no record of what made it: no model's line, no test (trial of session 41: "accepted
            model_version, prospective, model_settings = "", (None, None), ""  # earlier" stored as a version)
        else:
            (retired, kept_tested) = back
            model_version, tested_mask = retired.entry.model_version, kept_tested
            model_settings = retired.entry.model_settings or ""
            if tested_mask is None:
                prospective = (retired.entry.prospective_dice, retired.entry.prospective_iou)
    if revisit and earlier:
        tested = earlier[0][0]
        model_version, model_settings = tested.model_version, tested.model_settings or ""
        try:  # the model's mask it was scored against: scored now against this, the better correction
            tested_mask = corrections.tested_mask(tested) if tested.prospective_dice is not None else None
        except (ValueError, OSError):
            tested_mask = None
        if tested_mask is None:  # (an entry written before tested masks were kept, or never scored)
            prospective = (tested.prospective_dice, tested.prospective_iou)
    if revisit and tested_mask is not None and np.shape(tested_mask) == binary.shape:
        # pixels changed from the model's mask, the baseline of the record's model and score, not from the mask
        # accepted earlier (trial of session 41: 1,766 "pixels changed" for a mask 13,171 pixels off the model's)
        predicted_mask = tested_mask
    if not revisit and seen_by_model and (pixels in seen_by_model or any(old.id in seen_by_model for old, _ in earlier)):
        prospective = (None, None)  # the model trained on this image: its mask is no test of it
    entry = corrections.add(image, binary, source=source, model_version=model_version,
                            predicted_mask=predicted_mask, seconds_spent=seconds_spent, clicks=clicks,
                            prospective=prospective, pixels=pixels, tested_mask=tested_mask,
                            model_settings=model_settings if model_version else "", source_folder=source_folder)
    for old, _ in earlier:
        try:
            corrections.remove(old.id, why=f"replaced by {entry.id}")
        except ValueError:  # removed meanwhile (another window): the new entry stands, which is what was asked
            pass
    return StoredCorrection(entry, [old.id for old, _ in earlier])
