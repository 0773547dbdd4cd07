"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

Temporary names follow one pattern, ``.<name>.<8 random characters>.tmp`` (``tempfile``'s), so the
leftovers of a killed write can be recognised and cleaned (:func:`remove_stale_temporaries`) without
touching anything else. Files and folders made here get the permissions the user's umask asks for
(``mkstemp``/``mkdtemp`` alone would make them private to the owner).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# tempfile's random part: 8 characters of [a-z0-9_].
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
STALE_AFTER_S = 3600.0
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _temp_name_parts(path: Path) -> dict:
    return {"dir": path.parent, "prefix": f".{path.name}.", "suffix": ".tmp"}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Readers (and a crash) see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(**_temp_name_parts(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs follow the umask
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill a temporary sibling folder, then swap it in place of ``path`` (old copy kept until the swap ends)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(**_temp_name_parts(path)))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then act on it as before. For writes of several files that belong
    together (a checkpoint's JSON and weights): a Ctrl-C between the two left a config describing other weights, or a
    config alone, and the CLI said "nothing half-written was left" (trial of session 28). Only the main thread can
    handle signals; elsewhere (a napari worker) the block runs as it is. A second Ctrl-C goes through at once (a save
    stalled on a network disk must stay interruptible)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or getattr(previous, "holds_interrupts", False):  # a handler set in C; or held already, outside
        yield
        return
    received: list[int] = []

    def pass_on(frame) -> None:  # as the handler before would have acted on it
        if callable(previous):
            previous(signal.SIGINT, frame)  # Python's own handler: KeyboardInterrupt, here
        elif previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)

    def hold(signum, frame) -> None:
        received.append(signum)
        if len(received) > 1:  # asked twice: no more waiting
            signal.signal(signal.SIGINT, previous)
            pass_on(frame)

    hold.holds_interrupts = True
    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if len(received) == 1:  # (a second one went through already)
            pass_on(None)


def recover_directory(path: Path) -> Path | None:
    """The folder written by :func:`atomic_directory`, or its previous copy if a crash hit mid-swap."""
    path = Path(path)
    if path.is_dir():
        return path
    old = path.parent / f".{path.name}.old"
    return old if old.is_dir() else None


def remove_stale_temporaries(folder: Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete this module's temporary files/folders in ``folder`` older than ``max_age_s``; return them.

    Only names of the temporary pattern (``.<name>.XXXXXXXX.tmp``) are touched, and only old ones: a
    write in progress elsewhere is at most seconds old. Symlinks are never followed or removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        candidates = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for path in candidates:
        if not TEMP_NAME.match(path.name) or path.is_symlink():
            continue
        try:
            if now - path.lstat().st_mtime < max_age_s:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue  # not ours to fight over (permissions, a concurrent cleaner)
    return removed
