"""Masks painted outside a folder session, kept on disk while they are painted and given back with their image.

A *Segment* result (or a *Batch folder* result opened in the viewer) touched up and not yet accepted lived only in
napari's layer: closing napari lost it without a question (stop 32's list). Now, once painting pauses, when the layer
goes with its image (napari closing clears every layer) and when the application quits, its edits are written to
:class:`~napari_unetv2.annotation.kept_edits.KeptEdits` under the hash of its image's pixels. When that image is
segmented (or opened with *Batch folder*'s results) again, in this napari or the next, the edits come back as its
mask, the model's new mask beside them as the proposal.

An entry goes when its mask is accepted as it is, when its edits are undone, and when the user deletes the mask while
its image stays open (a choice, which *Restore deleted mask* can still undo in this napari). The folder session keeps
its own drafts and is left out. Writes run on one background thread; the GUI thread only copies the pixels.
"""
from __future__ import annotations

import contextlib
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

import numpy as np

from ..annotation.kept_edits import KeptEdits
from ..corrections.correction_set import image_hash
from ._layers import (
    ACCEPTED_MASKS,
    IMAGE_ID,
    MASK,
    MODEL_VERSION,
    PREDICTED_MASK,
    REMOVED_BY_PLUGIN,
    image_for,
    is_source_image,
    mask_was_edited,
    role_of,
    stored_as_accepted,
    unproxied,
)

IMAGE_KEY = "unetv2_image_key"  # in a mask's metadata: the hash of its image's pixels, the name of its kept entry
SESSION_IMAGE = "unetv2_session_file"  # the folder session's image (it keeps its own drafts): widgets.session's key
KEEP_AFTER_MS = 500  # painting paused this long: the edits are written (as the folder session's drafts)
FLUSH_WAIT_S = 10

_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unetv2-kept-edits")


def accepted_as_it_is(layer) -> bool:
    """The mask's pixels are those it had when accepted (in *Correct & retrain* or a folder session)."""
    if stored_as_accepted(layer):
        return True
    done = layer.metadata.get(ACCEPTED_MASKS) or []
    return bool(done) and image_hash((np.asarray(layer.data) > 0).astype(np.uint8)) in done


