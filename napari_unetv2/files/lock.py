"""An exclusive lock between processes around a read-merge-write of a file shared by several writers.

Two writers of one file (two napari windows on one annotation session, two ``unetv2 predict`` runs into one
output folder, the shards of one run) each read the file, merge their own part in and write it back; without
a lock the last writer drops the other's part. ``fcntl.flock`` on the folder that holds the file serialises
them: no lock file is left in the user's folder, and the kernel releases the lock when its process dies, so a
crash never leaves a stale lock. Where the folder cannot be locked (no ``fcntl`` on Windows; some network
file systems refuse ``flock`` on a folder) the merge runs unlocked, as it did before there was a lock.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
