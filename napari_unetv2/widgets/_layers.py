"""The plugin's layers and their roles: the only code that adds, finds or updates them.

Every layer the plugin makes carries its role and the image it belongs to in ``layer.metadata``
(names are for people and may be renamed; the metadata is what the code reads):

- ``unetv2_role``: ``mask`` (the editable Labels layer), ``proposal`` (a newer prediction for an image
  whose mask the user has edited: one per image, updated in place), ``probability``, ``attention``,
  ``clicks`` and ``box`` (the click widget's), ``reference`` (a sample's ground truth: for comparing, not a correction);
- ``unetv2_image``: the id of the image layer (kept in that layer's own metadata under the same key).

Re-segmenting never adds a layer per round: the mask is updated in place unless it was edited, in
which case the new prediction goes into the image's single proposal layer.
"""
from __future__ import annotations

import contextlib
import time
import uuid
import weakref
from typing import Optional

import numpy as np

from ..corrections.correction_set import image_hash
from ..interactive import CLICKS_METADATA

ROLE = "unetv2_role"
IMAGE_ID = "unetv2_image"
PREDICTION_HASH = "unetv2_prediction_hash"
PREDICTED_MASK = "unetv2_predicted_mask"  # a copy: painting changes layer.data in place
PREDICTED_AT = "unetv2_predicted_at"
MODEL_VERSION = "model_version"
ACCEPTED_HASH = "unetv2_accepted_hash"  # a mask's pixel hash when it was stored as a correction (Correct & retrain)
ACCEPTED_MASKS = "unetv2_accepted_masks"  # pixel hashes of the 0/1 masks accepted from a mask layer (either widget)
KEPT_ACCEPTED = 50  # of those, the newest kept (the folder session reuses one layer for every image)


def note_accepted(layer, mask) -> None:
    """Record on the layer that this mask was accepted from it: a correction it stored is improved by painting on and
    accepting again, which *Correct & retrain* must not question (``store_correction``'s ``accepted_from_layer``)."""
    done = [*layer.metadata.get(ACCEPTED_MASKS, []), image_hash((np.asarray(mask) > 0).astype(np.uint8))]
    layer.metadata[ACCEPTED_MASKS] = done[-KEPT_ACCEPTED:]

SESSION_IMAGE = "unetv2_session_file"  # in the folder session's image layer: the file it shows (the session's drafts
# keep its edits; the kept edits of other masks leave it out)
MASK, PROPOSAL, PROBABILITY, ATTENTION = "mask", "proposal", "probability", "attention"
REFERENCE = "reference"  # a sample's ground truth (_sample_data): for comparing, never a correction
CLICKS, BOX = "clicks", "box"  # the click widget's Points and Shapes layers of an image
MASK_OPACITY = 0.45  # translucent: the tissue under the mask stays visible
MASK_DISPLAYS = ("filled", "outline")


def image_id(image_layer) -> str:
    """A stable id for an image layer (stored in its metadata on first use; survives renaming), with the pixel grid it
    was given for (:func:`disown_napari_copies`)."""
    if IMAGE_ID not in image_layer.metadata:
        image_layer.metadata[IMAGE_ID] = uuid.uuid4().hex[:12]
    if IMAGE_GRID not in image_layer.metadata:  # (not computed at every call: image_id is asked in loops)
        image_layer.metadata[IMAGE_GRID] = _grid_of(image_layer)
    return image_layer.metadata[IMAGE_ID]


IMAGE_GRID = "unetv2_image_grid"  # in an image layer: [its spatial shape, rgb] when it was given its id


def _grid_of(image_layer) -> list:
    return [list(spatial_shape(image_layer)), bool(image_layer.rgb)]


_ROLE_KINDS: dict = {}  # role -> the napari layer class that role is played by


def _kind_of(role: str):
    if not _ROLE_KINDS:
        from napari.layers import Image, Labels, Points, Shapes

        _ROLE_KINDS.update({MASK: Labels, PROPOSAL: Labels, REFERENCE: Labels, PROBABILITY: Image, ATTENTION: Image,
                            CLICKS: Points, BOX: Shapes})
    return _ROLE_KINDS.get(role)


