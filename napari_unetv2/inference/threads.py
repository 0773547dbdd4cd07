"""How many CPU threads torch may use for one prediction, set for its duration and restored after.

torch's intra-op thread count is per calling thread (OpenMP), so a prediction in napari's worker thread
sets it there and restores it there; the GUI thread's setting is never touched.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import torch


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and job schedulers set)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_cpu_threads() -> int:
    """Never more than torch already uses here (a user's ``torch.set_num_threads`` or OMP_NUM_THREADS is
    respected) nor than the usable cores; off the main thread one core is left to the main thread, which
    in napari is the GUI (a worker and the GUI fighting for every core made small models far slower)."""
    cores = usable_cores()
    if threading.current_thread() is not threading.main_thread():
        cores -= 1
    return max(1, min(cores, torch.get_num_threads()))


@contextmanager
def cpu_threads(count: Optional[int] = None) -> Iterator[int]:
    """Run the block with ``count`` torch threads (default: :func:`default_cpu_threads`), then restore."""
    previous = torch.get_num_threads()
    count = default_cpu_threads() if count is None else int(count)
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}.")
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def restore_default_threads() -> None:
    """Make this thread's torch thread count the process-wide default again.

    ``torch.set_num_threads`` in any thread also sets the default that threads take when they first use
    torch; after other threads set theirs (a pipeline's workers), a napari worker started later would
    otherwise inherit a worker's share instead of the caller's setting."""
    torch.set_num_threads(torch.get_num_threads())
