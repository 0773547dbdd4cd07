"""Adding prediction results to a napari viewer without ever replacing a user's edits."""
from __future__ import annotations

import hashlib
import time

import numpy as np

PREDICTION_HASH = "unetv2_prediction_hash"
PREDICTED_MASK = "unetv2_predicted_mask"  # a copy: painting changes layer.data in place
PREDICTED_AT = "unetv2_predicted_at"


def array_hash(data: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(data).view(np.uint8), digest_size=16).hexdigest()


def mask_was_edited(layer) -> bool:
    """True when the layer's pixels differ from what the model wrote into it."""
    expected = layer.metadata.get(PREDICTION_HASH)
    return expected is None or expected != array_hash(np.asarray(layer.data))


def spatial_placement(image_layer) -> dict:
    """scale/translate of the image, so the new layers line up with it (napari's axes exclude RGB channels)."""
    return {"scale": tuple(image_layer.scale), "translate": tuple(image_layer.translate)}


def free_name(viewer, base: str) -> str:
    if base not in viewer.layers:
        return base
    i = 2
    while f"{base} [{i}]" in viewer.layers:
        i += 1
    return f"{base} [{i}]"


def show_prediction(viewer, image_layer, prediction, model_version: str = "") -> dict:
    """Add or update ``<image> probability``, ``<image> mask`` and the attention layers.

    A mask layer the user has edited is kept as it is; the new mask then goes into a new layer
    (``<image> mask [2]``...). Returns {"mask": layer, "probability": layer, "kept_edited": bool, ...}.
    """
    name = image_layer.name
    placement = spatial_placement(image_layer)
    result = {"kept_edited": False}

    prob_name = f"{name} probability"
    if prob_name in viewer.layers:
        viewer.layers[prob_name].data = prediction.probability
        result["probability"] = viewer.layers[prob_name]
    else:
        result["probability"] = viewer.add_image(
            prediction.probability, name=prob_name, colormap="magma", contrast_limits=(0, 1), opacity=0.5,
            blending="additive", visible=False, **placement)

    mask_name = f"{name} mask"
    metadata = {PREDICTION_HASH: array_hash(prediction.mask), "model_version": model_version,
                PREDICTED_MASK: prediction.mask.copy(), PREDICTED_AT: time.time()}
    existing = viewer.layers[mask_name] if mask_name in viewer.layers else None
    if existing is not None and not mask_was_edited(existing):
        existing.data = prediction.mask
        existing.metadata.update(metadata)
        result["mask"] = existing
    else:
        if existing is not None:
            result["kept_edited"] = True
            mask_name = free_name(viewer, mask_name)
        layer = viewer.add_labels(prediction.mask, name=mask_name, opacity=0.7, metadata=metadata,
                                  colormap=mask_colormap(), **placement)
        result["mask"] = layer

    result["attention"] = []
    for att_name, data in (prediction.attention or {}).items():
        full = f"{name} {att_name}"
        if full in viewer.layers:
            viewer.layers[full].data = data
            result["attention"].append(viewer.layers[full])
        else:
            result["attention"].append(viewer.add_image(
                data, name=full, colormap="viridis", contrast_limits=(0, 1), visible=False, **placement))
    return result


def mask_colormap():
    """Foreground in cyan (painting label 1 keeps that colour); background transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: "cyan"})


def click_layers(viewer, image_layer) -> tuple:
    """The ``<image> clicks`` Points layer and ``<image> box`` Shapes layer of the click widget (added once)."""
    placement = spatial_placement(image_layer)
    points_name, box_name = f"{image_layer.name} clicks", f"{image_layer.name} box"
    if box_name not in viewer.layers:
        viewer.add_shapes(name=box_name, shape_type="rectangle", edge_color="yellow", face_color="transparent",
                          edge_width=2, ndim=2, **placement)
    viewer.layers[box_name].mode = "add_rectangle"
    if points_name not in viewer.layers:
        viewer.add_points(np.empty((0, 2)), name=points_name, size=12, border_color="white", ndim=2, **placement)
    points = viewer.layers[points_name]
    points.mode = "pan_zoom"  # the widget places points itself: a click is positive or negative, a drag pans
    return points, viewer.layers[box_name]
