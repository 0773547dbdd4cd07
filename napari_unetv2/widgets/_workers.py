"""Workers that let go of what they held once they finish.

napari keeps every worker its ``create_worker`` makes while a viewer is open: its list of tasks (shown by the window's
close dialog) is never pruned, and each entry holds the worker's ``quit``. A worker holds its function, and Qt holds
the slots connected to its signals. So every image array a finished job read and every layer its callbacks named stayed
in memory for the rest of the session: a soak test of session 36 closed 40 segmented frames and freed none of them
(2.4 MB each, and every layer object with its napari state), where plain napari freed them all.

:func:`make_worker` is napari's ``create_worker`` (the close dialog still lists a running round) with the function
dropped once it has run; :func:`once` wraps a slot that names layers or images so that it forgets them after its call
(the connection itself stays: disconnecting a finished worker's signals was tried and left workers whose "finished"
never reached their widget in full test runs).
"""
from __future__ import annotations

import inspect
from typing import Callable


def make_worker(function: Callable, **kwargs):
    """``napari.qt.threading.create_worker(function, _start_thread=False, **kwargs)`` whose worker lets go of
    ``function`` (and all it captured) once it has called it. Connect its signals and start it as usual."""
    from napari.qt.threading import create_worker

    holder = [function]  # the worker keeps ``runs`` for good; ``runs`` gives up the function when it starts
    if inspect.isgeneratorfunction(function):
        def runs():
            return (yield from holder.pop()())
    else:
        def runs():
            return holder.pop()()
    return create_worker(runs, _start_thread=False, **kwargs)


class once:  # noqa: N801  (used as a function)
    """``slot`` for one call: afterwards (or after :meth:`forget`, for a worker that ended without calling it) the
    wrapper holds nothing, while a finished worker's connection to it stays."""

    def __init__(self, slot: Callable):
        self._slot = slot

    def __call__(self, *args):
        slot, self._slot = self._slot, None
        return slot(*args) if slot is not None else None

    def forget(self, *_args) -> None:
        self._slot = None
