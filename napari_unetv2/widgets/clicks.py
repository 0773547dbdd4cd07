"""Correct with clicks: positive/negative clicks and a box that edit the ``<image> mask`` layer.

Left click on the ``<image> clicks`` layer adds (green point), right click or Shift+click removes (red
point), as in napari's SAM plugins; Ctrl+Z on that layer or *Undo last click* takes the last one back.
A rectangle drawn on the ``<image> box`` layer runs the model again on that crop (in a worker: the GUI
thread never waits on the model) and replaces the mask inside the rectangle only. Clicks change the
mask layer's own pixels, so the brush stays usable in between, and *Accept* in *Correct & retrain*
stores the result with the number of clicks (``metadata["unetv2_clicks"]``) in its provenance.
The click logic itself is :class:`napari_unetv2.interactive.ClickSession` (Qt-free).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np
from magicgui.widgets import ComboBox, Container, PushButton

from ..interactive import CLICKS_METADATA, ClickSession
from ..interactive.box import box_probability, clip_box
from ._base import floor_docks_later, narrow_chooser, when_alive, wrapping_label
from ._layers import (
    BOX,
    CLICKS,
    IMAGE_ID,
    MASK,
    MODEL_VERSION,
    PROBABILITY,
    ROLE,
    bring_into_view,
    click_layers,
    converted_mask_note,
    follow_removed_images,
    forget_brush_history,
    has_brush_history,
    image_for,
    image_id,
    in_view,
    is_source_image,
    layer_of,
    role_of,
    same_layer,
)
from ._state import IN_USE, model_in_use
from ._workers import make_worker, once
from .segment import follow_active_image, keep_choices_in_order

HELP = ("left click: add · right click or Shift+click: remove · Ctrl+Z: undo\n"
        "(on the mask: its brush strokes since the last click, then the clicks)\n"
        "draw a rectangle on the box layer: segment again inside it")


MARK_COLOURS = {True: "lime", False: "red"}  # a click that adds, one that removes


class ClickWidget(Container):
    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.image = narrow_chooser(ComboBox(label="image", choices=self._image_layers))
        keep_choices_in_order(self.image)
        self.start_button = PushButton(text="Click on this image")
        self.undo_button = PushButton(text="Undo last click")
        # wrapping: a plain Label widened the dock column with each long message and squeezed the canvas (trial 36)
        self.status = wrapping_label("status", "segment an image first, then start clicking")
        self.extend([self.image, self.start_button, self.undo_button, wrapping_label("", HELP), self.status])
        self.start_button.changed.connect(self.start)
        self.undo_button.changed.connect(self.undo)
        follow_removed_images(self.viewer)
        floor_docks_later(self)  # the plugin's other docks leave it room (trial of session 35)
        self.sessions: dict[str, ClickSession] = {}  # by image id
        self._not_clickable = ""  # why the image selected in the layer list cannot be clicked on (it is not offered)
        self.points = self.box_layer = None
        self._placing = 0  # > 0 while the widget itself adds or removes a click's mark
        self.worker = None
        # on the image being worked on, as Segment and Correct & retrain are (it stayed on the last one clicked)
        follow_active_image(self, self.image)
        self.image.changed.connect(self._on_image_chosen)
        # an image selected that cannot be clicked on: said, and Start does not go to the one chosen before
        self.viewer.layers.selection.events.active.connect(self._on_active)
        self.image.native.activated.connect(self._chosen_here)  # (also the image chosen already: no change event)
        # the chooser emptied by a closed image emits no change (after follow_active_image has reset the choices)
        self.viewer.layers.events.removed.connect(self._after_removal)
        # the folder session shows its next image in the same layer, renamed: the status went on naming the image
        # accepted and gone (clinician trial of session 39)
        self.viewer.layers.events.renamed.connect(self._after_rename)

    def _after_removal(self, _event=None) -> None:
        try:
            if self.image.value is None:
                self._on_image_chosen()
        except RuntimeError:  # this widget was closed; the viewer outlives it
            self.viewer.layers.events.removed.disconnect(self._after_removal)

    def _after_rename(self, event=None) -> None:
        try:
            index = getattr(event, "index", None)
            renamed = self.viewer.layers[index] if isinstance(index, int) and 0 <= index < len(self.viewer.layers) else None
            if self.image.value is not None and same_layer(renamed, self.image.value):
                self.image.reset_choices()  # (the chooser shows layers by name)
                self._on_image_chosen()
        except RuntimeError:  # this widget was closed; the viewer outlives it
            self.viewer.layers.events.renamed.disconnect(self._after_rename)

    def _on_image_chosen(self, _=None) -> None:
        """Another image: its own click marks shown (another's, stacked over it, hidden) and its own state said."""
        self._not_clickable = ""  # an image chosen (here, or by selecting it): Start goes to it
        layer = self.image.value
        for other in self.viewer.layers:
            if role_of(other) in (CLICKS, BOX):  # (not over a hidden image: trial of session 37)
                other.visible = layer is not None and layer.visible and same_layer(image_for(self.viewer, other), layer)
        # the marks that clicks and undo add or remove are this image's (Undo removed the other image's last point)
        self.points = layer_of(self.viewer, layer, CLICKS) if layer is not None else None
        self.box_layer = layer_of(self.viewer, layer, BOX) if layer is not None else None
        if layer is None:  # the last segmented image closed: the status spoke of it (first-hour trial of session 28)
            self.status.value = "no segmented image open: segment an image first, then start clicking"
            return
        session = self.sessions.get(image_id(layer))
        mask = layer_of(self.viewer, layer, MASK)
        active = self.viewer.layers.selection.active  # (a proxy: compared by role and image, not identity)
        clicking = (active is not None and active.metadata.get(ROLE) == CLICKS
                    and active.metadata.get(IMAGE_ID) == layer.metadata.get(IMAGE_ID))
        go_on = "" if clicking else "; press 'Click on this image' to click on it"  # a canvas click went nowhere
        if session is not None and mask is not None and session.mask is mask.data:
            self.status.value = f"{layer.name}: {session.clicks} click(s) in effect{go_on}"
        else:
            self.status.value = f"{layer.name}: press 'Click on this image' to start"

    def _selected_image(self):
        """The image the layer selected in the layer list is or belongs to (None for none)."""
        active = self.viewer.layers.selection.active
        if active is None:
            return None
        return active if is_source_image(active) else image_for(self.viewer, active)

    def _why_not_offered(self, image) -> str:
        """Why ``image`` is not in the chooser (empty when it is)."""
        if image is None or image in self.image.choices:
            return ""
        mask = layer_of(self.viewer, image, MASK)
        if mask is None:
            return f"{image.name} is not segmented yet: segment it first{converted_mask_note(self.viewer, image)}"
        if mask.data.ndim != 2:
            return f"{image.name} is a stack ({mask.data.shape}): clicks work on one 2-D image"
        # (a Batch folder result opened in the viewer never had one: "was closed" misled; trial of session 38)
        return (f"{image.name} has no probability layer (it was closed, or the mask came from Batch folder or a file): "
                "segment it to click on it")

    def _chosen_here(self, *_args) -> None:
        self._not_clickable = ""

    def _on_active(self, _event=None) -> None:
        """The trial of session 37: with a stack (or an image whose probability was closed) selected, the chooser stayed
        on the image before, and 'Click on this image' started there, bringing it over the one selected. Judged on the
        next turn of the event loop: while a result's layers are added one by one, an image is briefly without its
        probability (cold review of session 37)."""
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, self._judge_selected)

    def _judge_selected(self) -> None:
        try:
            why = self._why_not_offered(self._selected_image())
        except RuntimeError:  # this widget was closed; the viewer outlives it
            with contextlib.suppress(Exception):
                self.viewer.layers.selection.events.active.disconnect(self._on_active)
            return
        said, self._not_clickable = self._not_clickable, why
        if why:
            self.status.value = f"{why} (choose another image above to click on it)"
        elif said:  # a reason said before no longer holds: the chosen image's own line again
            self._on_image_chosen()

    def _image_layers(self, _=None) -> list:
        """Segmented 2-D images (clicks edit one 2-D mask: no stacks), found by their layers' roles, not names:
        renaming an image (or its mask) must not take it out of the list."""
        found = []
        for layer in self.viewer.layers:
            if is_source_image(layer):
                mask = layer_of(self.viewer, layer, MASK)
                if mask is not None and mask.data.ndim == 2 and layer_of(self.viewer, layer, PROBABILITY) is not None:
                    found.append(layer)
        return found

    # ---- state -----------------------------------------------------------------------------------
    def _layers(self):
        layer = self.image.value
        if layer is None:
            return None, None
        return layer, layer_of(self.viewer, layer, MASK)

    def session(self) -> Optional[ClickSession]:
        """The chosen image's session on its mask layer's own array (a new one when the array was replaced)."""
        layer, mask = self._layers()
        if layer is None:
            return None
        session = self.sessions.get(image_id(layer))
        if session is None or session.mask is not mask.data:
            probability = np.asarray(layer_of(self.viewer, layer, PROBABILITY).data)
            if probability.shape != mask.data.shape or mask.data.ndim != 2:
                self.status.value = f"clicks work on one 2-D mask; {mask.name} is {mask.data.shape}"
                return None
            session = ClickSession(mask.data, probability, write=self._click_writer(mask))
            self.sessions[image_id(layer)] = session
            mask.bind_key("Control-Z", self._undo_on_mask, overwrite=True)
        return session

    @staticmethod
    def _click_writer(mask):
        """How a click writes into the mask layer: ``data_setitem`` (it redraws only what changed), then napari's
        brush history is forgotten. That history was napari's Ctrl+Z on the mask: it took a click's pixels back while
        the click stayed counted, marked and stored with the correction (left open in session 27). A click is now a
        step of its own: Ctrl+Z on the mask undoes the brush strokes since the last click, then the clicks
        (:meth:`_undo_on_mask`)."""
        def write(indices, values) -> None:
            mask.data_setitem(indices, values)
            forget_brush_history(mask)
        return write

    def _undo_on_mask(self, mask) -> None:
        """Ctrl+Z on a mask with clicks: napari's undo while it holds brush strokes (made since the last click),
        then the image's last click, as *Undo last click* does (its point goes, its count goes down)."""
        if has_brush_history(mask):
            mask.undo()
            return
        try:
            image = image_for(self.viewer, mask)
            session = self.sessions.get(image_id(image)) if image is not None else None
            if session is None or session.mask is not mask.data or not session.history:
                if session is not None and session.mask is mask.data:  # as Undo last click says (verification, 28)
                    self.status.value = "nothing to undo"
                return
            if not same_layer(self.image.value, image):
                self.image.value = image  # Undo works on the chosen image
            self.undo()
        except RuntimeError as err:  # the widget was closed: the mask keeps napari's own behaviour
            if "has been deleted" not in str(err):
                raise

    def start(self, _=None):
        """Add (or select) the clicks and box layers of the chosen image (not another image's while one that cannot be
        clicked on is selected in the layer list: see :meth:`_on_active`)."""
        layer, _mask = self._layers()
        if self._not_clickable:
            self.status.value = f"not started: {self._not_clickable} (choose another image above to click on it)"
            return None
        if layer is None:
            self.status.value = "segment a 2-D image first (no image with mask and probability layers)"
            return None
        if self.session() is None:  # says why (a stack, mismatched layers) before any layer is added
            return None
        self.points, self.box_layer = click_layers(self.viewer, layer)
        if self._on_mouse not in self.points.mouse_drag_callbacks:
            self.points.mouse_drag_callbacks.append(self._on_mouse)
            self.points.bind_key("Control-Z", lambda _layer: self.undo(), overwrite=True)
            self.points.events.data.connect(self._on_marks_changed)
            self.box_layer.events.data.connect(self._on_box_drawn)
        # the clicks in effect marked again (their layer deleted with napari's delete: 2 clicks in effect, none marked,
        # one a 12,853-px hole; verification of session 38)
        self._restore_marks(self.points, say=False)
        shown = bring_into_view(self.viewer, layer, _mask)  # clicks must edit the mask on screen
        self.points.visible = self.box_layer.visible = True  # (hidden while their image was: see _on_image_chosen)
        self.viewer.layers.selection.active = self.points
        self.status.value = "click on the image: left adds, right (or Shift+click) removes" + (
            f" ({layer.name} brought into view)" if shown else "")
        return self.points

    # ---- clicks ------------------------------------------------------------------------------------
    def _on_mouse(self, layer, event):
        """Press-release without a drag is a click (a drag pans the view as usual)."""
        if event.type != "mouse_press":
            return
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if dragged:  # a drag pans the view: not a click
            return
        owner, chosen = image_for(self.viewer, layer), self.image.value
        # another image's clicks layer, left selected when the chooser moved on (compared by the image's id: the
        # widget's viewer hands out proxies of the layers, not the layers napari calls this with)
        if chosen is None or layer.metadata.get(IMAGE_ID) != chosen.metadata.get(IMAGE_ID):
            self.status.value = (f"not clicked: these are the clicks of {owner.name if owner else 'another image'}; "
                                 f"press 'Click on this image' to click on {chosen.name if chosen else 'the chosen image'}")
            return
        image, mask = self._layers()
        if mask is not None and not in_view(self.viewer, image, mask):
            # an image dragged back over it in the layer list: a click there removed 3,024 px from a mask no one saw,
            # then stored by Accept (verification of session 38)
            bring_into_view(self.viewer, image, mask)
            self.status.value = (f"not clicked: {image.name} was not on screen (another image was drawn over it, or it "
                                 "was hidden); it is shown now: click again")
            return
        negative = event.button == 2 or "Shift" in event.modifiers
        y, x = layer.world_to_data(event.position)[-2:]
        self.click(y, x, positive=not negative)

    def click(self, y: float, x: float, positive: bool = True):
        session = self.session()
        if session is None:
            return None
        try:
            edit = session.positive(y, x) if positive else session.negative(y, x)
        except ValueError as err:
            self.status.value = str(err)
            return None
        if self.points is not None:
            # napari selects a point just added, and setting the current colour recolours the selection: without
            # clearing it, each click turned the previous point to its own colour (additions drawn as removals)
            with self._placing_marks():
                self.points.selected_data = set()
                self.points.current_face_color = MARK_COLOURS[positive]
                self.points.add([[edit.point[0], edit.point[1]]])
        if edit.guessed_radius:
            done = (f"added {edit.pixels} pixels: the model saw nothing here and the mask is far, so this is a disk of "
                    f"radius {edit.guessed_radius} px, a first guess; paint the lesion's outline, or undo the click and "
                    "draw a rectangle around the lesion on the box layer")
        elif edit.pixels:
            done = f"{'added' if positive else 'removed'} {edit.pixels} pixels"
        else:  # "removed 0 pixels" read as a failure (trial of session 37): it is the mask that had nothing there
            done = ("changed nothing: the mask already holds the lesion there" if positive else
                    "changed nothing: the mask holds nothing there to remove")
        self._changed(session, done)
        return edit

    def undo(self, _=None):
        session = self.session()
        edit = session.undo() if session is not None else None
        if edit is None:
            self.status.value = "nothing to undo"
            return None
        if edit.kind != "box" and self.points is not None and len(self.points.data):
            with self._placing_marks():
                self.points.selected_data = {len(self.points.data) - 1}
                self.points.remove_selected()
        layer, mask = self._layers()
        shown = bring_into_view(self.viewer, layer, mask)  # what the undo changed is seen (it may have been covered)
        self._changed(session, f"undid the last {edit.kind} click" + (f" ({layer.name} brought into view)" if shown else ""))
        return edit

    @contextlib.contextmanager
    def _placing_marks(self):
        """Around the widget's own changes of the click marks (not napari's tools: see :meth:`_on_marks_changed`)."""
        self._placing += 1
        try:
            yield
        finally:
            self._placing -= 1

    def _on_marks_changed(self, event=None) -> None:
        if self._placing:
            return
        from qtpy.QtCore import QTimer

        points = getattr(event, "source", None) or self.points  # (an image's marks, chosen or not)
        QTimer.singleShot(0, lambda: self._restore_marks(points))  # after napari's own change (a delete, a move)

    def _restore_marks(self, points, say: bool = True) -> None:
        """The click marks show the clicks in effect, one mark per click, where it was made. A mark deleted or moved with
        napari's point tools changed no pixel: the click stayed in effect and counted, and *Undo last click* then took
        away the mark of another click (clinician trial of session 38: a 12,853-pixel hole with no mark, stored with
        the correction). The marks are put back as the clicks are, and the status says how to undo a click."""
        image = image_for(self.viewer, points) if points is not None and points in self.viewer.layers else None
        session = self.sessions.get(image_id(image)) if image is not None else None
        mask = layer_of(self.viewer, image, MASK) if image is not None else None
        if session is None or mask is None or session.mask is not mask.data:
            return
        clicks = [edit for edit in session.history if edit.kind != "box"]
        where = np.array([edit.point for edit in clicks], dtype=float).reshape(-1, 2)
        marks = np.asarray(points.data)[:, -2:]
        if marks.shape == where.shape and np.allclose(marks, where):
            return
        # only marks added (napari's add-points tool: the click was made, and napari added a mark of its own) is said as
        # nothing: the click's own line stays (verification of session 38)
        added_only = len(marks) > len(where) and np.allclose(marks[: len(where)], where)
        with self._placing_marks():
            points.selected_data = set()
            points.data = where
            if len(clicks):
                points.face_color = [MARK_COLOURS[edit.kind == "positive"] for edit in clicks]
        if say and not added_only:
            with contextlib.suppress(RuntimeError):  # (this dock was closed: the marks are put back all the same)
                self.status.value = (f"a click's mark is not removed or moved on its own: 'Undo last click' (Ctrl+Z) "
                                     f"takes the last click back, pixels and mark; {session.clicks} click(s) in effect")

    def _changed(self, session: ClickSession, what: str) -> None:
        _layer, mask = self._layers()
        mask.metadata[CLICKS_METADATA] = session.clicks
        self.status.value = f"{what}; {session.clicks} click(s) in effect"

    # ---- box ---------------------------------------------------------------------------------------
    def _on_box_drawn(self, event=None):
        if getattr(event, "action", "added") != "added" or self.box_layer is None or not len(self.box_layer.data):
            return None
        corners = np.asarray(self.box_layer.data[-1])[:, -2:]
        return self.run_box(*corners.min(axis=0), *corners.max(axis=0))

    def run_box(self, top: float, left: float, bottom: float, right: float):
        """Segment again inside the box in a worker; returns the worker (None when refused or busy)."""
        session = self.session()
        layer, mask = self._layers()
        if session is None or self.worker is not None:
            return None
        try:
            box = clip_box(session.mask.shape, top, left, bottom, right)
        except ValueError as err:
            self.status.value = str(err)
            return None
        image, rgb, frame = np.asarray(layer.data), bool(layer.rgb), session.probability.copy()
        made_with = mask.metadata.get(MODEL_VERSION)

        def job():
            models = model_in_use()  # shared (and cached) with the other widgets
            return box_probability(models.predictor(checkpoint_of_mask(models, made_with), "auto"), image, box, frame,
                                   rgb=rgb)

        def done(probability):
            if self.sessions.get(image_id(layer)) is session and session.mask is self._layers()[1].data:
                edit = session.box(*box, probability)
                self._changed(session, f"box: {edit.pixels} pixels changed inside it")
            if self.box_layer is not None and len(self.box_layer.data):
                self.box_layer.data = []

        self.worker = make_worker(job)
        done = once(done)  # (it names the layer: forgotten once called, or once the worker ended)
        self.worker.returned.connect(when_alive(done))
        self.worker.finished.connect(done.forget)
        self.worker.errored.connect(when_alive(lambda err: setattr(self.status, "value", f"box failed: {err}")))
        self.worker.finished.connect(lambda: setattr(self, "worker", None))  # no Qt object touched
        self.status.value = "segmenting inside the box..."
        self.worker.start()
        return self.worker


def checkpoint_of_mask(models, version: Optional[str]):
    """The checkpoint of the model that made a mask, so that a box re-segments with the same model as the rest of
    the mask (a skin image's box re-run with the polyp model in use cut 32,502 lesion pixels out of it); the model in
    use when that model is not at hand here (a file, a version since removed)."""
    if version:
        try:
            return models.checkpoint(models.choice_of(version))
        except ValueError:
            pass
    return models.checkpoint(IN_USE)
