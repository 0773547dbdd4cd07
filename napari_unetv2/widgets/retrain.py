"""Correct & retrain: accept edited masks into a correction set, fine-tune in a worker, keep versions.

The widget only gathers parameters, starts workers and updates layers; the round itself is
:func:`napari_unetv2.retrain.retrain_events` (the same fine-tuning routine as ``unetv2 finetune``).
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, Select, SpinBox

from ..checkpoints import ModelStore
from ..corrections import CorrectionSet
from ..corrections.retrain import retrain_events
from ..devices import available_devices
from ..engine.pairs import find_pairs
from ..interactive import CLICKS_METADATA
from ..storage import default_corrections_dir, default_model_store_dir
from ._layers import PREDICTED_AT, PREDICTED_MASK, show_prediction
from ._loss_plot import LossPlot
from .segment import get_predictor

BUNDLED_LABEL = "bundled default"


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class RetrainWidget(Container):
    def __init__(self, napari_viewer, corrections_dir: Optional[Path] = None, store_dir: Optional[Path] = None):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.store = ModelStore(store_dir or default_model_store_dir())
        self.store.remove_stale_runs()
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.folder = FileEdit(label="correction set", mode="d", value=str(corrections_dir or default_corrections_dir()))
        self.accept_button = PushButton(text="Accept correction")
        self.entries = Select(label="corrections", choices=[])
        self.remove_button = PushButton(text="Remove selected")
        self.train_parts = ComboBox(label="train", choices=["sdi-decoder", "all"], value="sdi-decoder")
        self.epochs = SpinBox(label="epochs", min=1, max=500, value=20)
        self.replay = FileEdit(label="replay pairs (optional)", mode="d", value="")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.retrain_button = PushButton(text="Retrain")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(label="status", value="")
        self.scores = Label(label="held-out Dice", value="-")
        self.versions = ComboBox(label="versions", choices=self._version_choices)
        self.use_button = PushButton(text="Use this version")
        self.rollback_button = PushButton(text="Roll back")
        self.extend([self.image, self.folder, self.accept_button, self.entries, self.remove_button, self.train_parts,
                     self.epochs, self.replay, self.device, self.retrain_button, self.cancel_button, self.progress,
                     self.status, self.scores, self.versions, self.use_button, self.rollback_button])
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)

        self.accept_button.changed.connect(self.accept_correction)
        self.remove_button.changed.connect(self.remove_selected)
        self.retrain_button.changed.connect(self.retrain)
        self.cancel_button.changed.connect(self.cancel)
        self.use_button.changed.connect(self.use_selected_version)
        self.rollback_button.changed.connect(self.roll_back)
        self.folder.changed.connect(self.refresh_entries)
        self.viewer.layers.events.inserted.connect(self.reset_choices)
        self.viewer.layers.events.removed.connect(self.reset_choices)
        self._cancel = threading.Event()
        self.worker = None
        self.segment_worker = None
        self.last_version = None
        self.resegmented = 0  # completed re-segmentation rounds
        self.refresh_entries()
        self._show_current()

    # ---- corrections -------------------------------------------------------------------------------
    @property
    def correction_set(self) -> CorrectionSet:
        return CorrectionSet(Path(self.folder.value))

    def _image_layers(self, _=None) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and f"{layer.name} mask" in self.viewer.layers]

    def refresh_entries(self, _=None) -> None:
        entries = self.correction_set.entries()
        self.entries.choices = [(f"{e.source} ({e.pixels_changed} px changed, {e.created})", e.id) for e in entries]
        self.entries.value = []

    def accept_correction(self, _=None):
        """Store the chosen image with its (edited) ``<image> mask`` layer in the correction set."""
        layer = self.image.value
        if layer is None:
            self.status.value = "segment an image first (no image with a mask layer)"
            return None
        mask_layer = self.viewer.layers[f"{layer.name} mask"]
        started = mask_layer.metadata.get(PREDICTED_AT)
        try:
            entry = self.correction_set.add(
                np.asarray(layer.data), np.asarray(mask_layer.data), source=layer.name,
                model_version=mask_layer.metadata.get("model_version", ""),
                predicted_mask=mask_layer.metadata.get(PREDICTED_MASK),
                seconds_spent=round(time.time() - started, 1) if started else None,
                clicks=mask_layer.metadata.get(CLICKS_METADATA),
            )
        except (ValueError, OSError) as err:
            self.status.value = f"not accepted: {err}"
            return None
        self.refresh_entries()
        self.status.value = f"accepted {entry.id}: {entry.pixels_changed} pixels changed"
        return entry

    def remove_selected(self, _=None) -> None:
        for entry_id in list(self.entries.value):
            self.correction_set.remove(entry_id)
        self.refresh_entries()

    # ---- versions ------------------------------------------------------------------------------------
    def _version_choices(self, _=None) -> list:
        choices = [(BUNDLED_LABEL, None)]
        for cfg in self.store.versions():
            dice = cfg.metrics.get("held_out_after", {}).get("dice")
            label = f"{cfg.version} (parent {cfg.parent or '-'}" + (f", held-out Dice {dice:.3f})" if dice is not None else ")")
            choices.append((label, cfg.version))
        return choices

    def _show_current(self) -> None:
        current = self.store.current
        self.status.value = f"model in use: {current or BUNDLED_LABEL}"

    def use_selected_version(self, _=None):
        self.store.use(self.versions.value)
        self._show_current()
        return self.resegment()

    def roll_back(self, _=None):
        try:
            version = self.store.roll_back()
        except ValueError as err:
            self.status.value = str(err)
            return None
        self.reset_choices()
        self.versions.value = version
        self._show_current()
        return self.resegment()

    def resegment(self):
        """Segment every open image that has a probability layer again, with the model now in use."""
        from napari.layers import Image
        from napari.qt.threading import create_worker

        layers = [layer for layer in self.viewer.layers if isinstance(layer, Image) and f"{layer.name} probability" in self.viewer.layers]
        if not layers:
            return None
        checkpoint, device = self.store.current_checkpoint(), self.device.value
        jobs = [(layer, np.asarray(layer.data), bool(layer.rgb), any(" spatial attention " in x.name and x.name.startswith(layer.name)
                                                            for x in self.viewer.layers)) for layer in layers]

        def job():
            predictor = get_predictor(checkpoint, device)
            return predictor, [(layer, predictor.predict(d, rgb=rgb, return_attention=att)) for layer, d, rgb, att in jobs]

        def done(result):
            predictor, predictions = result
            for layer, prediction in predictions:
                if layer in self.viewer.layers:
                    show_prediction(self.viewer, layer, prediction, predictor.config.version)
            self.resegmented += 1
            self.status.value = f"re-segmented {len(predictions)} image(s) with {predictor.config.version or 'the model'}"

        self.segment_worker = create_worker(job, _start_thread=False)
        self.segment_worker.returned.connect(done)
        self.segment_worker.start()
        return self.segment_worker

    # ---- training ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.worker is not None

    def retrain(self, _=None):
        from napari.qt.threading import create_worker

        if self.busy:
            return None
        corrections = self.correction_set
        if len(corrections) == 0:
            self.status.value = "the correction set is empty: accept a corrected mask first"
            return None
        if self.store.current_checkpoint() is None:
            self.status.value = "no model to fine-tune: no bundled weights are installed and the store is empty"
            return None
        replay = None
        replay_dir = str(self.replay.value)
        if replay_dir not in ("", "."):
            try:
                replay = find_pairs(Path(replay_dir)).pairs
            except ValueError as err:
                self.status.value = f"replay folder: {err}"
                return None
        params = dict(train_parts=self.train_parts.value, epochs=int(self.epochs.value), replay=replay,
                      device=self.device.value)
        self._cancel.clear()

        def job():
            with contextlib.closing(retrain_events(self.store, corrections, **params)) as events:
                while True:
                    try:
                        event = next(events)
                    except StopIteration as finished:
                        return finished.value  # the RetrainOutcome
                    yield event
                    if self._cancel.is_set():
                        return None  # closing() runs the routine's clean-up in this thread

        self.worker = create_worker(job, _start_thread=False)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(lambda err: setattr(self.status, "value", f"error: {err}"))
        self.worker.finished.connect(self._on_finished)
        self.retrain_button.enabled, self.cancel_button.enabled = False, True
        self.plot.clear()
        self.status.value = "preparing (scoring the held-out corrections with the current model)..."
        self.worker.start()
        return self.worker

    def cancel(self, _=None) -> None:
        if self.busy:
            self._cancel.set()
            self.status.value = "cancelling..."

    def _on_event(self, event) -> None:
        if event.kind == "step":
            total = event.epochs * event.steps_per_epoch
            self.progress.max = max(total, 1)
            self.progress.value = (event.epoch - 1) * event.steps_per_epoch + event.step
            self.plot.add(event.loss)
            self.status.value = f"epoch {event.epoch}/{event.epochs}, loss {event.loss:.3f}, ETA {_fmt_eta(event.eta_s)}"

    def _on_returned(self, outcome) -> None:
        if outcome is None:
            self.status.value = "cancelled: the model in use and the correction set are unchanged"
            return
        result, config = outcome.result, outcome.config
        self.last_version = config.version
        before, after = result.before.get("dice"), result.after.get("dice")
        if before is not None:
            self.scores.value = f"{before:.3f} -> {after:.3f} on {len(result.held_out)} held-out image(s)"
        else:
            self.scores.value = "no held-out corrections (accept 3 or more to score)"
        self.reset_choices()
        self.versions.value = config.version
        config = {c.version: c for c in self.store.versions()}.get(self.last_version)
        before = config.metrics.get("held_out_before", {}).get("dice") if config else None
        after = config.metrics.get("held_out_after", {}).get("dice") if config else None
        if before is not None and after < before:
            # Never switch to a model that scored worse on the held-out corrections without being asked.
            self.status.value = (f"new version {self.last_version} scored lower on the held-out corrections; "
                                 "the current model stays in use ('Use this version' to switch anyway)")
            return
        self.store.use(self.last_version)
        self.status.value = f"now using {self.last_version}; re-segmenting open images ('Roll back' to undo)"
        self.resegment()

    def _on_finished(self) -> None:
        self.worker = None
        self.retrain_button.enabled, self.cancel_button.enabled = True, False
