"""The layers the plugin adds for an image and updates in place: probability, mask, proposal, attention maps, the
click widget's points and box; how a mask is drawn; its brush history."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ...corrections.correction_set import image_hash
from ...inference.settings import settings_from_text, settings_of_prediction
from ...interactive import CLICKS_METADATA
from .roles import (
    ADVISED_MODEL,
    ATTENTION,
    BOX,
    CLICKS,
    COMPARISON,
    IMAGE_ID,
    MASK,
    MASK_DISPLAYS,
    MASK_OPACITY,
    MODEL_SETTINGS,
    MODEL_VERSION,
    PREDICTED_AT,
    PREDICTED_MASK,
    PREDICTION_HASH,
    PREDICTION_SETTINGS,
    PROBABILITY,
    PROPOSAL,
    ROLE,
    image_id,
    layer_of,
    layers_of,
    mask_was_edited,
    role_of,
    spatial_placement,
    unproxied,
)

MODES = ("resize", "tile")  # the predictor's modes
AUTO_LIMITS = "unetv2_auto_limits"  # in an attention layer: the contrast limits the plugin last set (not the user)


def _prediction_metadata(image_layer, role: str, prediction, model_version: str) -> dict:
    return {ROLE: role, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(prediction.mask),
            MODEL_VERSION: model_version, MODEL_SETTINGS: settings_of_prediction(prediction),
            PREDICTED_MASK: prediction.mask.copy(), PREDICTED_AT: time.time(),
            ADVISED_MODEL: getattr(prediction, "advised_model", None)}


def attention_limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits of one attention map: its 1st-99th percentiles (the maps vary over a narrow
    range, e.g. 0.92-1.0; on a 0-1 scale they would be a flat bright rectangle)."""
    low, high = (float(v) for v in np.percentile(data, [1, 99]))
    return (low, high) if high > low else (low, low + 1e-6)


