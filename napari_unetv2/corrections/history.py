"""A correction set's history: the entries that left it, kept instead of deleted.

An entry leaves the set when a later correction of its image replaces it or when it is removed (*Correct & retrain*'s
*Remove selected*). Its files move, under their set paths, into ``history/<id>/`` beside ``retired.json``: the entry's
provenance record and when, by whom and why it left. A research set has to answer for every mask it ever held, and a
colleague's correction replaced by a second annotator was gone for good (two annotators on one set, session 40).

Moving is a rename inside the set's folder (no copy, no extra disk). ``retired.json`` is written before the files
move and the entry's provenance goes last, so at every moment the entry is in the set or in its history with its
files. `unetv2 corrections` lists the history, restores an entry (:func:`restore`) and purges one for good
(:func:`purge`: the one deletion, for an image whose use is withdrawn). Training and evaluation never read it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..files import UnsafePathError, atomic_write_text, child_path, read_json, relative_inside

HISTORY = "history"
RECORD = "retired.json"
# A history folder's name: the entry's id, and ``~2``, ``~3`` ... when an entry of that id was retired before (an id
# is free again once its entry left the set).
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(~[0-9]{1,4})?$")


@dataclass
class Retired:
    """One entry of the history: the correction as it was, and its leaving."""
    name: str  # its folder in history/ (what `unetv2 corrections restore` and `purge` take)
    entry: object  # the Correction
    retired: str  # when (ISO time)
    by: Optional[str]  # who (the annotator of the process that took it out)
    why: str  # "replaced by <id>" or "removed"
    missing: tuple[str, ...]  # its files not in its folder (an interrupted move: they are still in the set's folders)


def history_folder(root: Path) -> Path:
    return Path(root) / HISTORY


def retire(root: Path, entry, files: Iterable[str], why: str, by: Optional[str]) -> Path:
    """Move the entry's ``files`` (paths relative to the set, checked inside it by the caller) into a new folder of
    ``history/`` with its record; returns the folder. The caller then removes the entry's provenance."""
    history = history_folder(root)
    history.mkdir(exist_ok=True)
    for n in range(1, 10_000):
        folder = history / (entry.id if n == 1 else f"{entry.id}~{n}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise OSError(f"No free history folder for {entry.id!r} in {history}.")
    record = {"entry": asdict(entry), "retired": time.strftime("%Y-%m-%dT%H:%M:%S"), "by": by, "why": why}
    moved = []
    try:
        atomic_write_text(folder / RECORD, json.dumps(record, indent=1) + "\n")
        for relative in files:
            source = Path(root) / relative
            if source.is_file():
                target = folder / relative
                target.parent.mkdir(exist_ok=True)
                os.replace(source, target)
                moved.append((source, target))
    except BaseException:  # (a full disk, a share gone): the entry stays in the set as it was
        for source, target in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(target, source)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _read(root: Path, folder: Path) -> Retired:
    from .correction_set import entry_from_record

    data = read_json(folder / RECORD)
    if not isinstance(data, dict) or not isinstance(data.get("entry"), dict):
        raise ValueError(f"{folder.name}/{RECORD} is not a history record")
    entry = entry_from_record(data["entry"], folder.name.split("~")[0], f"{folder.name}/{RECORD}")
    files = [entry.image_file, entry.mask_file] + ([entry.tested_mask_file] if entry.tested_mask_file else [])
    missing = tuple(name for name in files if not (folder / name).is_file())
    return Retired(folder.name, entry, str(data.get("retired", "?")), data.get("by") if isinstance(data.get("by"), str)
                   else None, str(data.get("why", "?")), missing)


def retired_entries(root: Path) -> list[Retired]:
    """The set's history, oldest first (unreadable records left out)."""
    history = history_folder(root)
    found = []
    for folder in sorted(history.iterdir()) if history.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir() or not FOLDER_NAME.match(folder.name):
            continue
        try:
            found.append(_read(root, folder))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda item: item.retired)


def latest_retired_of(root: Path, pixels: str) -> Optional[Retired]:
    """The entry of the image with this pixel hash (``image_hash``) that left the set last, with all its files; None
    without one."""
    found = [item for item in retired_entries(root) if item.entry.image_hash == pixels and not item.missing]
    return found[-1] if found else None


def retired_file(root: Path, item: Retired, relative: str) -> Path:
    """Where a history entry keeps one of its files (``images/<id>.png`` ...), checked inside its folder."""
    return relative_inside(history_folder(root) / item.name, relative, "history file")


def _history_entry(root: Path, name: str) -> tuple[Path, Retired]:
    if not isinstance(name, str) or not FOLDER_NAME.match(name):
        raise ValueError(f"{name!r} is not an entry of the history (see `unetv2 corrections history`)")
    folder = child_path(history_folder(root), name, "history entry")
    if folder.is_symlink() or not folder.is_dir():
        raise ValueError(f"no entry {name!r} in the history of {root}")
    try:
        return folder, _read(root, folder)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"the history entry {name!r} cannot be read ({err}); nothing was changed") from err


def restore(correction_set, name: str) -> object:
    """Bring a history entry back into the set under its id; returns the Correction. Refused (ValueError, nothing
    changed) when its id is in use again, when a file of it is missing, or when the set holds a correction of the
    same image now: one image has one correction in the set (take that one out first: it goes to the history)."""
    from .correction_set import _create_exclusively

    root = Path(correction_set.root)
    folder, item = _history_entry(root, name)
    entry = item.entry
    if item.missing:
        raise ValueError(f"{name}: its files {', '.join(item.missing)} are not in its history folder; nothing was "
                         "restored")
    same = [other.id for other in correction_set.entries()
            if (entry.image_hash and other.image_hash == entry.image_hash)]
    if same:
        raise ValueError(f"the set holds a correction of the same image now ({', '.join(same)}): remove it first "
                         f"(it goes to the history too), then restore {name}")
    provenance = root / "provenance" / f"{entry.id}.json"
    claim = provenance.with_suffix(".claim")
    if provenance.exists() or not _create_exclusively(claim):
        raise ValueError(f"the id {entry.id} is in use in the set again; nothing was restored")
    try:
        files = [entry.image_file, entry.mask_file] + ([entry.tested_mask_file] if entry.tested_mask_file else [])
        targets = []
        for relative in files:
            target = relative_inside(root, relative, "correction file")
            if target.exists():
                raise ValueError(f"{relative} exists in the set; nothing was restored")
            targets.append(target)
        for relative, target in zip(files, targets):
            target.parent.mkdir(exist_ok=True)
            os.replace(folder / relative, target)
        atomic_write_text(provenance, json.dumps(asdict(entry), indent=1) + "\n")  # last: now it is in the set
    finally:
        claim.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    return entry


def purge(root: Path, name: str) -> Retired:
    """Delete one history entry for good (its image, masks and record); returns what it was."""
    folder, item = _history_entry(Path(root), name)
    if Path(os.path.realpath(folder)).parent != Path(os.path.realpath(history_folder(root))):
        raise UnsafePathError(f"{folder} is not inside {history_folder(root)}")
    shutil.rmtree(folder)
    return item
