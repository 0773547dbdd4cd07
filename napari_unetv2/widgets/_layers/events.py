"""napari's own actions on the plugin's layers, followed once per viewer: an image closed (its derived layers go, the
user's painted work stays, named as closed), a painted mask deleted (kept for *Restore deleted mask*), a layer
inserted (napari's copies and conversions disowned, a reopened image given back its mask), a layer selected to
edit brought into view."""
from __future__ import annotations

import contextlib
import weakref
from typing import Optional

import numpy as np

from ...corrections.correction_set import image_hash
from .outputs import mask_colormap, proposal_colormap
from .roles import (
    BOX,
    CLICKS,
    IMAGE_GRID,
    IMAGE_ID,
    MASK,
    PROPOSAL,
    REFERENCE,
    ROLE,
    SESSION_IMAGE,
    converted_role,
    grid_of,
    image_for,
    image_id,
    is_source_image,
    mask_was_edited,
    role_of,
    same_layer,
    spatial_placement,
    spatial_shape,
    stored_as_accepted,
    unproxied,
)
from .view import HIDDEN_EVERY, HIDDEN_FOR_VIEW, bring_into_view, hide_images_around, layer_is_shown

_WATCHED: set[int] = set()  # viewers (by their layer list) whose removed images are followed
CLOSED_NOTE = " (image closed)"  # added to the name of a closed image's layer that stays (the user's work)
CLOSED_IMAGE = "unetv2_closed_image"  # in such a layer: its image's shape, type and pixel hash, to know it when reopened
HIDDEN_ON_CLOSE = "unetv2_hidden_on_close"  # a stored mask hidden when its image closed, shown again when it reopens


def follow_removed_images(viewer) -> None:
    """Once per viewer: when an image layer is closed, its layers that hold nothing of the user's go with it (the
    probability and attention maps, the click layers, an unedited mask or proposal); one painted on stays, as the
    user's work. They were left drawn over the other images (trial of session 25).

    Also: an image opened again takes back the painted mask its closed twin left (:func:`reattach_reopened_image`);
    selecting an image's mask, proposal, clicks or box layer, to edit with it, brings that image into view when another
    image is drawn over it (:func:`bring_into_view`)."""
    layers = unproxied(viewer).layers  # the plugin's proxy hands out a new proxy of the list at each access: keyed on
    key = id(layers)                    # that, every widget connected the handlers again (review of session 29)
    if key in _WATCHED:
        return
    _WATCHED.add(key)
    weakref.finalize(layers, _WATCHED.discard, key)
    no_box_behind_the_brush(viewer)
    def on_removed(event) -> None:
        # on the next turn of the event loop: whoever removes several layers at once (napari's delete of a selection,
        # the folder session clearing an image) must not find one of them already gone
        from qtpy.QtCore import QTimer

        layer = event.value
        if is_source_image(layer):
            deleted_masks(viewer).image_closed(viewer, layer)
        deleted_masks(viewer).keep(viewer, layer)
        QTimer.singleShot(0, lambda: forget_removed_image(viewer, layer))

    viewer.layers.events.removed.connect(on_removed)
    def on_removing(event) -> None:
        try:
            layer = viewer.layers[event.index]
        except (IndexError, TypeError):  # (a workaround only: napari's own removal must go on whatever happens here)
            return
        leave_brush_before_removal(viewer, layer)

    viewer.layers.events.removing.connect(on_removing)

    def on_inserted(event) -> None:
        disown_napari_copies(viewer, event.value)
        deleted_masks(viewer).converted(event.value)
        reattach_reopened_image(viewer, event.value)

    # at once, and before the plugin's other listeners (the kept edits' watch, the choosers): before napari makes the
    # new image the active layer, which the widgets' choosers follow
    viewer.layers.events.inserted.connect(on_inserted, position="first")

    def show_selected_mask() -> None:
        layer = viewer.layers.selection.active
        if layer is not None and role_of(layer) in (MASK, PROPOSAL, CLICKS, BOX):  # about to edit: it must show
            image = image_for(viewer, layer)
            # the layer itself too: a hidden mask selected showed its image, but napari greys out the brush on a hidden
            # layer and Accept refused it as not on screen (trial of session 31: an extra click on every image)
            if image is not None and (not layer_is_shown(viewer, image) or not layer.visible):
                bring_into_view(viewer, image, layer)
            elif image is not None:  # on top already: a larger image below still framed it, read as one picture with it
                hide_images_around(viewer, image)  # (trial of session 35: a 360 px frame's mask over a 480 px frame)

    def on_selected(_event=None) -> None:
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, show_selected_mask)  # not while napari is still changing the selection

    viewer.layers.selection.events.active.connect(on_selected)


