"""Workers that let go of what they held once they finish.

napari keeps every worker its ``create_worker`` makes while a viewer is open: its list of tasks (shown by the window's
close dialog) is never pruned, and each entry holds the worker's ``quit``. A worker holds its function, and Qt holds
the slots connected to its signals. So every image array a finished job read and every layer its callbacks named stayed
in memory for the rest of the session: a soak test of session 36 closed 40 segmented frames and freed none of them
(2.4 MB each, and every layer object with its napari state), where plain napari freed them all.

:func:`make_worker` is napari's ``create_worker`` (the close dialog still lists a running round), with the function
dropped once it has run and every signal disconnected once the worker has finished, so what stays in napari's list is
an empty worker.
"""
from __future__ import annotations

import inspect
from typing import Callable

from qtpy.QtCore import QTimer

SIGNALS = ("started", "finished", "returned", "errored", "warned", "aborted", "yielded", "paused", "resumed")


def make_worker(function: Callable, **kwargs):
    """``napari.qt.threading.create_worker(function, _start_thread=False, **kwargs)`` that keeps nothing of
    ``function``'s work after it finishes (see the module's docstring). Connect its signals and start it as usual."""
    from napari.qt.threading import create_worker

    holder = [function]  # the worker keeps ``runs`` for good; ``runs`` gives up the function when it starts
    if inspect.isgeneratorfunction(function):
        def runs():
            return (yield from holder.pop()())
    else:
        def runs():
            return holder.pop()()
    worker = create_worker(runs, _start_thread=False, **kwargs)
    # deferred: the slots of this very emission (and the signals the worker sent before it) are delivered first
    worker.finished.connect(lambda: QTimer.singleShot(0, lambda: disconnect_all(worker)))
    return worker


def disconnect_all(worker) -> None:
    """Every slot off every signal of ``worker`` (Qt then drops its references to them)."""
    for name in SIGNALS:
        try:
            signal = getattr(worker, name)
        except (AttributeError, RuntimeError):
            continue
        try:
            signal.disconnect()
        except (TypeError, RuntimeError):  # nothing connected (PyQt: TypeError, PySide: RuntimeError)
            continue