def show_probability(viewer, image_layer, prediction, model_version: str = ""):
    """Add or update the image's probability layer (hidden when added), nothing else; returns it. The image records how
    the prediction was made (:func:`record_settings`)."""
    record_settings(image_layer, prediction)
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
    "kept_edited": bool, "painted_proposal_kept": bool (the proposal was painted on: kept, the new prediction not shown),
    "replaced": (pixels changed, pixels) of an unedited mask replaced in place, else None}.
    """
    name = image_layer.name
    placement = spatial_placement(image_layer)
    result = {"kept_edited": False, "proposal": None, "painted_proposal_kept": False, "replaced": None}
    made_by = {MODEL_VERSION: model_version}
    result["probability"] = show_probability(viewer, image_layer, prediction, model_version)

    mask = layer_of(viewer, image_layer, MASK)
    if mask is None:
        # a copy: the brush paints into the layer's array, and a prediction may be kept (the session's cache) and
        # shown again as the model's mask
        brush = brush_size_in_use(viewer)
        mask = viewer.add_labels(prediction.mask.copy(), name=f"{name} mask", opacity=MASK_OPACITY, visible=visible,
                                 metadata=_prediction_metadata(image_layer, MASK, prediction, model_version),
                                 colormap=mask_colormap(), **placement)
        set_mask_display(mask, display, brush)
    elif not mask_was_edited(mask):
        # the metadata first: whoever hears the layer's data event reads the new mask's model, not the old one's
        since = mask.metadata.get(PREDICTED_AT)
        mask.metadata.update(_prediction_metadata(image_layer, MASK, prediction, model_version))
        if keep_started and isinstance(since, float):
            mask.metadata[PREDICTED_AT] = since
        before = np.asarray(mask.data) > 0
        replace_labels(mask, prediction.mask.copy())
        if before.shape == prediction.mask.shape:  # (how much the new model changed it: said after a switch of model)
            result["replaced"] = (int(np.count_nonzero(before != (prediction.mask > 0))), before.size)
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
        limits = attention_limits(data)
        if layer is not None:
            # contrast limits the user set in napari's layer controls stay (they were reset by every run, every round
            # and every roll back: clinician trial of session 38); the plugin's own follow the new map
            own = tuple(layer.metadata.get(AUTO_LIMITS, ())) == tuple(float(v) for v in layer.contrast_limits)
            layer.metadata.update(made_by)
            layer.data = data
            if own:
                layer.contrast_limits = limits
                layer.metadata[AUTO_LIMITS] = [float(v) for v in layer.contrast_limits]
        else:
            layer = viewer.add_image(
                data, name=full, colormap="inferno", contrast_limits=limits, opacity=0.35, blending="additive",
                visible=False, metadata={ROLE: ATTENTION, IMAGE_ID: image_id(image_layer), "map": att_name, **made_by},
                **placement)
            layer.metadata[AUTO_LIMITS] = [float(v) for v in layer.contrast_limits]
            _move_above(viewer, layer, image_layer)
        result["attention"].append(layer)
    # Maps this run did not make are an earlier model's (or run's): they stayed beside the new mask with nothing to
    # tell them apart (trial of session 28). Derived data, nothing of the user's: they go.
    for stale in [x for x in layers_of(viewer, image_layer, ATTENTION) if x.metadata.get("map") not in maps]:
        viewer.layers.remove(stale)
    return result


def record_settings(image_layer, prediction) -> None:
    """Note on the image how its prediction was made (threshold, mode, tile size, flip TTA), for :func:`settings_of`.
    A threshold or mode left to the model is noted as None: Segment's "model default" pinned the old model's mode on
    the next model (review of session 38)."""
    info, mode = getattr(prediction, "info", None), getattr(prediction, "mode", None)
    if isinstance(info, dict) and mode in MODES:
        left_to_model = info.get("model_defaults") or ()
        image_layer.metadata[PREDICTION_SETTINGS] = {
            "threshold": None if "threshold" in left_to_model else info.get("threshold"),
            "mode": None if "mode" in left_to_model else mode,
            "tile_size": info.get("tile_size"), "tta": info.get("tta")}


def settings_of(image_layer) -> dict:
    """The keyword arguments of ``Predictor.predict`` that segment the image again as it was last segmented: its
    threshold, mode, tile size and flip TTA (those recorded and valid; a threshold or mode left to the model is left
    to the next model). A new model put in use re-segmented every open image at the model's own threshold and mode: a
    clinician's 0.3 mask came back at 0.5, a tile-mode image in resize mode, without a word (clinician trial of
    session 38)."""
    recorded = image_layer.metadata.get(PREDICTION_SETTINGS)
    if not isinstance(recorded, dict):
        return {}
    settings = {}
    threshold, mode, tile, tta = (recorded.get(k) for k in ("threshold", "mode", "tile_size", "tta"))
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0.0 < threshold < 1.0:
        settings["threshold"] = float(threshold)
    if mode in MODES:
        settings["mode"] = mode
    if mode in ("tile", None) and isinstance(tile, int) and not isinstance(tile, bool) and 64 <= tile <= 4096:
        settings["tile_size"] = tile  # a tile-mode run's window side (a mode left to the model may be tile)
    if isinstance(tta, bool):
        settings["tta"] = tta
    return settings


def settings_to_segment_again(viewer, image_layer) -> dict:
    """:func:`settings_of` the image, else those recorded with its mask (``MODEL_SETTINGS``): a *Batch folder* result
    or a mask given back records them with the mask only, and *Compare on image* and a new version's re-segmenting ran
    such images at the model's defaults (a model compared with itself at threshold 0.5 against its own 0.1 mask "differed
    by 627 pixels": cold review of session 43)."""
    recorded = settings_of(image_layer)
    if recorded:
        return recorded
    mask = layer_of(viewer, image_layer, MASK)
    return settings_from_text(mask.metadata.get(MODEL_SETTINGS)) if mask is not None else {}


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
    active, brush = viewer.layers.selection.active, brush_size_in_use(viewer)
    proposal = viewer.add_labels(np.array(data, copy=True), name=f"{image_layer.name} proposal", opacity=0.6,
                                 visible=visible, metadata=metadata, colormap=proposal_colormap(),
                                 **spatial_placement(image_layer))
    proposal.contour = 2  # an outline beside the user's filled mask: compare, copy what helps
    if brush is not None:
        proposal.brush_size = brush
    # just above its own image's mask, not on top of the stack (over whichever image is shown there)
    _move_above(viewer, proposal, layer_of(viewer, image_layer, MASK) or image_layer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return proposal


def start_proposal(viewer, image_layer, mask: np.ndarray, starting_point: np.ndarray, model_version: str,
                   settings: str = ""):
    """The image's proposal given back as the user left it, painted on (kept on disk when napari closed): its edits
    measured against ``starting_point``, the model's mask it showed (made with ``settings``, when known)."""
    metadata = {ROLE: PROPOSAL, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(starting_point),
                MODEL_VERSION: model_version, MODEL_SETTINGS: settings, PREDICTED_MASK: starting_point.copy(),
                PREDICTED_AT: time.time()}
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


def set_mask_display(layer, display: str, brush_size: Optional[float] = None) -> None:
    """``filled`` (translucent) or ``outline`` (contour only: the tissue stays fully visible); ``brush_size``: the
    brush's, when given."""
    if display not in MASK_DISPLAYS:
        raise ValueError(f"mask display must be one of {MASK_DISPLAYS}, not {display!r}")
    layer.contour = 2 if display == "outline" else 0
    layer.opacity = 0.9 if display == "outline" else MASK_OPACITY
    if brush_size is not None:
        layer.brush_size = brush_size


def brush_size_in_use(viewer) -> Optional[float]:
    """The brush size of the mask being worked on (the selected one, else the topmost of the plugin's masks): each new
    image's mask started at napari's 10 after the clinician had set 25 on the one before (trial of session 38)."""
    active = viewer.layers.selection.active
    masks = [active] if active is not None and role_of(active) in (MASK, PROPOSAL) else []
    masks += [x for x in reversed(viewer.layers) if role_of(x) in (MASK, PROPOSAL)]
    return float(masks[0].brush_size) if masks else None


def mask_display_of(layer) -> str:
    """The :data:`MASK_DISPLAYS` entry a mask layer is drawn as."""
    return "outline" if layer.contour > 0 else "filled"

def start_mask(viewer, image_layer, mask: np.ndarray, starting_point: np.ndarray, model_version: str,
               display: str = "filled", advised_model: Optional[str] = None, settings: str = ""):
    """The editable mask of an image just shown: the image's mask layer reused (pixels replaced, no
    edit history carried over) or added. ``starting_point`` is what counts as unedited (the model's
    mask, or a mask read from a file); edits are measured against it. ``advised_model``: see ``ADVISED_MODEL``.
    ``settings``: how ``model_version`` made ``starting_point`` (``MODEL_SETTINGS``; "" when unknown)."""
    metadata = {ROLE: MASK, IMAGE_ID: image_id(image_layer), PREDICTION_HASH: image_hash(starting_point),
                MODEL_VERSION: model_version, MODEL_SETTINGS: settings, PREDICTED_MASK: starting_point.copy(),
                PREDICTED_AT: time.time(), ADVISED_MODEL: advised_model}
    layer = layer_of(viewer, image_layer, MASK)
    mask = np.array(mask, copy=True)  # painted in place: never the caller's array (a cached prediction's mask)
    if layer is None:
        brush = brush_size_in_use(viewer)
        layer = viewer.add_labels(mask, name=f"{image_layer.name} mask", opacity=MASK_OPACITY, metadata=metadata,
                                  colormap=mask_colormap(), **spatial_placement(image_layer))
        set_mask_display(layer, display, brush)
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


def comparison_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "yellow", 0: "transparent", 1: "yellow"})