BRUSH_MODES = ("paint", "erase", "fill", "polygon")


def leave_brush_before_removal(viewer, layer) -> None:
    """A Labels layer deleted while its brush is out crashed napari (a segmentation fault at the next redraw, with
    Mesa's software OpenGL; napari 0.9.2, plain napari too): every painted mask not yet stored was lost with the window
    (trial of session 32). The plugin leaves its masks ready to paint, so this was one click on the delete button.
    Drawn once without the brush before it goes, the removal is safe; a redraw costs some 30 ms."""
    from napari.layers import Labels

    if not isinstance(layer, Labels) or layer.mode not in BRUSH_MODES:
        return
    layer.mode = "pan_zoom"
    canvas = getattr(getattr(getattr(unproxied(viewer), "window", None), "_qt_viewer", None), "canvas", None)
    native = getattr(canvas, "native", None)
    if native is not None and native.isVisible():
        with contextlib.suppress(RuntimeError):  # (a canvas being closed with the window)
            native.repaint()  # now, not at the next turn of the event loop: the layer is removed before that


REMOVED_BY_PLUGIN = "unetv2_removed_by_plugin"  # set on a layer the plugin removes itself (not the user's delete)


def remove_layer(viewer, layer) -> None:
    """Remove one of the plugin's layers on the plugin's own account (an edited mask the user chose to leave): it is
    not kept as a deleted mask to restore."""
    layer.metadata[REMOVED_BY_PLUGIN] = True
    viewer.layers.remove(layer)


