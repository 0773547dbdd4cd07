"""Paths named by data (a model version, a correction entry's file): they must stay inside their folder.

A name read from a JSON file or typed by a user is never trusted as a path: ``""``, ``"."``, ``".."``,
absolute paths, separators and NUL are refused, and the joined path must still resolve inside the
folder (a symlink that leads out is refused too). Every place that turns data into a path goes
through :func:`child_path` or :func:`relative_inside`, so deletion and replacement can only ever
reach files inside the folder that owns them.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath


def same_file_key(name: str) -> str:
    """A file name as a case-insensitive, normalising file system sees it (macOS and Windows disks: ``Scan.png``
    and ``scan.png`` are one file, and so are the two ways of writing an accented letter). Names that share a key
    must not be written side by side."""
    return unicodedata.normalize("NFC", name).casefold()


def file_safe(name: str) -> str:
    """``name`` reduced to letters, digits, ``.``, ``_`` and ``-`` (runs of anything else become one ``_``), at most 80
    characters, never empty: for file names made from a name read from data."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")[:80] or "image"


class UnsafePathError(ValueError):
    """A name from data would leave its folder (or is not a usable file name)."""


def safe_name(name: object, what: str = "name") -> str:
    """``name`` if it is one plain path component, else :class:`UnsafePathError` saying why."""
    if not isinstance(name, str):
        raise UnsafePathError(f"{what} must be a string, not {type(name).__name__} ({name!r}).")
    if name in ("", ".", ".."):
        raise UnsafePathError(f"{what} {name!r} is not a usable file or folder name.")
    if "\x00" in name or "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise UnsafePathError(f"{what} {name!r} contains a path separator or NUL; only a plain name is allowed.")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise UnsafePathError(f"{what} {name!r} is an absolute path; only a plain name is allowed.")
    return name


def _check_inside(folder: Path, path: Path, what: str, shown: str) -> Path:
    root = folder.resolve()
    # Resolved in full: a symlink (file or folder) that leads out of the folder is refused as well.
    resolved = path.resolve()
    if root not in resolved.parents:
        raise UnsafePathError(f"{what} {shown!r} resolves outside {folder}.")
    return path


def child_path(folder: str | Path, name: object, what: str = "name") -> Path:
    """``folder / name`` for a plain ``name`` that stays inside ``folder``; :class:`UnsafePathError` otherwise."""
    folder = Path(folder)
    return _check_inside(folder, folder / safe_name(name, what), what, str(name))


def relative_inside(folder: str | Path, relative: object, what: str = "path", subfolder: str | None = None) -> Path:
    """``folder / relative`` for a relative path of plain components (``images/x.png``) inside ``folder``.

    ``subfolder``: the first component must be exactly this folder (a correction's image lives in
    ``images/``, its mask in ``masks/``).
    """
    folder = Path(folder)
    if not isinstance(relative, str) or not relative:
        raise UnsafePathError(f"{what} {relative!r} is not a relative path.")
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).drive or relative.startswith("\\"):
        raise UnsafePathError(f"{what} {relative!r} is an absolute path; it must be relative to {folder}.")
    parts = relative.split("/")
    for part in parts:
        safe_name(part, what)
    if subfolder is not None and (len(parts) != 2 or parts[0] != subfolder):
        raise UnsafePathError(f"{what} {relative!r} must name a file directly inside {subfolder}/.")
    return _check_inside(folder, folder.joinpath(*parts), what, relative)


def path_text(path: str | Path) -> str:
    """A path as text for a record (CSV, JSON), also when it is not valid UTF-8: such bytes as ``\\xNN`` (a surrogate
    in the text made writing summary.csv fail, and the folder unusable: cold review of session 42)."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def folder_text(file_path: str | Path) -> str:
    """The absolute folder of a file, as :func:`path_text`: the folder named beside the file's own name (the file's
    folder, not a symlink's target's: both name one file)."""
    return path_text(Path(file_path).absolute().parent.resolve())
