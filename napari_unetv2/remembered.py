"""The folders a user chose last, offered again in the next napari: *Annotate a folder*'s image and session folders,
*Batch folder*'s input and output, the correction set. Every day of use began with empty fields to choose again
(clinician trial of session 39). Qt-free: ``unetv2 kept-edits`` reads it to list a session's drafts.

Kept in ``<data home>/remembered-folders.json`` once a folder was used (a session opened, a run started, a correction
set chosen), never while it is typed. Read as data: only strings naming a folder that exists are offered.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Optional

from .files import atomic_write_text
from .files.jsonfile import read_json
from .storage import data_home

FILE_NAME = "remembered-folders.json"


def _path() -> Path:
    return data_home() / FILE_NAME


def _read() -> dict:
    try:
        found = read_json(_path())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def remembered(key: str) -> Optional[str]:
    """The folder last used for ``key`` ("batch.input", ...), if it is still a folder."""
    value = _read().get(key)
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    try:
        return value if Path(value).is_dir() else None
    except OSError:
        return None


def remember(**folders) -> None:
    """Note the folders just used (keys with dots written with "__": ``remember(batch__input=...)``); a folder that
    cannot be noted (a read-only home) changes nothing else."""
    known = _read()
    known.update({key.replace("__", "."): str(value) for key, value in folders.items() if value not in (None, "", ".")})
    with contextlib.suppress(OSError):
        _path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_path(), json.dumps(known, indent=1))


def correction_set_chosen_last() -> Optional[str]:
    """The correction set used last, if it is still one (a folder that is not a set is never offered)."""
    from .corrections.correction_set import not_a_correction_set

    found = remembered("corrections")
    return found if found is not None and not_a_correction_set(Path(found)) is None else None


def offer(field, key: str) -> None:
    """Fill the (empty, or default) FileEdit ``field`` with the folder last used for ``key``, if there is one."""
    found = remembered(key)
    if found is not None:
        field.value = found
