"""Batch: segment every image of a folder into OUT/<stem>.png with the model in use (same runner as
``unetv2 predict``), in a worker with progress and cancel."""
from __future__ import annotations

import threading
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton
from qtpy.QtCore import QObject, Signal

from ..devices import available_devices
from ..errors import EXPECTED_ERRORS, one_line
from ..inference.batch import predict_folder
from .segment import get_predictor


class _Progress(QObject):
    advanced = Signal(int, int, str)


class BatchWidget(Container):
    def __init__(self, napari_viewer=None):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.input = FileEdit(label="input folder", mode="d")
        self.output = FileEdit(label="output folder", mode="d")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.probabilities = CheckBox(text="also save probabilities (TIFF)", value=False)
        self.resume = CheckBox(text="continue: skip finished images", value=True)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(label="status", value="")
        self.extend([self.input, self.output, self.device, self.probabilities, self.resume, self.run_button,
                     self.cancel_button, self.progress, self.status])
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._signals = _Progress()
        self._signals.advanced.connect(self._on_progress)
        self._cancel = threading.Event()
        self.worker = None

    def _on_progress(self, done: int, total: int, name: str) -> None:
        self.progress.max, self.progress.value = max(total, 1), done
        self.status.value = f"{done}/{total}: {name}"

    def run(self, _=None):
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return None
        source, target = Path(self.input.value), Path(self.output.value)
        if not source.is_dir() or str(self.output.value) in ("", "."):
            self.status.value = "choose an input folder and an output folder"
            return None
        device, save_prob, resume = self.device.value, bool(self.probabilities.value), bool(self.resume.value)
        self._cancel.clear()

        def job():
            try:
                return predict_folder(get_predictor(None, device), source, target, save_probabilities=save_prob,
                                      resume=resume, progress=self._signals.advanced.emit,
                                      should_stop=self._cancel.is_set)
            except EXPECTED_ERRORS as err:  # a full disk, a read-only folder, ...: one line in the status
                # Returned as text: superqt re-raises a *returned* exception as a worker error.
                return one_line(err)

        self.worker = create_worker(job, _start_thread=False)
        self.worker.returned.connect(self._on_done)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.worker.start()
        return self.worker

    def cancel(self, _=None) -> None:
        self._cancel.set()

    def _on_done(self, result) -> None:
        if isinstance(result, str):
            self.status.value = f"error: {result}"
            return
        stopped = " (cancelled: finished images kept, none half-written)" if self._cancel.is_set() else ""
        self.status.value = result.describe().splitlines()[0] + stopped

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
