"""A small live loss plot (matplotlib in Qt), updated from the GUI thread, in the napari theme's colours."""
from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

MIN_HEIGHT = 140  # docked beside other widgets it must not be squeezed to a sliver


def theme_colours(viewer) -> tuple[str, str, str]:
    """(background, foreground, line) of the viewer's napari theme; light defaults without a viewer."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme)
        return theme.background.as_hex(), theme.text.as_hex(), theme.current.as_hex()
    except Exception:  # no viewer (benchmarks, scripts) or an unknown theme: matplotlib's own colours
        return "#ffffff", "#000000", "#1f77b4"


class LossPlot(FigureCanvasQTAgg):
    def __init__(self, viewer=None):
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90)
        self.figure.subplots_adjust(left=0.2, bottom=0.25, right=0.97, top=0.95)
        super().__init__(self.figure)
        self.setMinimumHeight(MIN_HEIGHT)
        self.setToolTip("Training loss of the running round, per step.")
        self.axes = self.figure.add_subplot(111)
        self.axes.set_xlabel("step", fontsize=8)
        self.axes.set_ylabel("loss", fontsize=8)
        self.axes.tick_params(labelsize=7)
        (self.line,) = self.axes.plot([], [])
        self.losses: list[float] = []
        self._last_draw = 0.0
        self.viewer = viewer
        self.apply_theme()
        if viewer is not None:
            viewer.events.theme.connect(self.apply_theme)

    def apply_theme(self, _=None) -> None:
        background, foreground, line = theme_colours(self.viewer)
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(foreground)
        self.axes.tick_params(colors=foreground)
        self.axes.xaxis.label.set_color(foreground)
        self.axes.yaxis.label.set_color(foreground)
        self.line.set_color(line)
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
