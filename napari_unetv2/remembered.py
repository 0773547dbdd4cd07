"""The folders a user chose last, offered again in the next napari: *Annotate a folder*'s image and session folders,
*Batch folder*'s input and output, the correction set. Every day of use began with empty fields to choose again
(clinician trial of session 39). Qt-free: ``unetv2 kept-edits`` reads it to list a session's drafts.

Kept in ``<data home>/remembered-folders.json`` once a folder was used (a session opened, a run started, a correction
set chosen), never while it is typed. Read as data: only strings are offered, as they are (not looked at on disk).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

from .files import atomic_write_text, locked
from .files.jsonfile import read_json
from .storage import data_home

FILE_NAME = "remembered-folders.json"
SESSION_FOLDER, SESSION_FOLDERS = "session.folder", "session.folders"
KEPT_SESSION_FOLDERS = 50  # (a list that only grows: the oldest are let go)


def _path() -> Path:
    return data_home() / FILE_NAME


def _read() -> dict:
    try:
        found = read_json(_path())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def remembered(key: str) -> Optional[str]:
    """The folder last used for ``key`` ("batch.input", ...). Not looked at on disk: a network share gone dead
    would hold napari's window while its docks open (cold review of session 39); a folder gone is said when it is
    used ("input folder not found: ...")."""
    value = _read().get(key)
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return None
    return value


def remember(**folders) -> None:
    """Note the folders just used (keys with dots written with "__": ``remember(batch__input=...)``); a folder that
    cannot be noted (a read-only home) changes nothing else."""
    with contextlib.suppress(OSError):
        _path().parent.mkdir(parents=True, exist_ok=True)
        with locked(_path().parent):  # (two napari windows: each keeps the other's keys)
            known = _read()
            noted = {key.replace("__", "."): str(value) for key, value in folders.items() if value not in (None, "", ".")}
            known.update(noted)
            if SESSION_FOLDER in noted:  # every session folder used, newest last (a draft lies in each)
                known[SESSION_FOLDERS] = [p for p in _session_folders(known) if p != noted[SESSION_FOLDER]][
                    1 - KEPT_SESSION_FOLDERS:] + [noted[SESSION_FOLDER]]
            atomic_write_text(_path(), json.dumps(known, indent=1))


def _session_folders(known: dict) -> list[str]:
    found = known.get(SESSION_FOLDERS)
    return [p for p in found if isinstance(p, str) and p.strip() and "\x00" not in p] if isinstance(found, list) else []


def session_folders_used() -> list[str]:
    """Every folder session opened here (at most ``KEPT_SESSION_FOLDERS``, newest last), the one used last included:
    ``unetv2 kept-edits`` knew those under the data home's sessions/ and the last one only, so drafts of an earlier
    session kept elsewhere went unlisted (stop note 41). Not looked at on disk."""
    known = _read()
    last = remembered(SESSION_FOLDER)
    found = _session_folders(known) + ([last] if last is not None else [])
    # each once (its last place), the newest KEPT_SESSION_FOLDERS: a file edited by hand may hold any number
    return list(dict.fromkeys(reversed(found)))[:KEPT_SESSION_FOLDERS][::-1]


def correction_set_chosen_last() -> Optional[str]:
    """The correction set used last, if it is still one: a set is opened at once (a folder gone would be made again,
    empty; a folder that is not a set is never offered), so this one is looked at on disk."""
    from .corrections.correction_set import not_a_correction_set

    found = remembered("corrections")
    try:
        return found if found is not None and Path(found).is_dir() and not_a_correction_set(Path(found)) is None else None
    except OSError:
        return None


def correction_set_in_use() -> Path:
    """The set the widgets offer and the CLI reads by default: the one chosen last, else the default set."""
    from .storage import default_corrections_dir

    chosen = correction_set_chosen_last()
    return Path(chosen) if chosen else default_corrections_dir()


def offer(field, key: str) -> None:
    """Fill the (empty, or default) FileEdit ``field`` with the folder last used for ``key``, if there is one."""
    found = remembered(key)
    if found is not None:
        field.value = found