def role_of(layer) -> Optional[str]:
    """The layer's role, if it is of the kind that plays it. napari's *Convert to Image* keeps a mask's metadata on the
    Image layer it makes: taken for the image's mask, it broke the brush and the kept edits (clinician trial of session
    37: an exception at the convert, another at the next Segment)."""
    role = layer.metadata.get(ROLE)
    if role is None:
        return None
    kind = _kind_of(role)
    return role if kind is None or isinstance(layer, kind) else None


def converted_role(layer) -> Optional[str]:
    """The role a layer played before napari converted it to another kind of layer (its metadata kept), else None."""
    role = layer.metadata.get(ROLE)
    return role if role is not None and role_of(layer) is None else None


def unproxied(layer):
    """The layer itself behind the proxy a plugin's viewer hands out (a new one at each access, warning of private
    access, which napari 0.10 will refuse)."""
    return getattr(layer, "__wrapped__", layer)


def same_layer(a, b) -> bool:
    """Whether two references name one layer: ``is`` between two proxies of it is always False (re-segmented images
    were added hidden although on screen; first-hour trial of session 28)."""
    return a is not None and b is not None and unproxied(a) is unproxied(b)


def is_source_image(layer) -> bool:
    """An image the user works on (not one of the plugin's probability/attention outputs)."""
    from napari.layers import Image

    return isinstance(layer, Image) and ROLE not in layer.metadata  # (a mask converted to an image is none)


def layers_of(viewer, image_layer, role: str) -> list:
    key = image_layer.metadata.get(IMAGE_ID)
    if key is None:
        return []
    return [layer for layer in viewer.layers if layer.metadata.get(IMAGE_ID) == key and role_of(layer) == role]


def layer_of(viewer, image_layer, role: str):
    found = layers_of(viewer, image_layer, role)
    return found[0] if found else None


def converted_mask_note(viewer, image_layer) -> str:
    """Said where the image's mask is looked for and is not found because napari's *Convert to Image* made it an Image
    layer (the plugin's roles are played by their own kind of layer: :func:`role_of`); else empty."""
    key = image_layer.metadata.get(IMAGE_ID) if image_layer is not None else None
    converted = next((x for x in viewer.layers if key is not None and x.metadata.get(IMAGE_ID) == key
                      and converted_role(x) in (MASK, PROPOSAL)), None)
    if converted is None:
        return ""
    return (f" ('{converted.name}' was its {converted_role(converted)} before it was converted to an image layer: "
            "napari's Convert to Labels makes it one again)")


def let_go_of_converted(viewer, image_layer) -> None:
    """Layers the image's mask or proposal became (napari's *Convert to Image*) are tied to it by its id alone: when
    the folder session shows its next image in the same layer, they were drawn over that image (cold review of session
    37). They stay, the user's, hidden and tied to no image."""
    key = image_layer.metadata.get(IMAGE_ID)
    for x in list(viewer.layers):
        if key is not None and x.metadata.get(IMAGE_ID) == key and converted_role(x) is not None:
            del x.metadata[IMAGE_ID]
            x.visible = False


def image_for(viewer, layer):
    """The image layer a plugin layer belongs to (None for other layers)."""
    key = layer.metadata.get(IMAGE_ID)
    if key is None or role_of(layer) is None:
        return None
    return next((x for x in viewer.layers if is_source_image(x) and x.metadata.get(IMAGE_ID) == key), None)


def belongs_to(viewer, layer, image_layer) -> bool:
    """Whether ``layer`` is of ``image_layer`` or of no image (one the user drew); a layer of a closed image, or of
    another, is not: Accept must never store it as this image's correction without the user choosing it."""
    key = layer.metadata.get(IMAGE_ID)
    return key is None or (image_layer is not None and image_layer.metadata.get(IMAGE_ID) == key)


