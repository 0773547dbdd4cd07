"""A correction set's history: the entries that left it, kept instead of deleted.

An entry leaves the set when a later correction of its image replaces it or when it is removed (*Correct & retrain*'s
*Remove selected*). Its files move, under their set paths, into ``history/<id>/`` beside ``retired.json``: the entry's
provenance record and when, by whom and why it left. A research set has to answer for every mask it ever held, and a
colleague's correction replaced by a second annotator was gone for good (two annotators on one set, session 40).

Moving is a rename inside the set's folder (no copy, no extra disk), staged so that a process killed at any step
leaves the entry in the set or on its way into the history, never lost and never in both:

- leaving: the entry's provenance file is moved into a staging folder ``history/.leaving-<id>-*`` (one rename: from
  that moment the entry is no longer in the set), then its files, then ``retired.json`` is written and the folder
  takes its history name (:func:`retire`);
- coming back (:func:`restore`): the history folder is renamed to ``history/.returning-<name>-*``, its files move into
  the set, and the provenance is written last (from that moment it is in the set again).

A staging folder left by a killed process is finished (leaving) or put back (returning) when the set is next opened
and the folder is over a minute old (:func:`finish_interrupted`; a younger one may be a live process's). A step that
fails (a full disk) is undone where it can be, and a folder that still holds a file is never deleted.

`unetv2 corrections` lists the history, restores an entry and purges one for good (:func:`purge`: the one deletion,
for an image whose use is withdrawn). Training and evaluation never read it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..files import (
    UnsafePathError,
    atomic_write_text,
    child_path,
    read_image,
    read_json,
    relative_inside,
    remove_stale_temporaries,
)
from ..files.times import instant, now_stamp
from .records import (
    CLAIM_LIVE_S,
    _create_exclusively,
    _younger_than,
    current_annotator,
    entry_from_record,
    record_of,
)
from .same_image import same_image_entries

HISTORY = "history"
RECORD = "retired.json"
LEAVING, RETURNING = ".leaving-", ".returning-"  # staging folders in history/ (never listed: names start with ".")
PROVENANCE = "provenance.json"  # a leaving entry's provenance file, moved out of the set
WHY = "why.json"  # when, by whom and why it is leaving, written before it leaves
STAGING_LIVE_S = 60.0  # a staging folder younger than this may be a live process's (a move takes well under a second)
# A history folder's name: the entry's id, and ``~2``, ``~3`` ... when an entry of that id was retired before.
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(~[0-9]{1,4})?$")


@dataclass
class Retired:
    """One entry of the history: the correction as it was, and its leaving."""
    name: str  # its folder in history/ (what `unetv2 corrections restore` and `purge` take)
    entry: object  # the Correction
    retired: str  # when (ISO time)
    by: Optional[str]  # who (the annotator of the process that took it out)
    why: str  # "replaced by <id>" or "removed"
    missing: tuple[str, ...]  # its files not in its folder (a file lost outside this code)


def history_folder(root: Path) -> Path:
    return Path(root) / HISTORY


EVENTS = "events.jsonl"  # every leaving, return and purge, a line each, never rewritten (a restore ends a record)


def _note_event(root: Path, **event) -> None:
    """Append one line to ``history/events.jsonl`` (one write of a short line in append mode: whole lines)."""
    line = json.dumps({"when": _now(), **event}) + "\n"
    with contextlib.suppress(OSError):  # (the move is what matters; a share that refuses the note does not undo it)
        fd = os.open(history_folder(root) / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def events(root: Path) -> list[dict]:
    """The history's events, oldest first (damaged lines left out)."""
    found = []
    try:
        lines = (history_folder(root) / EVENTS).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return found
    for line in lines:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                found.append(event)
    return found


def entry_files(entry) -> list[tuple[str, str]]:
    """(path relative to the set, the folder it must lie in) of each of the entry's files."""
    return ([(entry.image_file, "images"), (entry.mask_file, "masks")]
            + ([(entry.tested_mask_file, "tested")] if entry.tested_mask_file else []))