class DeletedMasks:
    """Masks with painted edits that were not stored, deleted from the layer list: napari's delete asks nothing and
    has no undo, so one click lost a clinician's painting (stop 29's list). Proposals painted on are the user's work
    too and are kept alike, restored as proposals (stop 33's list). The newest few are kept (the layer's own
    array: nothing is copied) with the pixels of the image they were painted on, for the widgets' *Restore deleted
    mask* button; ``listeners`` are called with "kept" or "restored" at each change."""

    LIMIT = 5

    def __init__(self):
        self.kept: list[dict] = []
        self.listeners: list = []
        self.last_note = ""  # what the last restore did (or why it did not)
        self.closed_images: dict[str, dict] = {}  # image id -> pixels, of images closed with a painted mask open
        self._evicted: list[dict] = []  # what the last keep() pushed out of ``kept``

    def keep(self, viewer, layer, announce: bool = True) -> bool:
        if role_of(layer) not in (MASK, PROPOSAL) or layer.metadata.get(REMOVED_BY_PLUGIN) or not mask_was_edited(layer) \
                or stored_as_accepted(layer) or not isinstance(layer.data, np.ndarray):
            return False
        # the image's pixels, not only its layer: the folder session shows image after image in one layer (one id), and
        # a mask restored after Next was tied to the next image and stored as its correction (review of session 30)
        key = layer.metadata.get(IMAGE_ID)
        pixels = layer.metadata.get(CLOSED_IMAGE) or self.closed_images.get(key)
        image = image_for(viewer, layer)
        if image is not None and isinstance(image.data, np.ndarray):
            pixels = _pixels_of(image.data)
        self.kept.append({"name": layer.name.removesuffix(CLOSED_NOTE), "data": layer.data,
                          "metadata": {k: v for k, v in layer.metadata.items() if k != CLOSED_IMAGE},
                          "pixels": pixels if isinstance(pixels, dict) else None,
                          "placement": spatial_placement(layer), "opacity": layer.opacity,
                          "contour": layer.contour})  # (an outline display came back filled: trial of session 34)
        self._evicted = self.kept[:-self.LIMIT]  # (a conversion, found after, puts them back: see converted)
        del self.kept[:-self.LIMIT]
        if announce:
            self._changed("kept")
        return True

    def converted(self, layer) -> bool:
        """napari's *Convert to Image* of a painted mask removes the Labels layer and adds an Image layer on the same
        array: no deletion (it was said as one, with *Restore deleted mask*, which then made a second mask of the image;
        verification of session 37). Its kept entry goes, and the listeners hear "restored" with what happened."""
        if converted_role(layer) not in (MASK, PROPOSAL):
            return False
        kept = next((k for k in self.kept if k["data"] is layer.data), None)
        if kept is None:
            return False
        self.kept.remove(kept)
        self.kept[:0], self._evicted = self._evicted, []  # what its keeping pushed out is restorable again
        self.last_note = (f"'{layer.name}' was converted to an image layer, its edits and all: it is no "
                          f"{layer.metadata[ROLE]} now (napari's Convert to Labels makes it one again while its image "
                          "has no other)")
        self._changed("restored")
        return True

    def image_closed(self, viewer, image_layer) -> None:
        """Note the pixels of a source image just closed whose painted mask is still open: napari's delete of an image
        and its mask together removes the image first, and the mask then kept had no image to be restored onto."""
        key = image_layer.metadata.get(IMAGE_ID)
        if key and isinstance(image_layer.data, np.ndarray) and any(
                role_of(x) in (MASK, PROPOSAL) and x.metadata.get(IMAGE_ID) == key and mask_was_edited(x)
                for x in viewer.layers):
            self.closed_images[key] = _pixels_of(image_layer.data)
            while len(self.closed_images) > self.LIMIT:
                self.closed_images.pop(next(iter(self.closed_images)))

    def newest_name(self) -> Optional[str]:
        return self.kept[-1]["name"] if self.kept else None

    def holds_one_of(self, image_layer, role: str = MASK) -> bool:
        """Whether a kept mask (of ``role``) was painted on exactly this image's pixels (asked for every image the
        folder session shows: hashed only when a kept mask's shape and type agree, which with nothing kept is never)."""
        return any(_has_pixels(image_layer.data, k["pixels"]) for k in self.kept if k["metadata"].get(ROLE) == role)

    def _image_of(self, viewer, kept) -> tuple[Optional[object], bool]:
        """(the open image the kept mask was painted on, or None when it is closed; whether it can be restored now).
        Its own layer when that still shows its pixels, else any open image with them (an image closed and shown
        again is a new layer); not now when its layer shows other pixels and no open image has them."""
        key, pixels = kept["metadata"].get(IMAGE_ID), kept["pixels"]
        sources = [x for x in viewer.layers if is_source_image(x) and isinstance(x.data, np.ndarray)]
        own = next((x for x in viewer.layers if is_source_image(x) and x.metadata.get(IMAGE_ID) == key), None)
        if pixels is None:
            return own, True  # (nothing to compare: as it was)
        for image in ([own] if own in sources else []) + [x for x in sources if x is not own]:
            if _has_pixels(image.data, pixels):
                return image, True
        return own, own is None

    def restore(self, viewer) -> tuple[Optional[object], str]:
        """Add back the newest kept mask that can be restored now, as its image's mask; returns the layer (None when
        none can) and what was done (also in ``last_note``). Nothing is left loose on the canvas, nothing painted is
        lost:

        - its image open (its own layer, or any with the pixels it was painted on): its mask again. A newer mask of the
          image that nobody painted (Segment run again) gives way to it; a painted one is kept in its place;
        - its image's layer showing other pixels now (the folder session moved on): not now; the status says to show
          that image again (a loose copy stayed drawn over every later image; verification of session 30);
        - its image closed: as a painted mask of a closed image, which opening the image again takes back."""
        if not self.kept:
            return None, "no deleted mask to restore"
        choice = next(((kept, image) for kept in reversed(self.kept)
                       for image, now in [self._image_of(viewer, kept)] if now), None)
        if choice is None:
            newest = self.kept[-1]
            image = self._image_of(viewer, newest)[0]
            self.last_note = (f"'{newest['name']}' was painted on an image that '{image.name}' does not show now: show "
                              "that image again (in a folder session: Previous), then restore it")
            return None, self.last_note
        kept, image = choice
        metadata, name = dict(kept["metadata"]), kept["name"]
        role = metadata.get(ROLE, MASK)
        note = f"'{name}' restored with its edits"
        if image is None:
            name += CLOSED_NOTE
            if kept["pixels"]:
                metadata[CLOSED_IMAGE] = kept["pixels"]
            note += "; its image is closed: opening it again takes this mask back"
            # a newer mask the closed image left (Segment run again and painted before it closed) is exchanged as for
            # an open image: two would both be taken back (cold review of session 37)
            newer = [x for x in viewer.layers if role_of(x) == role and x.metadata.get(IMAGE_ID) == metadata.get(IMAGE_ID)
                     and isinstance(x.metadata.get(CLOSED_IMAGE), dict)]
        else:
            metadata[IMAGE_ID] = image_id(image)  # (an image shown again is a new layer with a new id)
            name = f"{image.name} {role}"
            newer = [x for x in viewer.layers if role_of(x) == role and x.metadata.get(IMAGE_ID) == metadata[IMAGE_ID]]
        self.kept.remove(kept)
        exchanged = [x for x in newer if mask_was_edited(x) and self.keep(viewer, x, announce=False)]
        if exchanged:  # (a painted mask stored as it is needs no keeping: it is in the correction set)
            note += f"; the {role} it replaces, painted too, is kept: Restore deleted mask brings that one back"
        for x in newer:  # first: the widgets' mask choosers then take the restored one (the model's mask is made again)
            remove_layer(viewer, x)
        try:
            with plugin_adds():
                layer = viewer.add_labels(kept["data"], name=name, metadata=metadata, opacity=kept["opacity"],
                                          colormap=proposal_colormap() if role == PROPOSAL else mask_colormap(),
                                          **kept["placement"])
            layer.contour = kept["contour"]
        except BaseException:
            self.kept.append(kept)  # kept still, to try again
            raise
        self.last_note = note  # before the listeners hear of it: a dock that said "deleted" says this instead
        self._changed("restored")
        return layer, note

    def _changed(self, what: str) -> None:
        for listener in list(self.listeners):
            listener(what)


