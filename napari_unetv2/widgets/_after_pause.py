"""A timer that waits for a pause in a stream of events (painting), with a ceiling on the wait."""
from __future__ import annotations

import time
from typing import Callable

from qtpy.QtCore import QTimer


class AfterPause:
    """Calls ``slot`` once poking has paused for ``pause_ms`` (each poke starts the wait again), and at least every
    ``at_most_s`` while the pokes go on: painting without a half-second pause never kept its edits, and a crash after
    minutes of strokes lost them all (trial of session 33)."""

    def __init__(self, slot: Callable, pause_ms: int, at_most_s: float):
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(pause_ms)
        self._timer.timeout.connect(slot)
        self._at_most_s = at_most_s
        self._since = 0.0

    def poke(self) -> None:
        now = time.monotonic()
        if not self._timer.isActive():
            self._since = now
            self._timer.start()
        elif now - self._since < self._at_most_s:
            self._timer.start()  # (again: the wait starts over) ... unless it has waited long enough: it fires

    def stop(self) -> None:
        try:
            self._timer.stop()
        except RuntimeError:  # (its Qt object is gone: the application is ending; nothing waits)
            pass

    def isActive(self) -> bool:  # noqa: N802  (QTimer's name: the session's code reads it like one)
        try:
            return self._timer.isActive()
        except RuntimeError:  # the dock's destroyed signal after the application deleted the timer: a script that
            return False      # ended without closing its viewer aborted at exit (session 35)
