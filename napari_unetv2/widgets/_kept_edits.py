"""Masks painted outside a folder session, kept on disk while they are painted and given back with their image.

A *Segment* result (or a *Batch folder* result opened in the viewer) touched up and not yet accepted lived only in
napari's layer: closing napari lost it without a question (stop 32's list). Now its edits are written to
:class:`~napari_unetv2.annotation.kept_edits.KeptEdits` under the hash of its image's pixels once painting pauses (at
least every few seconds while it goes on), after an undo, when the layer goes with napari's close (which clears every
layer) and when the application quits. When that image is segmented (or opened with *Batch folder*'s results) again,
in this napari or the next, the edits come back as its mask, the model's new mask beside them as the proposal.

An entry goes when a correction of its image is stored (from its mask or any other layer, or in a folder session),
when its edits are undone, and when the user deletes the mask while napari stays open (a choice, which *Restore
deleted mask* can still undo in this napari). The folder session keeps its own drafts and is left out. Writes run on
one background thread; the GUI thread only copies and hashes the pixels.
"""
from __future__ import annotations

import contextlib
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

import numpy as np

from ..annotation.kept_edits import KeptEdits
from ..corrections.correction_set import image_hash
from ._after_pause import AfterPause
from ._layers import (
    ACCEPTED_MASKS,
    MASK,
    MODEL_SETTINGS,
    MODEL_VERSION,
    PREDICTED_MASK,
    PROPOSAL,
    REMOVED_BY_PLUGIN,
    SESSION_IMAGE,
    image_for,
    mask_was_edited,
    role_of,
    stored_as_accepted,
    unproxied,
)

IMAGE_KEY = "unetv2_image_key"  # in a mask's metadata: the hash of its image's pixels, the name of its kept entry
KEEP_AFTER_MS = 500  # painting paused this long: the edits are written (as the folder session's drafts)
KEEP_AT_LEAST_EVERY_S = 5.0  # ... and at least this often while painting goes on without a pause
IMAGE_NAME = "unetv2_image_name"  # the image's name when its mask was made (said in the entry)
IMAGE_FILE = "unetv2_image_file"  # the name of the image's file, when it came from one (the exported mask's name)
FLUSH_WAIT_S = 10

_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unetv2-kept-edits")


def accepted_as_it_is(layer, digest: Optional[str] = None) -> bool:
    """The mask's pixels are those it had when accepted (in *Correct & retrain* or a folder session); ``digest``: the
    pixels' ``image_hash``, when the caller has it."""
    if stored_as_accepted(layer, digest):
        return True
    done = layer.metadata.get(ACCEPTED_MASKS) or []
    if not done:
        return False
    data = np.asarray(layer.data)
    if digest is None or data.dtype != np.uint8 or data.max(initial=0) > 1:
        digest = image_hash((data > 0).astype(np.uint8))  # (the 0/1 mask's hash: a 0/1 uint8 mask's own)
    return digest in done


