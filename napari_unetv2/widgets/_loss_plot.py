"""A small live loss plot (matplotlib in Qt), updated from the GUI thread."""
from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LossPlot(FigureCanvasQTAgg):
    def __init__(self):
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90)
        self.figure.subplots_adjust(left=0.2, bottom=0.25, right=0.97, top=0.95)
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.axes.set_xlabel("step", fontsize=8)
        self.axes.set_ylabel("loss", fontsize=8)
        self.axes.tick_params(labelsize=7)
        (self.line,) = self.axes.plot([], [], color="tab:blue")
        self.losses: list[float] = []
        self._last_draw = 0.0
        self.draw()  # the first render (font cache) is the slow one: pay it when docking, not mid-round

    def clear(self) -> None:
        self.losses = []
        self.line.set_data([], [])  # keep the axes: rebuilding them costs a slow re-layout mid-round

    def add(self, loss: float) -> None:
        self.losses.append(loss)
        self.line.set_data(range(1, len(self.losses) + 1), self.losses)
        now = time.monotonic()
        if now - self._last_draw > 0.5:  # a redraw costs tens of ms of GUI time
            self._last_draw = now
            self.axes.relim()
            self.axes.autoscale_view()
            self.draw_idle()
