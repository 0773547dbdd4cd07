"""Keep freed memory in the process for the next forward pass instead of handing it back to the kernel.

With glibc's default malloc, every block above its mmap threshold (128 KiB at first, rising with use) is
mapped afresh and unmapped on free, and freed heap top beyond twice that threshold is trimmed. A forward
pass allocates the same large activation tensors each time, so each call page-faults them all in again
(the kernel zeroes every fresh 4 KiB page): about 5,000 minor faults per forward of the bundled model at
320x320, and 5,000-7,000 per ``Predictor.predict`` of a 1232x1048 frame (``ru_minflt``). Raising the mmap
threshold to glibc's largest (32 MiB) and the trim threshold to 256 MiB makes those blocks come from the
heap and stay there: no faults after the first call, the same values (allocation does not touch
arithmetic). What it costs: up to 256 MiB of freed memory may stay with the process; blocks of 32 MiB and
more (full-size images, probability maps) are still mapped and unmapped as before.

glibc's own ``mallopt`` (the documented knob; jemalloc or tcmalloc would need ``LD_PRELOAD``, which a
napari plugin cannot do) through ``ctypes``, once per process, and only where the C library is glibc.
``NAPARI_UNETV2_MALLOC=default`` leaves malloc as it is. The settings are process-wide and cannot be
undone exactly (setting them ends glibc's dynamic threshold), hence once and opt-out rather than per call.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
from typing import Optional

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit systems
TRIM_THRESHOLD = 256 * 2**20
OPT_OUT = "NAPARI_UNETV2_MALLOC"

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


def _apply() -> str:
    if os.environ.get(OPT_OUT, "").strip().lower() == "default":
        return "opted out"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    try:
        libc = ctypes.CDLL("libc.so.6")
        accepted = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        return "not glibc"
    return "reuse" if accepted else "mallopt refused"