def show_comparison(viewer, image_layer, mask: np.ndarray, model_version: str, label: str, settings: str = ""):
    """Another version's ``mask`` of the image outlined in yellow beside its own mask (one per image, replaced by the
    next comparison): after *Use this version* the old version's mask was gone from the screen, and nothing showed two
    versions side by side (clinician trial of session 43). For looking: no widget takes it for the image's mask. Its
    pixels replaced (a folder session's next image) take it away."""
    # (its model's mask kept as for a mask: saved with napari's writer, its record says how much was painted since)
    metadata = {ROLE: COMPARISON, IMAGE_ID: image_id(image_layer), MODEL_VERSION: model_version,
                MODEL_SETTINGS: settings, PREDICTED_MASK: np.array(mask, copy=True)}
    name = f"{image_layer.name} mask by {label}"
    found = layers_of(viewer, image_layer, COMPARISON)
    for extra in found[1:]:  # (napari's Convert to Image and back made a second one: one per image)
        viewer.layers.remove(extra)
    layer = found[0] if found else None
    if layer is not None:
        layer.metadata.update(metadata)
        replace_labels(layer, np.array(mask, copy=True))
        layer.name, layer.visible = name, True
        return layer
    active = viewer.layers.selection.active  # (the user's mask and its brush stay selected)
    layer = viewer.add_labels(np.array(mask, copy=True), name=name, opacity=0.9, metadata=metadata,
                              colormap=comparison_colormap(), **spatial_placement(image_layer))
    layer.contour = 2
    _move_above(viewer, layer, layer_of(viewer, image_layer, PROPOSAL) or layer_of(viewer, image_layer, MASK)
                or image_layer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


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
