"""Measuring a GUI benchmark's event loop: a 20 ms QTimer's lateness, tagged with what the benchmark was doing, and
helpers that keep the loop running while the benchmark waits (a person looking at the screen, not a sleep)."""
from __future__ import annotations

import time


class EventLoopMeter:
    """Call :meth:`start` once the viewer exists; ``phase`` names the step each tick's lateness belongs to."""

    def __init__(self, app, status=lambda: "", interval_ms: int = 20):
        from qtpy.QtCore import QTimer

        self.app, self.status, self.interval = app, status, interval_ms / 1000
        self.lateness: list[tuple[float, str]] = []  # (ms late, phase)
        self.phase = "starting"
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lateness.append((max(now - self._last - self.interval, 0) * 1000, self.phase))
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def pump_until(self, condition, timeout: float = 300.0) -> None:
        """Run the event loop until ``condition()``; TimeoutError with the widget's status after ``timeout`` s."""
        end = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > end:
                raise TimeoutError(self.status())
            self.app.processEvents()
            time.sleep(0.005)

    def look(self, seconds: float) -> None:
        """A person looking at the screen: the event loop keeps running."""
        end = time.perf_counter() + seconds
        self.pump_until(lambda: time.perf_counter() > end)
