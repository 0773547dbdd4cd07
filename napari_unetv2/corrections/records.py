"""A correction's record: its fields (``provenance/<id>.json``), reading and checking one, who stores it, and the
claims that keep two writers apart. Shared by the correction set (``correction_set.py``) and its history
(``history.py``), which both build on it (neither imports the other's module at its top)."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..annotator import ANNOTATOR_ENV, current_annotator  # noqa: F401 (their home before session 42)
from ..files import UnsafePathError, read_json
from ..files.times import shown


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
    # The model's mask as shown against the corrected one: a prospective test of model_version on an
    # image it never saw (None when the shown mask was not passed, and in entries written before).
    prospective_dice: Optional[float] = None
    prospective_iou: Optional[float] = None
    clicks: Optional[int] = None  # click corrections in effect when accepted (None: not made with clicks)
    # The image's pixels as a hash (``image_hash``): a later mask of the same image replaces this entry whatever name
    # the image goes by then (a renamed layer kept two masks of one image). None in entries written before.
    image_hash: Optional[str] = None
    # The model's mask that the prospective score compares against (``tested/<id>.png``), kept so that a later,
    # better correction of the image is scored against the same model mask (a revisit in a folder session shows the
    # accepted mask, not the model's: trial of session 32, a score of 1.0 kept for a mask corrected by 24,082 pixels
    # afterwards). None in entries written before, and when no score was taken.
    tested_mask_file: Optional[str] = None
    # Who stored it (:func:`current_annotator`): a research set must say whose work each mask is, and two annotators
    # sharing a set could not tell their corrections apart (session 41). None in entries written before.
    annotator: Optional[str] = None
    # How the model's mask was made: mode, threshold, flip TTA, as summary.csv's settings ("tile 256, threshold 0.2,
    # flip TTA"). A mask segmented at threshold 0.2 recorded only its model, and the recorded model at its defaults
    # gave a mask 35,344 pixels off (clinician trial of session 42). None when unknown (entries written before, masks
    # that no model made here).
    model_settings: Optional[str] = None
    # The folder the image file was opened from (``source`` is its file name), when it came from a file: two sites'
    # IMG_0001.png were told apart by their pixels only (the same trial). None when unknown.
    source_folder: Optional[str] = None


def stored_when_by(entry: Correction) -> str:
    """"stored <date time> by <annotator>" (without "by" for entries that name none)."""
    return f"stored {shown(entry.created)}" + (f" by {entry.annotator}" if entry.annotator else "")


def image_hash(image: np.ndarray) -> str:
    """A hash of an image's pixels, shape and type, as records name an image whatever file it came from: BLAKE2b with a
    16-byte digest over the text of the shape and NumPy's type code (``"(512, 640, 3)|u1"``) and then the pixel bytes
    in C order; in Python, ``hashlib.blake2b(b"(512, 640, 3)|u1" + pixels.tobytes(), digest_size=16).hexdigest()``.
    A correction set's ``images/<id>.png`` reads back to these pixels."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(f"{image.shape}{image.dtype.str}".encode(), digest_size=16)
    digest.update(image.view(np.uint8).reshape(-1) if image.size else b"")
    return digest.hexdigest()


ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")  # what add() makes: <time stamp>-<safe source>


def safe_id(entry_id: object) -> str:
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        raise UnsafePathError(f"correction id {entry_id!r} is not a plain name of letters, digits, '.', '_', '-'.")
    return entry_id


def _field_fits(value: object, kind: object) -> bool:
    """Whether a JSON value has the type a Correction field is declared with (bool is no number here)."""
    if typing.get_origin(kind) is typing.Union:
        return any(_field_fits(value, option) for option in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


@functools.lru_cache(maxsize=1)
def _field_types() -> dict:
    """Correction's fields and their declared types (evaluating the annotations took 0.7 ms per entry read)."""
    return typing.get_type_hints(Correction)


def _read_entry(path: Path) -> Correction:
    """One provenance file as a Correction; ValueError (naming the file) for anything else: a hand-edited or
    foreign file must not reach the metrics and the training with a height of "64"."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds a JSON {type(data).__name__}, not an object")
    return entry_from_record(data, path.stem, path.name)


# Fields that say something about an entry without being needed to use it: of the wrong type (a hand edit), read as
# unknown rather than the entry dropped
INFORMATIONAL = frozenset({"annotator", "model_settings", "source_folder"})
# Fields written only when known: a record without them is read by the versions before them too
WRITTEN_WHEN_KNOWN = ("model_settings", "source_folder")


def record_of(entry: Correction) -> dict:
    """An entry as its provenance JSON holds it."""
    record = asdict(entry)
    for name in WRITTEN_WHEN_KNOWN:
        if record.get(name) is None:
            del record[name]
    return record


def entry_from_record(data: dict, entry_id: str, named: str) -> Correction:
    """A provenance record (the JSON's object) as a Correction, checked field by field; ValueError (naming ``named``)
    for anything else. ``entry_id``: the id its file name gives it."""
    # Keys of a later version's records are passed over (a set shared by two installs: a record with a key this
    # version does not know was dropped whole, and its correction left out of training: cold review of session 42);
    # a missing key is still a TypeError.
    types = _field_types()
    entry = Correction(**{key: value for key, value in data.items() if key in types})
    for name, kind in types.items():
        if not _field_fits(getattr(entry, name), kind):
            if name in INFORMATIONAL:  # (what it says is lost, not the correction: read as unknown)
                setattr(entry, name, None)
                continue
            raise ValueError(f"{named}: {name} is {getattr(entry, name)!r}, not of type {kind}")
    # An entry is its file: removing or replacing entry X moves provenance/X.json and X's image and mask out of the
    # set. A file whose id or files name another entry (a hand edit, a merge of two sets) would have another image's
    # correction taken out in its place.
    if entry.id != entry_id or Path(entry.mask_file).stem != entry.id or Path(entry.image_file).stem != entry.id \
            or (entry.tested_mask_file is not None and Path(entry.tested_mask_file).stem != entry.id):
        raise ValueError(f"{named} describes entry {entry.id!r} with files {entry.image_file}, {entry.mask_file}: "
                         "an entry's id, its file name and its files' names must agree")
    return entry


CLAIM_LIVE_S = 60.0  # a claim younger than this is held by a live writer (writing an entry takes a second or two)


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def _create_exclusively(path: Path) -> bool:
    """Create an empty ``path``; False if it exists already (O_EXCL: one creator wins, atomically)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True
