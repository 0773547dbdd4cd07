"""The Segment widget: pick an image layer and a model, press Segment, get probability, mask and attention.

The model runs in a napari thread worker; the GUI thread only gathers parameters and adds layers.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QObject, Signal

from ..checkpoints import ModelStore
from ..devices import available_devices
from ..inference import Prediction, PredictionCancelled, Predictor
from ..inference.predictor import check_image_shape
from ..storage import default_model_store_dir
from ._layers import show_prediction

CURRENT = "current version"
FROM_FILE = "from file..."
MODEL_DEFAULT_MODE = "model default"


class _Progress(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    advanced = Signal(int, int)


_PREDICTOR_CACHE: dict[tuple[str, str], Predictor] = {}


def current_checkpoint() -> Optional[Path]:
    """The model in use: the model store's current version, else the bundled default."""
    return ModelStore(default_model_store_dir()).current_checkpoint()


def get_predictor(checkpoint: Optional[Path], device: str) -> Predictor:
    """One loaded model per (checkpoint, device); None = the current version. Call from a worker thread."""
    checkpoint = checkpoint or current_checkpoint()
    key = (str(checkpoint), device)
    if key not in _PREDICTOR_CACHE:
        if len(_PREDICTOR_CACHE) >= 3:  # every retrain round adds a version: keep only the recent models
            _PREDICTOR_CACHE.pop(next(iter(_PREDICTOR_CACHE)))
        _PREDICTOR_CACHE[key] = Predictor(checkpoint, device=device)
    return _PREDICTOR_CACHE[key]


class SegmentWidget(Container):
    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.model_source = ComboBox(label="model", choices=[CURRENT, FROM_FILE], value=CURRENT)
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.safetensors", visible=False)
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.threshold = FloatSlider(label="threshold", min=0.05, max=0.95, step=0.05, value=0.5)
        self.mode = ComboBox(label="mode", choices=[MODEL_DEFAULT_MODE, "resize", "tile"], value=MODEL_DEFAULT_MODE)
        self.tile_size = SpinBox(label="tile size", min=64, max=4096, step=32, value=512)
        self.tta = CheckBox(text="flip test-time augmentation", value=False)
        self.attention = CheckBox(text="show SDI attention maps", value=True)
        self.run_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(label="status", value=self._model_status())
        self.extend([self.image, self.model_source, self.checkpoint, self.device, self.threshold, self.mode,
                     self.tile_size, self.tta, self.attention, self.run_button, self.cancel_button, self.progress,
                     self.status])
        self.model_source.changed.connect(self._on_source)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self.reset_choices)
        self.viewer.layers.events.removed.connect(self.reset_choices)
        self._signals = _Progress()
        self._signals.advanced.connect(self._on_progress)
        self._cancel = threading.Event()
        self.worker = None
        self.last_result: dict = {}

    def _image_layers(self, _=None) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and not _is_our_output(layer)]

    def _model_status(self) -> str:
        if self.model_source.value == FROM_FILE:
            return "model: chosen file"
        path = current_checkpoint()
        if path is None:
            return "model: UNTRAINED (no bundled weights installed)"
        return f"model: {path.parent.name if path.name == 'model.safetensors' else path.stem}"

    def _on_source(self, value: str) -> None:
        self.checkpoint.visible = value == FROM_FILE
        self.status.value = self._model_status()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.status.value = f"segmenting: {done}/{total}"

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def run(self, _=None):
        """Start a prediction worker; returns it (tests wait on it). Errors go to the status line."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        if self.busy:
            return None
        layer = self.image.value
        if layer is None:
            self.status.value = "choose an image layer first"
            show_error("U-Net v2: choose an image layer first.")
            return None
        checkpoint = None
        if self.model_source.value == FROM_FILE:
            checkpoint = Path(self.checkpoint.value)
            if not checkpoint.is_file():
                self.status.value = f"checkpoint not found: {checkpoint}"
                show_error(f"U-Net v2: checkpoint not found: {checkpoint}")
                return None
        data = layer.data[0] if layer.multiscale else layer.data
        try:
            check_image_shape(tuple(data.shape), bool(layer.rgb))
        except ValueError as err:  # answered at once, in the GUI thread: nothing starts, nothing is added
            self._on_error(err)
            return None
        params = dict(
            threshold=float(self.threshold.value),
            mode=None if self.mode.value == MODEL_DEFAULT_MODE else self.mode.value,
            tile_size=int(self.tile_size.value),
            tta=bool(self.tta.value),
            return_attention=bool(self.attention.value),
            rgb=bool(layer.rgb),
        )
        device = self.device.value
        self._cancel.clear()

        def job():
            predictor = get_predictor(checkpoint, device)
            start = time.time()
            try:
                prediction = predictor.predict(np.asarray(data), progress=self._signals.advanced.emit,
                                               should_stop=self._cancel.is_set, **params)
            except PredictionCancelled:
                return None  # a normal ending, not an error
            except (ValueError, RuntimeError, OSError) as err:  # bad input, out of memory, unreadable file
                return err
            return predictor, prediction, time.time() - start

        self.worker = create_worker(job, _start_thread=False)
        self.worker.returned.connect(lambda result: self._on_done(layer, result))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.progress.value = 0
        self.status.value = "loading model..."
        self.worker.start()
        return self.worker

    def cancel(self, _=None) -> None:
        if self.busy:
            self._cancel.set()
            self.status.value = "cancelling..."

    def _on_done(self, layer, result: Optional[tuple[Predictor, Prediction, float]]) -> None:
        if result is None:
            self.status.value = "cancelled: nothing was added"
            return
        if isinstance(result, Exception):
            self._on_error(result)
            return
        predictor, prediction, seconds = result
        if layer not in self.viewer.layers:
            self.status.value = "the image layer was removed; nothing added"
            return
        self.last_result = show_prediction(self.viewer, layer, prediction, predictor.config.version)
        kept = " (your edited mask was kept; new mask added beside it)" if self.last_result["kept_edited"] else ""
        untrained = " UNTRAINED MODEL: outputs are meaningless." if predictor.is_untrained else ""
        self.status.value = f"done in {seconds:.1f} s{kept}.{untrained}"

    def _on_error(self, err: Exception) -> None:
        from napari.utils.notifications import show_error

        self.status.value = f"error: {err}"
        show_error(f"U-Net v2: {err}")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False


def _is_our_output(layer) -> bool:
    return layer.name.endswith(" probability") or " spatial attention " in layer.name
