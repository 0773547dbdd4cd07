"""A small live loss plot (matplotlib in Qt), updated from the GUI thread."""
from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LossPlot(FigureCanvasQTAgg):
    def __init__(self):
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90, tight_layout=True)
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot(111)
        self.losses: list[float] = []
        self.clear()

    def clear(self) -> None:
        self.losses = []
        self.axes.clear()
        self.axes.set_xlabel("step", fontsize=8)
        self.axes.set_ylabel("loss", fontsize=8)
        self.axes.tick_params(labelsize=7)
        (self.line,) = self.axes.plot([], [], color="tab:blue")
        self.draw_idle()

    def add(self, loss: float) -> None:
        self.losses.append(loss)
        self.line.set_data(range(1, len(self.losses) + 1), self.losses)
        self.axes.relim()
        self.axes.autoscale_view()
        self.draw_idle()
