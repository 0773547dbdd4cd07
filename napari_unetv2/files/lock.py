"""An exclusive lock between processes around a read-merge-write of a file shared by several writers.

Two writers of one file (two napari windows on one annotation session, two ``unetv2 predict`` runs into one
output folder, the shards of one run) each read the file, merge their own part in and write it back; without
a lock the last writer drops the other's part. ``fcntl.flock`` on the folder that holds the file serialises
them: no lock file is left in the user's folder, and the kernel releases the lock when its process dies, so a
crash never leaves a stale lock. Where the folder cannot be locked (no ``fcntl`` on Windows; some network
file systems refuse ``flock`` on a folder) the merge runs unlocked, as it did before there was a lock.

The same kernel locks tell a live process's files from a killed one's (:func:`hold`, :func:`is_held`): a round killed
mid-way left its scratch folder for six hours, and a batch run killed between two summary writes its journal.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None


@contextmanager
def locked(folder: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``folder`` for the block; yields whether the lock could be taken."""
    descriptor = None
    if fcntl is not None:
        try:
            descriptor = os.open(folder, os.O_RDONLY)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:  # a folder one may write but not read, a file system without flock: unlocked
            if descriptor is not None:
                os.close(descriptor)
            descriptor = None
    try:
        yield descriptor is not None
    finally:
        if descriptor is not None:
            os.close(descriptor)  # closing releases the lock


def hold(path: Path) -> Optional[int]:
    """Create ``path`` and hold an exclusive lock on it for as long as this process lives (or until :func:`release`):
    what it marks (a round's scratch folder, a batch run's journal) is in use. The file is made and locked under a
    temporary name, then renamed: no other process ever sees it unlocked (between a create and a lock, a live round's
    folder read as a killed one's: cold review of session 39). Returns the descriptor (open for appending), None
    where no lock can be held (no ``fcntl``, a file system that refuses it): then nothing is known of it
    (:func:`is_held`)."""
    if fcntl is None:
        return None
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.locking")
    try:
        descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)  # (less the umask)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(temporary, path)
    except OSError:
        os.close(descriptor)
        with contextlib.suppress(OSError):
            temporary.unlink()
        return None
    return descriptor


def release(descriptor: Optional[int]) -> None:
    if descriptor is not None:
        try:
            os.close(descriptor)  # (closing releases the lock)
        except OSError:
            pass


def is_held(path: Path) -> Optional[bool]:
    """Whether a live process holds ``path`` (:func:`hold`): True, False (its process is gone: the kernel released the
    lock), None when it cannot be known (no such file, no ``fcntl``, a file system that refuses the lock)."""
    if fcntl is None:
        return None
    # read-write where allowed: NFS emulates flock with fcntl locks, and an exclusive one on a read-only descriptor
    # fails (EBADF), which left every mark "unknown" on a shared folder (cold review of session 40)
    descriptor = None
    for mode in (os.O_RDWR, os.O_RDONLY):
        try:
            descriptor = os.open(path, mode)
            break
        except OSError:
            continue
    if descriptor is None:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return False