def spatial_shape(image_layer) -> tuple[int, ...]:
    """The image's pixel grid without colour channels (what a matching mask must have)."""
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    return tuple(data.shape[:-1]) if image_layer.rgb else tuple(data.shape)


def mask_was_edited(layer) -> bool:
    """True when the layer's pixels differ from what the model wrote into it."""
    expected = layer.metadata.get(PREDICTION_HASH)
    return expected is None or expected != image_hash(np.asarray(layer.data))


def spatial_placement(image_layer) -> dict:
    """The image's whole placement in the world (scale, translate, rotate, shear and the extra affine), so the new
    layers line up with it also after napari's transform mode rotated it (napari's axes exclude RGB channels)."""
    return {"scale": tuple(image_layer.scale), "translate": tuple(image_layer.translate),
            "rotate": np.asarray(image_layer.rotate), "shear": np.asarray(image_layer.shear),
            "affine": image_layer.affine.affine_matrix}


def _prediction_metadata(image_layer, role: str, prediction, model_version: str) -> dict:
    return {ROLE: role, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(prediction.mask),
            MODEL_VERSION: model_version, PREDICTED_MASK: prediction.mask.copy(), PREDICTED_AT: time.time()}


def attention_limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits of one attention map: its 1st-99th percentiles (the maps vary over a narrow
    range, e.g. 0.92-1.0; on a 0-1 scale they would be a flat bright rectangle)."""
    low, high = (float(v) for v in np.percentile(data, [1, 99]))
    return (low, high) if high > low else (low, low + 1e-6)


def show_probability(viewer, image_layer, prediction, model_version: str = ""):
    """Add or update the image's probability layer (hidden when added), nothing else; returns it."""
    # Every derived layer says which model made it (layer info / metadata): only the mask and proposal did, and the
    # probability of a new model stood beside an edited mask of the old one unsaid (trial of session 28).
    made_by = {MODEL_VERSION: model_version}
    probability = layer_of(viewer, image_layer, PROBABILITY)
    if probability is not None:
        probability.metadata.update(made_by)
        probability.data = prediction.probability
        probability.name = f"{image_layer.name} probability"
        return probability
    probability = viewer.add_image(
        prediction.probability, name=f"{image_layer.name} probability", colormap="magma", contrast_limits=(0, 1),
        opacity=0.5, blending="additive", visible=False,
        metadata={ROLE: PROBABILITY, IMAGE_ID: image_id(image_layer), **made_by}, **spatial_placement(image_layer))
    _move_above(viewer, probability, image_layer)
    return probability


