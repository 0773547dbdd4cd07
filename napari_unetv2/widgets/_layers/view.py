"""What is on screen: which image napari draws on top, bringing an image and its mask into view, hiding the images
around it (and showing them again), the brush made ready."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .roles import IMAGE_ID, is_source_image, same_layer


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


def plane_on_screen(viewer, layer) -> tuple[Optional[int], str]:
    """(the index of the plane of a stack layer (planes, height, width) that napari draws, ""), or (None, why it draws
    none of them). Accept stores that plane: with the axes rolled or transposed (a time-by-width cut on the canvas) it
    stored the frame the slider pointed at, which was not on screen (clinician trial of session 38)."""
    ndim = viewer.dims.ndim  # (napari aligns the layers' trailing axes: the layer's height and width are the last two)
    if viewer.dims.ndisplay != 2:
        return None, "napari shows it in 3D: switch the viewer to 2D and choose the frame with the slider"
    if tuple(viewer.dims.displayed) != (ndim - 2, ndim - 1):
        return None, ("napari shows its axes rolled or transposed, so the canvas is no frame of it: set them back with "
                      "the viewer's Transpose and Roll buttons (below the layer list) until the slider runs through its "
                      "frames")
    plane = int(round(float(layer.world_to_data(viewer.dims.point[-layer.ndim:])[0])))
    if not 0 <= plane < layer.data.shape[0]:
        return None, "the slider is beyond its frames"
    return plane, ""