def _now() -> str:
    return now_stamp()


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _remove_empty(folder: Path) -> None:
    """Remove ``folder``'s record files and empty subfolders, and the folder once empty; a file of the entry that is
    still there (a move that failed) keeps it."""
    for name in (RECORD, WHY):
        (folder / name).unlink(missing_ok=True)
    remove_stale_temporaries(folder, max_age_s=0)  # (a record's write that was killed)
    for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not sub.is_symlink():
            with contextlib.suppress(OSError):
                sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _free_name(history: Path, entry_id: str) -> Path:
    for n in range(1, 10_000):
        folder = history / (entry_id if n == 1 else f"{entry_id}~{n}")
        if not os.path.lexists(folder):
            return folder
    raise OSError(f"No free history folder for {entry_id!r} in {history}.")


def _files_into(root: Path, entry, staging: Path) -> None:
    """Move those of the entry's files that are still in the set into ``staging`` (under their set paths)."""
    for relative, sub in entry_files(entry):
        source = relative_inside(root, relative, "correction file", subfolder=sub)
        target = staging / relative
        if source.is_file() and not source.is_symlink() and not os.path.lexists(target):
            target.parent.mkdir(exist_ok=True)
            os.replace(source, target)


# ---- leaving ---------------------------------------------------------------------------------------------------
def retire(root: Path, provenance: Path, why: str, by: Optional[str]) -> Path:
    """Take the entry of ``provenance`` (its id claimed by the caller, its files checked inside the set) out of the set
    into the history; returns its history folder. Raises OSError when it could not leave (it is then in the set as it
    was), or when it left but its files could not all be moved yet (they are, at the set's next opening)."""
    history = history_folder(root)
    history.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{LEAVING}{provenance.stem}-", dir=history))
    try:
        atomic_write_text(staging / WHY, json.dumps({"retired": _now(), "by": by, "why": why}) + "\n")
        os.replace(provenance, staging / PROVENANCE)  # the one step that takes the entry out of the set
    except BaseException:
        _remove_empty(staging)
        raise
    try:
        return _finish_leaving(Path(root), staging)
    except OSError:  # (it has left the set: its files are moved at the set's next opening, a minute on)
        return staging


def _finish_leaving(root: Path, staging: Path) -> Path:
    """Move a leaving entry's files into its staging folder, write its record, give the folder its history name (each
    step skipped when done already: it finishes what a killed process left)."""
    if (staging / PROVENANCE).is_file():
        data = read_json(staging / PROVENANCE)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError(f"{staging.name}: its provenance is not a correction's")
        entry = entry_from_record(data, data["id"], f"{staging.name}/{PROVENANCE}")
        _files_into(root, entry, staging)
        try:
            reasons = read_json(staging / WHY)
        except (OSError, ValueError):
            reasons = None
        if not isinstance(reasons, dict):
            reasons = {"retired": "?", "by": None, "why": "removed (its leaving was interrupted, and finished later)"}
        record = {"entry": record_of(entry), "retired": reasons.get("retired", "?"), "by": reasons.get("by"),
                  "why": reasons.get("why", "?")}
        atomic_write_text(staging / RECORD, json.dumps(record, indent=1) + "\n")
        (staging / PROVENANCE).unlink()
        (staging / WHY).unlink(missing_ok=True)
    record = read_json(staging / RECORD)
    entry_id = record["entry"]["id"]
    folder = _free_name(history_folder(root), entry_id)
    os.rename(staging, folder)
    _note_event(root, event="left", id=entry_id, name=folder.name, by=record.get("by"), why=record.get("why"),
                source=record["entry"].get("source"))
    return folder


def finish_interrupted(root: Path) -> None:
    """Finish the leavings and undo the returns that a killed process left (staging folders over a minute old)."""
    history = history_folder(root)
    try:
        staged = [p for p in history.iterdir() if p.name.startswith((LEAVING, RETURNING)) and p.is_dir()
                  and not p.is_symlink()] if history.is_dir() else []
    except OSError:
        return
    for staging in staged:
        if not _older_than(staging, STAGING_LIVE_S):
            continue
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            if staging.name.startswith(LEAVING):
                if (staging / PROVENANCE).is_file() or (staging / RECORD).is_file():
                    _finish_leaving(Path(root), staging)
                else:  # killed before it left: only its note was written
                    _remove_empty(staging)
            else:
                _undo_return(Path(root), staging)


