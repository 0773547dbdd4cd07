"""What the plugin's layers are: the metadata keys it reads, a layer's role and image, and finding them (names are for
people and may be renamed; the metadata is what the code reads)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from ...corrections.correction_set import image_hash
from ...files.paths import folder_text

ROLE = "unetv2_role"
IMAGE_ID = "unetv2_image"
PREDICTION_HASH = "unetv2_prediction_hash"
PREDICTED_MASK = "unetv2_predicted_mask"  # a copy: painting changes layer.data in place
PREDICTED_AT = "unetv2_predicted_at"
PREDICTION_SETTINGS = "unetv2_prediction_settings"  # in an image layer: the threshold, mode, tile size and flip TTA of
# its last prediction, for whoever segments it again on its own (a new model put in use: Correct & retrain)
MODEL_VERSION = "model_version"
SOURCE_FILE = "unetv2_source_file"  # in an image layer the plugin added from a file (Batch folder's results): that file
# in a mask (or proposal) layer beside MODEL_VERSION: how that model made it ("resize, threshold 0.5"; settings_text),
# stored with its correction ("" when unknown: a mask given back from disk, drawn by hand)
MODEL_SETTINGS = "model_settings"
# in a mask (or proposal) layer: the bundled model whose images its image looks like, where that is not the line of the
# model that made the mask (inference/domain.py; None: no hint). A correction of it would train the wrong line.
ADVISED_MODEL = "unetv2_advised_model"
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
# another version's mask of an image, outlined beside its own (Correct & retrain's *Compare*): for looking, one per image
COMPARISON = "comparison"
MASK_OPACITY = 0.45  # translucent: the tissue under the mask stays visible
MASK_DISPLAYS = ("filled", "outline")


def image_id(image_layer) -> str:
    """A stable id for an image layer (stored in its metadata on first use; survives renaming), with the pixel grid it
    was given for (:func:`disown_napari_copies`)."""
    if IMAGE_ID not in image_layer.metadata:
        image_layer.metadata[IMAGE_ID] = uuid.uuid4().hex[:12]
    if IMAGE_GRID not in image_layer.metadata:  # (not computed at every call: image_id is asked in loops)
        image_layer.metadata[IMAGE_GRID] = grid_of(image_layer)
    return image_layer.metadata[IMAGE_ID]


IMAGE_GRID = "unetv2_image_grid"  # in an image layer: [its spatial shape, rgb] when it was given its id


def grid_of(image_layer) -> list:
    return [list(spatial_shape(image_layer)), bool(image_layer.rgb)]


_ROLE_KINDS: dict = {}  # role -> the napari layer class that role is played by


def _kind_of(role: str):
    if not _ROLE_KINDS:
        from napari.layers import Image, Labels, Points, Shapes

        _ROLE_KINDS.update({MASK: Labels, PROPOSAL: Labels, REFERENCE: Labels, COMPARISON: Labels, PROBABILITY: Image,
                            ATTENTION: Image, CLICKS: Points, BOX: Shapes})
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


def _opened_from(image_layer) -> Optional[str]:
    """The file the image layer came from: napari's ``source.path``, else the one the plugin read it from
    (``SOURCE_FILE``: *Batch folder*'s results)."""
    opened_from = getattr(getattr(image_layer, "source", None), "path", None)
    metadata = getattr(image_layer, "metadata", None)
    if not opened_from and isinstance(metadata, dict) and isinstance(metadata.get(SOURCE_FILE), str):
        opened_from = metadata[SOURCE_FILE]
    return opened_from or None


def file_name_of(image_layer) -> Optional[str]:
    """The name of the file the image layer was opened from, else None: a layer's name may be napari's "frame [1]" for
    an image opened twice, which no folder of files names (clinician trial of session 39: a mask exported as
    ``frame_1_mask.png`` was not found for ``frame.jpg``)."""
    opened_from = _opened_from(image_layer)
    return Path(opened_from).name if opened_from else None


def folder_of(image_layer) -> Optional[str]:
    """The folder of the file the image layer was opened from (absolute), else None: recorded with a correction beside
    the file's name (two sites' IMG_0001.png: clinician trial of session 42)."""
    opened_from = _opened_from(image_layer)
    return folder_text(opened_from) if opened_from else None


def mask_was_edited(layer, digest: Optional[str] = None) -> bool:
    """True when the layer's pixels differ from what the model wrote into it (``digest``: the pixels' ``image_hash``,
    when the caller has it)."""
    expected = layer.metadata.get(PREDICTION_HASH)
    return expected is None or expected != (digest or image_hash(np.asarray(layer.data)))


def spatial_placement(image_layer) -> dict:
    """The image's whole placement in the world (scale, translate, rotate, shear and the extra affine), so the new
    layers line up with it also after napari's transform mode rotated it (napari's axes exclude RGB channels)."""
    return {"scale": tuple(image_layer.scale), "translate": tuple(image_layer.translate),
            "rotate": np.asarray(image_layer.rotate), "shear": np.asarray(image_layer.shear),
            "affine": image_layer.affine.affine_matrix}


def stored_as_accepted(layer, digest: Optional[str] = None) -> bool:
    """A mask whose pixels are exactly those it had when *Correct & retrain* stored it (nothing painted since;
    ``digest``: the pixels' ``image_hash``, when the caller has it)."""
    accepted = layer.metadata.get(ACCEPTED_HASH)
    return bool(accepted) and role_of(layer) == MASK and (digest or image_hash(np.asarray(layer.data))) == accepted