_DELETED: dict[int, DeletedMasks] = {}


def deleted_masks(viewer) -> DeletedMasks:
    """The viewer's :class:`DeletedMasks` (one per viewer, whichever widget asks)."""
    layers = unproxied(viewer).layers
    key = id(layers)
    if key not in _DELETED:
        _DELETED[key] = DeletedMasks()
        weakref.finalize(layers, _DELETED.pop, key, None)
    return _DELETED[key]


def no_box_behind_the_brush(viewer) -> None:
    """Draw napari's brush circle without the background box that canvas overlays have by default.

    Once a mask had been painted (the brush shown), closing the last visible image crashed napari 0.9 (a segfault
    in ``glDrawArrays``, under Mesa's llvmpipe, as in a remote desktop or a VM): the box, a vispy Rectangle, is
    drawn once no layer is visible and takes the process down. Pure napari does the same (an image and a Labels
    layer in paint mode, both closed). The circle needs no box; without it nothing is drawn that crashes. Found
    in session 29 by closing, as a user does, both images after segmenting them."""
    overlays = getattr(getattr(unproxied(viewer), "canvas", None), "overlays", None)
    brush = overlays.get("_brush_circle") if hasattr(overlays, "get") else None
    if brush is not None and hasattr(brush, "box"):
        try:
            brush.box = False
        except (AttributeError, TypeError, ValueError):  # another napari's overlay: nothing to work around there
            pass


def forget_removed_image(viewer, layer) -> list:
    """Remove what :func:`follow_removed_images` says of a closed image ``layer``; returns the layers removed."""
    key = layer.metadata.get(IMAGE_ID) if is_source_image(layer) else None
    if key is None or any(is_source_image(x) and x.metadata.get(IMAGE_ID) == key for x in viewer.layers):
        if is_source_image(layer):
            _show_an_open_image(viewer, layer)
        return []  # not one of ours, or a copy of the image (napari's duplicate kept its metadata) is still open
    gone = [x for x in viewer.layers if x.metadata.get(IMAGE_ID) == key and role_of(x) is not None
            and not (role_of(x) in (MASK, PROPOSAL) and mask_was_edited(x))]  # painted on: the user's work
    for x in gone:
        if x in viewer.layers:
            viewer.layers.remove(x)
    pixels = None
    for x in viewer.layers:  # what stays says so: Accept cannot store it for its image any more
        if x.metadata.get(IMAGE_ID) == key and not x.name.endswith(CLOSED_NOTE):
            x.name = f"{x.name}{CLOSED_NOTE}"
            if stored_as_accepted(x) and x.visible:  # safe in the correction set: kept, not drawn over the other
                x.visible = False  # images (accepted masks of closed images piled up on screen; trial of session 29)
                x.metadata[HIDDEN_ON_CLOSE] = True
            elif not stored_as_accepted(x) and x.metadata.pop(HIDDEN_FOR_VIEW, False):
                x.visible = True  # hidden while another image was viewed: unsaved work stays drawn once its image goes
            if pixels is None and isinstance(layer.data, np.ndarray):  # in memory: not a lazy or multiscale image
                pixels = _pixels_of(layer.data)
            if pixels is not None:
                x.metadata[CLOSED_IMAGE] = pixels
    _show_an_open_image(viewer, layer)
    return gone