class PaintedMaskKeeper:
    """One per viewer (:func:`painted_mask_keeper`): watches the masks that carry an image key."""

    def __init__(self, viewer):
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication

        self._viewer = weakref.ref(unproxied(viewer))  # the keepers' registry must not keep a closed viewer alive
        self.store = KeptEdits()
        self._watched: weakref.WeakSet = weakref.WeakSet()
        self._pending: weakref.WeakSet = weakref.WeakSet()
        self._writes: list[Future] = []
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(KEEP_AFTER_MS)
        self._timer.timeout.connect(self._keep_pending)
        self.viewer.layers.events.inserted.connect(lambda event: self.watch(event.value))
        self.viewer.layers.events.removed.connect(lambda event: self._on_removed(event.value))
        app = QApplication.instance()
        if app is not None:
            me = weakref.ref(self)
            app.aboutToQuit.connect(lambda: me() is not None and me().flush())

    @property
    def viewer(self):
        return self._viewer()

    # ---- which masks ---------------------------------------------------------------------------------------
    def tie(self, mask_layer, key: Optional[str]) -> None:
        """Give ``mask_layer`` its image's key (``image_hash`` of the image's pixels) and watch it from now on."""
        if key:
            unproxied(mask_layer).metadata[IMAGE_KEY] = key
            self.watch(mask_layer)

    def watch(self, layer) -> None:
        layer = unproxied(layer)
        if role_of(layer) != MASK or not layer.metadata.get(IMAGE_KEY) or layer in self._watched:
            return
        self._watched.add(layer)
        schedule = lambda _event=None, layer=layer: self.schedule(layer)  # noqa: E731
        layer.events.paint.connect(schedule)  # a brush stroke (napari's undo step)
        layer.events.data.connect(schedule)  # pixels set at once (a script, a restore, a model's new mask)
        self.schedule(layer)  # judged as it comes (a deleted mask restored is painted already)

    def schedule(self, layer) -> None:
        self._pending.add(unproxied(layer))
        self._timer.start()  # (again: written once painting pauses)

    def _in_session(self, layer) -> bool:
        image = self._image_of(layer)
        return image is not None and SESSION_IMAGE in image.metadata

    def _image_of(self, layer):
        viewer = self.viewer
        return image_for(viewer, layer) if viewer is not None else None

    # ---- writing -------------------------------------------------------------------------------------------
    def judge(self, layer) -> Optional[Future]:
        """Keep ``layer``'s edits, or drop its entry when nothing is left to keep; returns the write's Future."""
        key = layer.metadata.get(IMAGE_KEY)
        data = np.asarray(layer.data)
        if not key or data.ndim != 2 or self._in_session(layer):
            return None
        if mask_was_edited(layer) and not accepted_as_it_is(layer):
            image = self._image_of(layer)
            about = {"image": image.name if image is not None else layer.name, "layer": layer.name,
                     "model_version": layer.metadata.get(MODEL_VERSION) or ""}
            started = layer.metadata.get(PREDICTED_MASK)
            started = np.array(started, copy=True) if isinstance(started, np.ndarray) else None
            return self._submit(self.store.keep, key, data.copy(), about, started)
        return self._submit(self.store.drop, key)

    def _submit(self, *call) -> Future:
        def run():
            with contextlib.suppress(OSError, ValueError):  # a safety net: a disk that refuses it changes nothing else
                call[0](*call[1:])

        self._writes = [f for f in self._writes if not f.done()]
        future = _WRITER.submit(run)
        self._writes.append(future)
        return future

    def _keep_pending(self) -> None:
        pending, self._pending = list(self._pending), weakref.WeakSet()
        viewer = self.viewer
        for layer in pending:
            if viewer is not None and layer in viewer.layers:
                self.judge(layer)

    def _on_removed(self, layer) -> None:
        """A watched mask left the viewer: with its image (napari closing, the image and its mask deleted together),
        its edits are kept; alone, while its image stays open, the user chose to delete it: its entry goes."""
        from qtpy.QtCore import QTimer

        layer = unproxied(layer)
        if layer not in self._watched:
            return
        self._watched.discard(layer)
        self._pending.discard(layer)
        key = layer.metadata.get(IMAGE_KEY)
        if layer.metadata.get(REMOVED_BY_PLUGIN):  # an edited mask the user chose to leave (the plugin removed it)
            self._submit(self.store.drop, key)
            return
        self.judge(layer)
        image_key = layer.metadata.get(IMAGE_ID)

        def deleted_alone() -> None:  # on the next turn: napari's close removes the mask first, its image after
            viewer = self.viewer
            if viewer is not None and any(is_source_image(x) and x.metadata.get(IMAGE_ID) == image_key for x in viewer.layers):
                self._submit(self.store.drop, key)

        QTimer.singleShot(0, deleted_alone)

    def flush(self) -> None:
        """Now, and waited for (the application is quitting): every watched mask still in the viewer is judged."""
        self._timer.stop()
        viewer = self.viewer
        for layer in list(self._watched):
            if viewer is not None and layer in viewer.layers:
                self.judge(layer)
        self.wait()

    def wait(self, timeout: float = FLUSH_WAIT_S) -> None:
        for future in list(self._writes):
            with contextlib.suppress(Exception):
                future.result(timeout=timeout)


_KEEPERS: dict[int, PaintedMaskKeeper] = {}


def painted_mask_keeper(viewer) -> PaintedMaskKeeper:
    """The viewer's keeper (made at the first call: any of the plugin's widgets)."""
    layers = unproxied(viewer).layers
    key = id(layers)
    if key not in _KEEPERS:
        _KEEPERS[key] = PaintedMaskKeeper(viewer)
        weakref.finalize(layers, _KEEPERS.pop, key, None)
    return _KEEPERS[key]