# ---- the history -----------------------------------------------------------------------------------------------
def _read(folder: Path) -> Retired:
    data = read_json(folder / RECORD)
    if not isinstance(data, dict) or not isinstance(data.get("entry"), dict):
        raise ValueError(f"{folder.name}/{RECORD} is not a history record")
    entry = entry_from_record(data["entry"], folder.name.split("~")[0], f"{folder.name}/{RECORD}")
    missing = tuple(name for name, _ in entry_files(entry) if not (folder / name).is_file())
    return Retired(folder.name, entry, str(data.get("retired", "?")), data.get("by") if isinstance(data.get("by"), str)
                   else None, str(data.get("why", "?")), missing)


def read_history(root: Path) -> tuple[list[Retired], list[str]]:
    """The history's readable entries, oldest first, and the names of those whose record cannot be read."""
    history = history_folder(root)
    found, damaged = [], []
    for folder in sorted(history.iterdir()) if history.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir() or not FOLDER_NAME.match(folder.name):
            continue
        try:
            found.append(_read(folder))
        except (OSError, ValueError, TypeError):
            damaged.append(folder.name)
    return sorted(found, key=lambda item: instant(item.retired)), damaged


def retired_entries(root: Path) -> list[Retired]:
    """The set's history, oldest first (unreadable records left out)."""
    return read_history(root)[0]


def retired_of(root: Path, pixels: str) -> list[Retired]:
    """The entries of the image with this pixel hash (``image_hash``) that left the set, with all their files, the
    latest to leave last."""
    return [item for item in retired_entries(root) if item.entry.image_hash == pixels and not item.missing]


def retired_file(root: Path, item: Retired, relative: str) -> Path:
    """Where a history entry keeps one of its files (``images/<id>.png`` ...), checked inside its folder."""
    return relative_inside(history_folder(root) / item.name, relative, "history file")


def _history_entry(root: Path, name: str) -> tuple[Path, Retired]:
    if not isinstance(name, str) or not FOLDER_NAME.match(name):
        raise ValueError(f"{name!r} is not an entry of the history (see `unetv2 corrections history`)")
    folder = child_path(history_folder(root), name, "history entry")
    if folder.is_symlink() or not folder.is_dir():
        in_set = (Path(root) / "provenance" / f"{name}.json").is_file()
        raise ValueError(f"no entry {name!r} in the history of {root}"
                         + (": it is in the set (`unetv2 corrections list`)" if in_set else ""))
    try:
        return folder, _read(folder)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"the history entry {name!r} cannot be read ({err}); nothing was changed") from err