def _show_an_open_image(viewer, closed) -> None:
    """After an image closed: while other images are open, the masks that closed images left are not drawn (over
    another image they read as its mask), and one open image is on screen: closing the image on screen left a black
    canvas with two closed images' painted masks over each other, the open image hidden (clinician trial of session
    37). They are kept, named as closed, shown again when their image reopens; once no image is open, those not
    stored are drawn again (unsaved work of closed images stays in sight). An image the user hid stays hidden. Not
    after the plugin's own removals, nor the folder session's image closed: the session shows what it chooses (its
    image again, on Accept)."""
    if closed.metadata.get(REMOVED_BY_PLUGIN) or closed.metadata.get(SESSION_IMAGE):
        return
    open_images = [x for x in viewer.layers if is_source_image(x)]
    open_ids = {x.metadata.get(IMAGE_ID) for x in open_images}
    left = [x for x in viewer.layers if x.name.endswith(CLOSED_NOTE) and x.metadata.get(IMAGE_ID)
            and x.metadata.get(IMAGE_ID) not in open_ids]
    if not open_images:
        for x in left:
            if not stored_as_accepted(x) and x.metadata.pop(HIDDEN_ON_CLOSE, False):
                x.visible = True
        return
    active = viewer.layers.selection.active
    for x in left:
        if x.visible and not same_layer(x, active):  # (not one selected to paint on)
            x.visible = False
            x.metadata[HIDDEN_ON_CLOSE] = True
    # those the plugin hid while another image was viewed: not the user's, nor those hidden while the folder session
    # says its image could not be read (another image was taken for it then; trial of session 35)
    hidden_here = [x for x in open_images if not x.visible and x.metadata.get(HIDDEN_FOR_VIEW)
                   and not x.metadata.get(HIDDEN_EVERY)]
    if hidden_here and not any(x.visible for x in open_images):
        bring_into_view(viewer, hidden_here[-1])  # the topmost, with its layers hidden while another was viewed


def _pixels_of(data: np.ndarray) -> dict:
    return {"shape": list(data.shape), "dtype": data.dtype.str, "hash": image_hash(data)}


def _same_kind(data, pixels: Optional[dict]) -> bool:
    """Whether in-memory ``data`` has the shape and type ``pixels`` (:func:`_pixels_of`) record: checked before hashing,
    which this runs in the GUI thread to avoid."""
    return isinstance(data, np.ndarray) and isinstance(pixels, dict) and pixels.get("shape") == list(data.shape) \
        and pixels.get("dtype") == data.dtype.str


def _has_pixels(data, pixels: Optional[dict]) -> bool:
    return _same_kind(data, pixels) and image_hash(data) == pixels.get("hash")


PLUGIN_KEYS = "unetv2_"  # the prefix of every metadata key the plugin reads (MODEL_VERSION aside: a copy keeps it)
_PLUGIN_ADDING: list = []  # non-empty while the plugin itself adds a layer (see plugin_adds)


@contextlib.contextmanager
def plugin_adds():
    """Around the plugin's own additions of a mask or proposal: never taken for a layer napari made (a mask restored
    onto a closed image beside another of its masks lost every key it is known by; cold review of session 37)."""
    _PLUGIN_ADDING.append(True)
    try:
        yield
    finally:
        _PLUGIN_ADDING.pop()