def show_prediction(viewer, image_layer, prediction, model_version: str = "", display: str = "filled",
                    visible: bool = True, keep_started: bool = False) -> dict:
    """Add or update the image's probability, mask (or proposal) and attention layers, in place.

    An edited mask is kept as it is; the new prediction then goes into the image's one proposal layer.
    ``visible`` False leaves new layers hidden (re-segmenting images that are not being viewed). ``keep_started``: an
    unedited mask replaced keeps the time its image was first shown (the folder session's image re-segmented by a
    round's model: the clinician's time on it goes on); else the clock restarts with the new mask.
    Returns {"mask": layer, "proposal": layer or None, "probability": layer, "attention": [...],
    "kept_edited": bool, "painted_proposal_kept": bool (the proposal was painted on: kept, the new prediction not shown)}.
    """
    name = image_layer.name
    placement = spatial_placement(image_layer)
    result = {"kept_edited": False, "proposal": None, "painted_proposal_kept": False}
    made_by = {MODEL_VERSION: model_version}
    result["probability"] = show_probability(viewer, image_layer, prediction, model_version)

    mask = layer_of(viewer, image_layer, MASK)
    if mask is None:
        # a copy: the brush paints into the layer's array, and a prediction may be kept (the session's cache) and
        # shown again as the model's mask
        mask = viewer.add_labels(prediction.mask.copy(), name=f"{name} mask", opacity=MASK_OPACITY, visible=visible,
                                 metadata=_prediction_metadata(image_layer, MASK, prediction, model_version),
                                 colormap=mask_colormap(), **placement)
        set_mask_display(mask, display)
    elif not mask_was_edited(mask):
        # the metadata first: whoever hears the layer's data event reads the new mask's model, not the old one's
        since = mask.metadata.get(PREDICTED_AT)
        mask.metadata.update(_prediction_metadata(image_layer, MASK, prediction, model_version))
        if keep_started and isinstance(since, float):
            mask.metadata[PREDICTED_AT] = since
        replace_labels(mask, prediction.mask.copy())
    else:
        result["kept_edited"] = True
        result["proposal"], shown = _update_proposal(viewer, image_layer, prediction, model_version, visible)
        result["painted_proposal_kept"] = not shown
    result["mask"] = mask

    result["attention"] = []
    maps = prediction.attention or {}
    for att_name, data in maps.items():
        full = f"{name} {att_name}"
        layer = next((x for x in layers_of(viewer, image_layer, ATTENTION) if x.metadata.get("map") == att_name), None)
        if layer is not None:
            layer.metadata.update(made_by)
            layer.data = data
            layer.contrast_limits = attention_limits(data)
        else:
            layer = viewer.add_image(
                data, name=full, colormap="inferno", contrast_limits=attention_limits(data), opacity=0.35,
                blending="additive", visible=False,
                metadata={ROLE: ATTENTION, IMAGE_ID: image_id(image_layer), "map": att_name, **made_by}, **placement)
            _move_above(viewer, layer, image_layer)
        result["attention"].append(layer)
    # Maps this run did not make are an earlier model's (or run's): they stayed beside the new mask with nothing to
    # tell them apart (trial of session 28). Derived data, nothing of the user's: they go.
    for stale in [x for x in layers_of(viewer, image_layer, ATTENTION) if x.metadata.get("map") not in maps]:
        viewer.layers.remove(stale)
    return result


def replace_labels(layer, data: np.ndarray) -> None:
    """Give a Labels layer new pixels and forget its brush history.

    napari keeps undo/redo steps as (pixels, old values, new values) across ``layer.data = ...``: after the
    mask is replaced (a re-segmentation, the next image of a folder), Ctrl+Z would write the old mask's
    pixels into the new one and Redo would paint an old stroke onto it. Its history belongs to the pixels
    it was made on, so it goes with them (``_reset_history`` is what napari itself calls when a layer
    stops being editable).
    """
    layer.data = data
    forget_brush_history(layer)
    layer.metadata.pop(CLICKS_METADATA, None)  # the clicks were made on the old pixels (stored with the next image's)


def forget_brush_history(layer) -> None:
    """Empty a Labels layer's undo and redo history (``_reset_history`` is what napari itself calls when a layer stops
    being editable; there is no public way); asked of the layer itself (:func:`unproxied`)."""
    reset = getattr(unproxied(layer), "_reset_history", None)
    if callable(reset):
        reset()


def has_brush_history(layer) -> bool:
    """Whether napari's Ctrl+Z on a Labels layer has a step to undo (its undo history, private as above)."""
    return bool(getattr(unproxied(layer), "_undo_history", ()))