# ---- coming back -----------------------------------------------------------------------------------------------
def restore(correction_set, name: str) -> object:
    """Bring a history entry back into the set under its id; returns the Correction. Refused (ValueError, nothing
    changed) when its id is in use again, when a file of it is missing or not a plain file of its folder, or when the
    set holds a correction of the same image now (found as Accept finds one): one image has one correction in the set
    (take that one out first: it goes to the history)."""

    root = Path(correction_set.root)
    folder, item = _history_entry(root, name)
    entry = item.entry
    if item.missing:
        raise ValueError(f"{name}: its files {', '.join(item.missing)} are not in its history folder; nothing was "
                         "restored")
    moves = []
    for relative, sub in entry_files(entry):
        source = relative_inside(folder, relative, "history file", subfolder=sub)
        target = relative_inside(root, relative, "correction file", subfolder=sub)
        if source.is_symlink() or source.parent.is_symlink() or not source.is_file():
            raise ValueError(f"{name}: {relative} is not a plain file of its history folder; nothing was restored")
        if os.path.lexists(target):
            raise ValueError(f"{relative} exists in the set; nothing was restored")
        moves.append((relative, target))
    same = [other.id for other, _ in same_image_entries(correction_set, read_image(folder / entry.image_file),
                                                        entry.source, entry.image_hash)]
    if same:
        raise ValueError(f"the set holds a correction of the same image now ({', '.join(same)}): remove it first "
                         f"(it goes to the history too), then restore {name}")
    provenance = root / "provenance" / f"{entry.id}.json"
    claim = provenance.with_suffix(".claim")
    held = _create_exclusively(claim)
    if provenance.exists() or (not held and _younger_than(claim, CLAIM_LIVE_S)):
        if held:
            claim.unlink(missing_ok=True)
        raise ValueError(f"the id {entry.id} is in use in the set again (or being written); nothing was restored")
    try:  # (an older claim was left by a killed process)
        staging = Path(tempfile.mkdtemp(prefix=f"{RETURNING}{name}-", dir=history_folder(root)))
        os.rmdir(staging)
        os.rename(folder, staging)  # out of the history listing
        moved = []
        try:
            for relative, target in moves:
                target.parent.mkdir(exist_ok=True)
                os.replace(staging / relative, target)
                moved.append((relative, target))
            atomic_write_text(provenance, json.dumps(record_of(entry), indent=1) + "\n")  # last: in the set again
        except BaseException:
            for relative, target in reversed(moved):
                with contextlib.suppress(OSError):
                    os.replace(target, staging / relative)
            with contextlib.suppress(OSError):
                os.rename(staging, _free_name(history_folder(root), entry.id))
            raise
        _remove_empty(staging)
    finally:
        if held:
            claim.unlink(missing_ok=True)
    _note_event(root, event="restored", id=entry.id, name=name, by=current_annotator(), source=entry.source)
    return entry


def _undo_return(root: Path, staging: Path) -> None:
    """A return killed midway: done when the entry's provenance is in the set (the staging folder is cleaned), else
    its files go back into the staging folder, which takes its history name again."""
    record = read_json(staging / RECORD)
    entry_id = record["entry"]["id"]
    entry = entry_from_record(record["entry"], entry_id, f"{staging.name}/{RECORD}")
    if (root / "provenance" / f"{entry_id}.json").is_file():
        _remove_empty(staging)
        return
    _files_into(root, entry, staging)
    os.rename(staging, _free_name(history_folder(root), entry_id))


def damaged_entries(root: Path) -> list[str]:
    """Names of history folders whose record cannot be read (listed, and purged by name, never restored)."""
    return read_history(root)[1]


def purge(root: Path, name: str, confirm: Optional[Callable[[str], bool]] = None) -> Optional[str]:
    """Delete one history entry for good (its image, masks and record, or a damaged one's folder); returns what it
    was (its image's name). ``confirm(what)`` is asked once the entry is found, before anything is deleted: None
    (nothing deleted) when it says no."""
    if isinstance(name, str) and FOLDER_NAME.match(name) and name in damaged_entries(root):
        left = [e.get("source") for e in events(root) if e.get("event") == "left" and e.get("name") == name]
        folder = child_path(history_folder(root), name, "history entry")
        what = f"{left[-1] if left and isinstance(left[-1], str) else 'an image'}; its record was damaged"
        gone = {}
    else:
        folder, item = _history_entry(Path(root), name)
        what = item.entry.source
        # what a record that named the entry (a session's manifest) can still say of it once its files are gone
        gone = {"id": item.entry.id, "stored": item.entry.created, "annotator": item.entry.annotator,
                "model_version": item.entry.model_version, "model_settings": item.entry.model_settings,
                "pixels_changed": item.entry.pixels_changed, "source_folder": item.entry.source_folder}
    if Path(os.path.realpath(folder)).parent != Path(os.path.realpath(history_folder(root))):
        raise UnsafePathError(f"{folder} is not inside {history_folder(root)}")
    if confirm is not None:
        if not confirm(what):
            return None
        if not os.path.isdir(folder):  # (restored or purged from elsewhere while the question waited)
            raise ValueError(f"{name} left the history of {root} while you were asked (restored or purged meanwhile): "
                             "nothing was deleted")
    shutil.rmtree(folder)
    _note_event(root, event="purged", name=name, by=current_annotator(), source=what, **gone)
    return what