def disown_napari_copies(viewer, layer) -> bool:
    """A layer napari made from one of the plugin's carries that layer's metadata: *Duplicate Layer* (and a
    projection) of an image or a mask, *Split RGB* or *Split Stack* of an image. Taken for the same image, a copy of a
    segmented image ran Segment into the original's mask, a copy of a mask was a second mask of its image, and a split
    colour channel had its prediction put beside the colour image's painted mask (clinician trial of session 37). The
    copy becomes the user's own layer (a mask's copy one they drew, an image's copy another image): the plugin's
    keys go (a copy of a probability map keeps its role, for it to be no image to segment). A ground truth's copy
    stays ground truth. Returns whether it did so."""
    from napari.layers import Image

    metadata = layer.metadata
    if IMAGE_ID not in metadata or metadata.get(ROLE) == REFERENCE:
        return False
    made_from = getattr(getattr(layer, "source", None), "parent", None) is not None  # napari's duplicate, projections
    role = role_of(layer)
    if not _PLUGIN_ADDING and role in (MASK, PROPOSAL) and any(
            x is not layer and role_of(x) == role and x.metadata.get(IMAGE_ID) == metadata[IMAGE_ID] for x in viewer.layers):
        # one mask (and one proposal) per image: a mask converted to an image, the image segmented again (a new mask,
        # painted on), then the old one converted back made two, and Accept stored the old, unedited one (verification
        # of session 37: "0 pixels changed", a perfect prospective score recorded). The one painted since stays the mask.
        made_from = True
    if not made_from and isinstance(layer, Image):  # a split keeps the id, on another pixel grid
        if ROLE not in metadata:
            grid = metadata.get(IMAGE_GRID)
            made_from = grid is not None and grid != grid_of(layer)
        else:
            image = next((x for x in viewer.layers if is_source_image(x) and x.metadata.get(IMAGE_ID) == metadata[IMAGE_ID]
                          and not same_layer(x, layer)), None)
            made_from = image is not None and list(spatial_shape(image)) != list(spatial_shape(layer))
    if not made_from:
        return False
    # a probability map's or a click layer's copy keeps its role (else it would be offered as an image to segment)
    keep = ROLE if metadata.get(ROLE) not in (None, MASK, PROPOSAL) else None
    for key in [key for key in metadata if key.startswith(PLUGIN_KEYS) and key != keep]:
        del metadata[key]
    return True


def reattach_reopened_image(viewer, layer) -> list:
    """An image opened again whose closed twin left a painted mask (same pixels): that mask is its mask again, under
    its own name, so Segment, Correct & retrain and the clicks find it (trial of session 27: the reopened image was
    'not segmented yet' and its painted mask could not be accepted for it). Returns the layers taken back."""
    orphans = [x for x in viewer.layers if isinstance(x.metadata.get(CLOSED_IMAGE), dict)]
    if (not orphans or layer not in viewer.layers or not is_source_image(layer) or IMAGE_ID in layer.metadata
            or not isinstance(layer.data, np.ndarray)):
        return []
    data = layer.data
    same_kind = [x for x in orphans if _same_kind(data, x.metadata[CLOSED_IMAGE])]
    if not same_kind:  # hashed only when the shape and type agree (this runs in the GUI thread at every opening)
        return []
    pixels = image_hash(data)
    match = next((x for x in same_kind if x.metadata[CLOSED_IMAGE].get("hash") == pixels), None)
    if match is None:
        return []
    key = match.metadata[IMAGE_ID]
    layer.metadata[IMAGE_ID] = key
    layer.metadata[IMAGE_GRID] = grid_of(layer)  # (a split of the reopened image kept its id: cold review, session 37)
    taken = [x for x in orphans if x.metadata.get(IMAGE_ID) == key]
    for x in taken:
        del x.metadata[CLOSED_IMAGE]
        if x.name.endswith(CLOSED_NOTE):
            x.name = x.name[: -len(CLOSED_NOTE)]
        if x.metadata.pop(HIDDEN_ON_CLOSE, False):
            x.visible = True  # hidden when its image closed: shown again with it

    def above_the_image() -> None:  # napari adds the image on top, over its mask: the mask goes up (never down)
        for x in taken:
            if x in viewer.layers and layer in viewer.layers and viewer.layers.index(x) < viewer.layers.index(layer):
                viewer.layers.move(viewer.layers.index(x), len(viewer.layers))

    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, above_the_image)  # not while napari is still inserting the image
    return taken
