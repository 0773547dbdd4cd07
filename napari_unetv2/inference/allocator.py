"""Keep freed memory in the process for the next forward pass instead of handing it back to the kernel.

With glibc's default malloc, every block above its mmap threshold (128 KiB at first, rising with use) is
mapped afresh and unmapped on free, and freed heap top beyond twice that threshold is trimmed. A forward
pass allocates the same large activation tensors each time, so each call page-faults them all in again
(the kernel zeroes every fresh 4 KiB page): about 5,000 minor faults per forward of the bundled model at
320x320, 27,000-77,000 for the paper's PVT-v2-b2 network at 352x352 in eager (``benchmarks/bench_allocator.py``). Raising
the mmap threshold to glibc's largest (32 MiB) and the trim threshold to 256 MiB makes those blocks come
from the heap and stay there: no faults after the first call, the same values (allocation does not touch
arithmetic).

What it costs: memory a prediction freed stays with the process for the next one instead of going back
to the system — the working set of its blocks under 32 MiB (a few hundred MiB at most for the models here;
peak memory is unchanged), per thread that ran one, since each thread's malloc arena keeps its own.
Blocks of 32 MiB and more (full-size images, probability maps) are mapped and unmapped as before.
:func:`release_freed_memory` gives the kept memory back (batch runs call it when they finish). The setting
is process-wide: in napari it applies to napari and other plugins too.

glibc's own ``mallopt`` (the documented knob; jemalloc or tcmalloc would need ``LD_PRELOAD``, which a
napari plugin cannot do) through ``ctypes``, once per process, and only where the C library is glibc
(with another allocator preloaded the call still reaches glibc's malloc, which then does little).
``NAPARI_UNETV2_MALLOC=default`` leaves malloc as it is. The settings cannot be undone exactly (setting
them ends glibc's dynamic threshold), hence once and opt-out rather than per call.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
import warnings
from typing import Optional

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 * 2**20
OPT_OUT = "NAPARI_UNETV2_MALLOC"
OPT_OUT_VALUES = ("default", "off", "0", "no", "false")
OPT_IN_VALUES = ("", "reuse", "on", "1", "yes", "true")

_lock = threading.Lock()
_state: Optional[str] = None


def reuse_freed_memory() -> str:
    """Apply the settings once (later calls return the first answer): ``"reuse"`` when they are in effect,
    otherwise why not (``"opted out"``, ``"not glibc"``, ``"mallopt refused"``)."""
    global _state
    with _lock:
        if _state is None:
            _state = _apply()
        return _state


def _glibc() -> Optional[ctypes.CDLL]:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (both must exist)
    except (OSError, AttributeError):
        return None
    return libc


def _apply() -> str:
    choice = os.environ.get(OPT_OUT, "").strip().lower()
    if choice in OPT_OUT_VALUES:
        return "opted out"
    if choice not in OPT_IN_VALUES:
        warnings.warn(f"{OPT_OUT}={choice!r} is not understood (use 'default' to leave malloc alone); "
                      "keeping freed memory for reuse.", stacklevel=3)
    libc = _glibc()
    if libc is None:
        return "not glibc"
    # The mmap threshold first: if glibc refused it, nothing has changed yet.
    if not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return "mallopt refused"
    if not libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        return "reuse (trim threshold refused)"
    return "reuse"


def release_freed_memory() -> bool:
    """Give the memory kept for reuse back to the system now (glibc's ``malloc_trim``); True if any was."""
    with _lock:
        if _state is None or not _state.startswith("reuse"):
            return False
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))