def _add_proposal(viewer, image_layer, data: np.ndarray, metadata: dict, visible: bool = True):
    # Adding a layer makes it the active one: the user's mask (and its paint brush) must stay active, or the
    # next brush stroke or "Accept correction" would go to the model's proposal instead of their correction.
    active = viewer.layers.selection.active
    proposal = viewer.add_labels(np.array(data, copy=True), name=f"{image_layer.name} proposal", opacity=0.6,
                                 visible=visible, metadata=metadata, colormap=proposal_colormap(),
                                 **spatial_placement(image_layer))
    proposal.contour = 2  # an outline beside the user's filled mask: compare, copy what helps
    # just above its own image's mask, not on top of the stack (over whichever image is shown there)
    _move_above(viewer, proposal, layer_of(viewer, image_layer, MASK) or image_layer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return proposal


def start_proposal(viewer, image_layer, mask: np.ndarray, starting_point: np.ndarray, model_version: str):
    """The image's proposal given back as the user left it, painted on (kept on disk when napari closed): its edits
    measured against ``starting_point``, the model's mask it showed."""
    metadata = {ROLE: PROPOSAL, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(starting_point),
                MODEL_VERSION: model_version, PREDICTED_MASK: starting_point.copy(), PREDICTED_AT: time.time()}
    proposal = layer_of(viewer, image_layer, PROPOSAL)
    if proposal is not None:  # one per image (the folder session's image shown again took its painted one back)
        if not mask_was_edited(proposal):
            proposal.metadata.update(metadata)
            replace_labels(proposal, np.array(mask, copy=True))
        return proposal
    return _add_proposal(viewer, image_layer, mask, metadata)


def _update_proposal(viewer, image_layer, prediction, model_version: str, visible: bool):
    proposal = layer_of(viewer, image_layer, PROPOSAL)
    metadata = _prediction_metadata(image_layer, PROPOSAL, prediction, model_version)
    if proposal is None:
        proposal = _add_proposal(viewer, image_layer, prediction.mask, metadata, visible)
    elif mask_was_edited(proposal):  # painted on: the user's work, not replaced (verification of session 33: a second
        return proposal, False       # Segment at another threshold overwrote 11,235 painted pixels without a word)
    else:
        proposal.metadata.update(metadata)
        replace_labels(proposal, prediction.mask.copy())
    return proposal, True


def _move_above(viewer, layer, below) -> None:
    """Put ``layer`` just above ``below`` (its image, so the mask added later or last stays on top; or its
    image's mask)."""
    if below in viewer.layers and layer in viewer.layers:
        src, dst = viewer.layers.index(layer), viewer.layers.index(below) + 1  # napari: insert before dst
        if dst not in (src, src + 1):
            viewer.layers.move(src, dst)


def set_mask_display(layer, display: str) -> None:
    """``filled`` (translucent) or ``outline`` (contour only: the tissue stays fully visible)."""
    if display not in MASK_DISPLAYS:
        raise ValueError(f"mask display must be one of {MASK_DISPLAYS}, not {display!r}")
    layer.contour = 2 if display == "outline" else 0
    layer.opacity = 0.9 if display == "outline" else MASK_OPACITY


def mask_display_of(layer) -> str:
    """The :data:`MASK_DISPLAYS` entry a mask layer is drawn as."""
    return "outline" if layer.contour > 0 else "filled"


def grid_enabled(viewer) -> bool:
    """Whether napari shows the layers side by side (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    grid = getattr(canvas, "grid", None) if canvas is not None else None
    return bool((grid if grid is not None else viewer.grid).enabled)


def layer_is_shown(viewer, image_layer) -> bool:
    """Whether the image is visible and no opaque visible image lies above it (in grid mode every image is shown)."""
    if not image_layer.visible:
        return False
    if grid_enabled(viewer):
        return True
    index = viewer.layers.index(image_layer)
    return not any(is_source_image(x) and x.visible and x.opacity >= 0.99 for x in list(viewer.layers)[index + 1:])


def bring_to_front(viewer, image_layer) -> bool:
    """Move an image and its layers (mask, probability, ...) above every other image when a visible image
    covers it: a mask just made for an image under another one would otherwise be painted blind. Their
    order among themselves is kept. Returns whether anything moved."""
    if grid_enabled(viewer) or layer_is_shown(viewer, image_layer):  # grid: the order is the grid's layout
        return False
    raise_to_top(viewer, image_layer)
    return True


def raise_to_top(viewer, image_layer) -> None:
    """Move an image and its layers above every other layer, keeping their order among themselves. (Layers are only
    ever moved up: moving a visible mask down under another image made napari crash, under llvmpipe, when the image
    below it was closed.)"""
    for layer in _group(viewer, image_layer):  # bottom first: each goes to the top in turn, so the group keeps its order
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))


def in_view(viewer, image_layer, *also) -> bool:
    """Whether ``image_layer`` and ``also`` (its mask) are visible with no image drawn over them, ``also`` above the
    image (a mask under its own opaque image is not seen either)."""
    return (all(layer.visible for layer in (image_layer, *also)) and layer_is_shown(viewer, image_layer)
            and not _under(viewer, image_layer, also))


def _under(viewer, image_layer, layers) -> list:
    """Those of ``layers`` below ``image_layer`` in the layer list (in grid mode, none: every layer is shown)."""
    if grid_enabled(viewer) or image_layer not in viewer.layers:
        return []
    index = viewer.layers.index(image_layer)
    return [x for x in layers if x in viewer.layers and viewer.layers.index(x) < index]


def bring_into_view(viewer, image_layer, *also) -> bool:
    """Show ``image_layer`` and ``also`` (its mask): its layers raised above an image that covers it, and made visible;
    its layers this function hid for another image shown again; other images that would stick out around it hidden.
    Returns whether anything changed.

    The widgets follow the image selected in the layer list, but napari draws whichever image is on top: a click, a
    stroke or Accept went to a mask the clinician could not see (trial of session 27: 18041 pixels removed from a
    hidden mask, then stored for training)."""
    changed = bring_to_front(viewer, image_layer)
    for layer in _under(viewer, image_layer, also):  # only ever moved up (see raise_to_top)
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
        changed = True
    image_layer.metadata.pop(HIDDEN_EVERY, None)
    for layer in (image_layer, *also, *[x for x in _group(viewer, image_layer) if x.metadata.get(HIDDEN_FOR_VIEW)]):
        layer.metadata.pop(HIDDEN_FOR_VIEW, None)
        if not layer.visible:
            layer.visible, changed = True, True
    return hide_images_around(viewer, image_layer) or changed


HIDDEN_FOR_VIEW = "unetv2_hidden_for_view"  # hidden by bring_into_view for another image; shown again with its own


def _group(viewer, image_layer) -> list:
    """The image and the layers tied to it (mask, proposal, probability, attention, clicks), bottom first."""
    key = image_layer.metadata.get(IMAGE_ID)
    return [x for x in viewer.layers if x is image_layer or (key is not None and x.metadata.get(IMAGE_ID) == key)]


def _extent_2d(layer) -> np.ndarray:
    return np.asarray(layer.extent.world, dtype=float)[:, -2:]


def hide_images_around(viewer, image_layer) -> bool:
    """Hide the other visible images that stick out beyond ``image_layer``'s edges, with their layers. Raising an image
    over a larger one left the larger one's edges, and its mask, drawn around it: two frames read as one picture (trial
    of session 31: a 640x360 frame over a 640x512 one, the other's painted mask below it). Images it covers whole stay
    as they are (under it, unseen); in grid mode every image has its own place. Returns whether any was hidden."""
    if grid_enabled(viewer) or image_layer not in viewer.layers:
        return False
    low, high = _extent_2d(image_layer)
    hidden = False
    for other in [x for x in viewer.layers if is_source_image(x) and x.visible and not same_layer(x, image_layer)]:
        other_low, other_high = _extent_2d(other)
        if np.all(other_low >= low - 1e-6) and np.all(other_high <= high + 1e-6):
            continue
        hidden = _hide_for_view(viewer, other) or hidden
    return hidden


def _hide_for_view(viewer, image_layer) -> bool:
    """Hide the image and its layers, marked to come back when it is viewed; returns whether any was visible."""
    image_layer.metadata.pop(HIDDEN_EVERY, None)  # (hidden for one image's view now: hide_every_image marks its own)
    hidden = False
    for layer in _group(viewer, image_layer):
        if layer.visible:
            layer.metadata[HIDDEN_FOR_VIEW] = True
            layer.visible, hidden = False, True
    return hidden


def hide_every_image(viewer) -> bool:
    """Hide every visible image with its layers, as :func:`hide_images_around` hides those that stick out (they come
    back when viewed): the folder session's image that could not be read left the canvas to another widget's image,
    taken for it (trial of session 35). Returns whether any was hidden."""
    hidden = False
    for other in [x for x in viewer.layers if is_source_image(x) and x.visible]:
        hidden = _hide_for_view(viewer, other) or hidden
        other.metadata[HIDDEN_EVERY] = True
    return hidden


HIDDEN_EVERY = "unetv2_hidden_every"  # hidden by hide_every_image: shown again only when viewed (bring_into_view)


def ready_to_paint(viewer, mask_layer) -> None:
    """Select the mask with the paint brush on label 1, as a person correcting it needs."""
    viewer.layers.selection.active = mask_layer
    mask_layer.selected_label = 1
    mask_layer.mode = "paint"
    # napari's status bar names the layer under the cursor only when the cursor moves or another layer becomes
    # active: the folder session's reused mask layer, renamed for the next image, was still named as the last one
    # (stop 30's list)
    update_status = getattr(viewer, "update_status_from_cursor", None)
    if callable(update_status):
        update_status()


def start_mask(viewer, image_layer, mask: np.ndarray, starting_point: np.ndarray, model_version: str,
               display: str = "filled"):
    """The editable mask of an image just shown: the image's mask layer reused (pixels replaced, no
    edit history carried over) or added. ``starting_point`` is what counts as unedited (the model's
    mask, or a mask read from a file); edits are measured against it."""
    metadata = {ROLE: MASK, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(starting_point),
                MODEL_VERSION: model_version, PREDICTED_MASK: starting_point.copy(), PREDICTED_AT: time.time()}
    layer = layer_of(viewer, image_layer, MASK)
    mask = np.array(mask, copy=True)  # painted in place: never the caller's array (a cached prediction's mask)
    if layer is None:
        layer = viewer.add_labels(mask, name=f"{image_layer.name} mask", opacity=MASK_OPACITY, metadata=metadata,
                                  colormap=mask_colormap(), **spatial_placement(image_layer))
        set_mask_display(layer, display)
    else:
        layer.metadata.update(metadata)  # before the pixels (see show_prediction)
        replace_labels(layer, mask)
        layer.name = f"{image_layer.name} mask"
    return layer


def mask_colormap():
    """Foreground in cyan, whatever label is painted (every label but 0 is stored as lesion: a stroke with label 2,
    after napari's "+" or "new label", was stored but drawn transparent); background transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "cyan", 0: "transparent", 1: "cyan"})


def proposal_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "magenta", 0: "transparent", 1: "magenta"})