class PaintedMaskKeeper:
    """One per viewer (:func:`painted_mask_keeper`): watches the masks that carry an image key.

    Judged by image and role, not by layer: the masks of one image (the image opened twice, a Batch result and a
    Segment result) share one entry, which holds the edits painted last of those not yet accepted, and an unedited copy
    never drops its twin's edits (trial of session 33); its proposals share another ("slot": (image key, role)), so
    a mask and a proposal both painted on are both kept (a second verification of session 33)."""

    def __init__(self, viewer):
        from qtpy.QtWidgets import QApplication

        self._viewer = weakref.ref(unproxied(viewer))  # the keepers' registry must not keep a closed viewer alive
        self.store = KeptEdits()
        self._watched: weakref.WeakSet = weakref.WeakSet()
        self._pending: set[tuple[str, str]] = set()  # slots to judge once painting pauses
        self._painted_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> its last change
        self._superseded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> its pixels' hash when a
        # correction of its image was stored from elsewhere: those edits are not kept (painting on makes them new)
        self._written: dict[tuple, str] = {}  # slot -> hash of the mask written last ("" once dropped)
        self._written_at: dict[tuple, float] = {}  # slot -> when the mask written last was painted
        self._writes: list[Future] = []
        # layer -> its pixels' hash, forgotten when they change: a pause judged a layer by hashing its pixels up to five
        # times in the GUI thread, about 2 s for a 100-frame 1080p clip (stop 38's list); once now, and none when
        # nothing changed since (a layer shown or selected)
        self._digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._timer = AfterPause(self._keep_pending, KEEP_AFTER_MS, KEEP_AT_LEAST_EVERY_S)
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
    def tie(self, mask_layer, key: Optional[str], image_name: str = "", restored: bool = False,
            image_file: Optional[str] = None) -> None:
        """Give ``mask_layer`` its image's key (``image_hash`` of the image's pixels) and watch it from now on.
        ``restored``: its pixels are the entry's, just given back (not written again: "kept <time>" stays the time they
        were painted, not the time they were last shown). ``image_file``: the name of the image's file, if any (what
        ``unetv2 kept-edits export`` names the mask after)."""
        if key:
            layer = unproxied(mask_layer)
            layer.metadata[IMAGE_KEY] = key
            if image_name:
                layer.metadata[IMAGE_NAME] = image_name
            if image_file:
                layer.metadata[IMAGE_FILE] = image_file
            if restored:
                self._written[(key, role_of(layer))] = self._digest(layer)
            self.watch(layer)

    def tie_like(self, layer, tied) -> None:
        """Tie ``layer`` (a proposal just made) to the image the mask ``tied`` is tied to, if it is: a proposal made by
        *Use this version*, *Roll back* or a round, painted on, was never kept on disk, and lost at a close or a crash
        (clinician trial of session 43)."""
        if layer is None or tied is None or layer is tied:
            return
        metadata = unproxied(tied).metadata
        if metadata.get(IMAGE_KEY):
            self.tie(layer, metadata[IMAGE_KEY], metadata.get(IMAGE_NAME, ""), image_file=metadata.get(IMAGE_FILE))

    def watch(self, layer) -> None:
        layer = unproxied(layer)
        # a proposal painted on is the user's work as much as the mask (the edits painted last are kept, as the mask)
        if role_of(layer) not in (MASK, PROPOSAL) or not layer.metadata.get(IMAGE_KEY) or layer in self._watched:
            return
        self._watched.add(layer)
        forget = self._digests.pop
        schedule = lambda _event=None, layer=layer: (forget(layer, None), self.schedule(layer))  # noqa: E731
        look = lambda _event=None, layer=layer: (forget(layer, None), self.schedule(layer, painted=False))  # noqa: E731
        layer.events.paint.connect(schedule)  # a brush stroke (napari's undo step)
        layer.events.data.connect(schedule)  # pixels set at once (a script, a restore, a model's new mask)
        # napari's undo and redo (Ctrl+Z) say nothing else; nor is it painting (a thumbnail is also redrawn when the
        # layer is shown or selected: that made an older mask the one "painted last")
        layer.events.thumbnail.connect(look)
        self.schedule(layer)  # judged as it comes (a deleted mask restored is painted already)

    def schedule(self, layer, painted: bool = True) -> None:
        layer = unproxied(layer)
        key = layer.metadata.get(IMAGE_KEY)
        if key:
            if painted or layer not in self._painted_at:
                self._painted_at[layer] = time.monotonic()
            self._pending.add((key, role_of(layer)))
            self._timer.poke()

    def _in_session(self, layer) -> bool:
        image = self._image_of(layer)
        return image is not None and SESSION_IMAGE in image.metadata

    def _image_of(self, layer):
        viewer = self.viewer
        return image_for(viewer, layer) if viewer is not None else None

    def _layers_of(self, slot: tuple, also=None) -> list:
        """The watched layers of ``slot`` in the viewer (``also``: one just removed); a slot of role None: any role."""
        viewer, (key, role) = self.viewer, slot
        found = [x for x in list(self._watched) if x.metadata.get(IMAGE_KEY) == key and role in (None, role_of(x))
                 and viewer is not None and x in viewer.layers]
        return found + ([also] if also is not None and also not in found else [])

    def _digest(self, layer) -> str:
        """The layer's pixels' ``image_hash``, computed once until they change (its paint, data and thumbnail events;
        napari's undo says only the last)."""
        digest = self._digests.get(layer)
        if digest is None:
            digest = self._digests[layer] = image_hash(np.asarray(layer.data))
        return digest

    def _to_keep(self, layer) -> bool:
        if np.asarray(layer.data).ndim not in (2, 3) or self._in_session(layer):  # (a clip's stack too: trial 38)
            return False
        digest = self._digest(layer)
        if not mask_was_edited(layer, digest) or accepted_as_it_is(layer, digest):
            return False
        superseded = self._superseded.get(layer)
        return superseded is None or superseded != digest

    # ---- writing -------------------------------------------------------------------------------------------
    def judge(self, slot: tuple, also=None) -> Optional[Future]:
        """Write the slot's entry (image key, role): the edits painted last on one of its layers (``also``: one just
        removed), or drop it when none is left to keep; returns the write's Future (None when the entry is as it
        should be)."""
        key, role = slot
        layers = [x for x in self._layers_of(slot, also) if not self._in_session(x)]
        if not layers:
            return None
        edited = [x for x in layers if self._to_keep(x)]
        if not edited:  # undone, or accepted: its entry goes, if this viewer wrote it or gave it back (an unedited mask
            # says nothing of an entry it never held: edits older than a correction stored elsewhere, not given back
            # and said to be kept, went with the model's new mask; verification of session 34)
            return self._drop(slot) if slot in self._written else None
        layer = max(edited, key=lambda x: self._painted_at.get(x, 0.0))
        painted_at = self._painted_at.get(layer, 0.0)
        if painted_at < self._written_at.get(slot, -1.0):
            return None  # the entry holds later edits, of a copy that went first (napari's close clears from the top)
        digest = self._digest(layer)
        if self._written.get(slot) == digest:
            return None
        data = np.asarray(layer.data).copy()  # (the writer's own: painting goes on while it writes)
        self._written[slot], self._written_at[slot] = digest, painted_at
        image = self._image_of(layer)
        about = {"image": layer.metadata.get(IMAGE_NAME) or (image.name if image is not None else layer.name),
                 "model_version": layer.metadata.get(MODEL_VERSION) or "",
                 # how that model made the mask they were painted from: a correction of them records it (session 42)
                 "model_settings": layer.metadata.get(MODEL_SETTINGS) or ""}
        if layer.metadata.get(IMAGE_FILE):
            about["file"] = layer.metadata[IMAGE_FILE]
        started = layer.metadata.get(PREDICTED_MASK)
        started = np.array(started, copy=True) if isinstance(started, np.ndarray) else None
        return self._submit(self.store.keep, key, data, about, started, role)

    def _drop(self, slot: tuple) -> Optional[Future]:
        self._written_at.pop(slot, None)
        if self._written.get(slot) == "":
            return None
        self._written[slot] = ""
        return self._submit(self.store.drop, *slot)

    def correction_stored(self, key: Optional[str]) -> None:
        """A correction of the image ``key`` was stored (from any of its masks, or a layer the user drew): edits kept
        for it from before are superseded, and so are its other masks' present edits (painting on them again keeps
        them anew). Without this, a later Segment gave back old edits over an accepted image as "never accepted"."""
        if not key:
            return
        for layer in self._layers_of((key, None)):
            self._digests.pop(layer, None)  # (hashed afresh: what is stored is what it holds now)
            self._superseded[layer] = self._digest(layer)
        self._drop_entries(key)

    def left(self, key: Optional[str]) -> None:
        """The user chose to leave the image ``key``'s kept edits (its mask's and its proposal's, shown in a folder
        session and left there with a second Next): its entries go, unless a layer of the image open here holds edits
        (judged again)."""
        if key:
            for slot in self._drop_entries(key):
                self.judge(slot)

    def _drop_entries(self, key: str) -> tuple:
        """Drop the image ``key``'s entries (its mask's and its proposal's), whatever this viewer knew it wrote (and when
        what it held was painted); returns their slots."""
        slots = ((key, MASK), (key, PROPOSAL))
        for slot in slots:
            self._written.pop(slot, None)
            self._drop(slot)
        return slots

    def _submit(self, *call) -> Future:
        def run():
            with contextlib.suppress(OSError, ValueError):  # a safety net: a disk that refuses it changes nothing else
                call[0](*call[1:])

        self._writes = [f for f in self._writes if not f.done()]
        future = _WRITER.submit(run)
        self._writes.append(future)
        return future

    def _keep_pending(self) -> None:
        pending, self._pending = sorted(self._pending), set()
        for slot in pending:
            self.judge(slot)

    def _on_removed(self, layer) -> None:
        """A watched mask left the viewer. Its edits are written now, as it goes (napari's close clears every layer,
        the window after them); an unedited one changes nothing (the image opened twice: the painted copy, cleared
        first, kept its edits, and the unedited copy cleared after it dropped them; verification of session 33). If, a
        turn of the event loop later, the viewer's window is still open, the user deleted it (alone, with its image,
        after closing its image, or the last layers of the viewer): a choice, and its image's entry goes unless
        another of its masks holds edits."""
        from qtpy.QtCore import QTimer

        layer = unproxied(layer)
        if layer not in self._watched:
            return
        self._watched.discard(layer)
        self._digests.pop(layer, None)  # (its last pixels hashed afresh: an event napari did not send changes nothing)
        slot = (layer.metadata.get(IMAGE_KEY), role_of(layer))
        if layer.metadata.get(REMOVED_BY_PLUGIN):  # an edited mask the user chose to leave (the plugin removed it)
            self.judge(slot)
            return
        if self._to_keep(layer):
            self.judge(slot, also=layer)

        data = layer.data

        def deleted_by_the_user() -> None:
            viewer = self.viewer
            if viewer is None or not window_open(viewer):
                return  # napari closed: what was painted stays kept
            if any(x.data is data for x in viewer.layers):
                return  # converted (napari's Convert to Image: another layer on the same pixels), not deleted: the
                # edits stay kept (they were dropped, and only the Image layer held them; verification of session 37)
            if self._layers_of(slot):
                self._written_at.pop(slot, None)  # the deleted one's edits are not the ones to keep any more
                self.judge(slot)  # another layer of the image in that role holds edits, or none does
            else:
                self._drop(slot)

        QTimer.singleShot(0, deleted_by_the_user)

    def flush(self) -> None:
        """Now, and waited for (the application is quitting): every watched image is judged."""
        self._timer.stop()
        self._digests.clear()  # (hashed afresh: the last chance to keep them)
        slots = {(x.metadata.get(IMAGE_KEY), role_of(x)) for x in list(self._watched)} | self._pending
        self._pending = set()
        for slot in sorted(slot for slot in slots if slot[0]):
            self.judge(slot)
        self.wait()

    def wait(self, timeout: float = FLUSH_WAIT_S) -> None:
        for future in list(self._writes):
            with contextlib.suppress(Exception):
                future.result(timeout=timeout)


def window_open(viewer) -> bool:
    """Whether the viewer's window is still there: napari's ``Window.close`` removes its Qt window (after
    ``Viewer.close`` has cleared the layers), and a delete leaves it (a viewer made without a window counts as open)."""
    window = getattr(viewer, "window", None)
    return window is None or hasattr(window, "_qt_window")


_KEEPERS: dict[int, PaintedMaskKeeper] = {}


def painted_mask_keeper(viewer) -> PaintedMaskKeeper:
    """The viewer's keeper (made at the first call: any of the plugin's widgets)."""
    layers = unproxied(viewer).layers
    key = id(layers)
    if key not in _KEEPERS:
        _KEEPERS[key] = PaintedMaskKeeper(viewer)
        weakref.finalize(layers, _KEEPERS.pop, key, None)
    return _KEEPERS[key]