def click_layers(viewer, image_layer) -> tuple:
    """The ``<image> clicks`` Points layer and ``<image> box`` Shapes layer of the click widget (added once),
    tied to the image by role (as its mask is), so that whoever replaces the image's pixels (the folder
    session) removes them with its other layers instead of leaving old points over the next image."""
    placement = spatial_placement(image_layer)
    tie = {IMAGE_ID: image_id(image_layer)}
    box = layer_of(viewer, image_layer, BOX)
    if box is None:
        box = viewer.add_shapes(name=f"{image_layer.name} box", shape_type="rectangle", edge_color="yellow",
                                face_color="transparent", edge_width=2, ndim=2, metadata={ROLE: BOX, **tie}, **placement)
    box.mode = "add_rectangle"
    points = layer_of(viewer, image_layer, CLICKS)
    if points is None:
        points = viewer.add_points(np.empty((0, 2)), name=f"{image_layer.name} clicks", size=12, border_color="white",
                                   ndim=2, metadata={ROLE: CLICKS, **tie}, **placement)
    points.mode = "pan_zoom"  # the widget places points itself: a click is positive or negative, a drag pans
    return points, box


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


def stored_as_accepted(layer) -> bool:
    """A mask whose pixels are exactly those it had when *Correct & retrain* stored it (nothing painted since)."""
    accepted = layer.metadata.get(ACCEPTED_HASH)
    return bool(accepted) and role_of(layer) == MASK and image_hash(np.asarray(layer.data)) == accepted


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
            made_from = grid is not None and grid != _grid_of(layer)
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
    layer.metadata[IMAGE_GRID] = _grid_of(layer)  # (a split of the reopened image kept its id: cold review, session 37)
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
