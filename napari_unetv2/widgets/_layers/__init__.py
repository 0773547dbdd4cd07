"""The plugin's layers and their roles: the only code that adds, finds or updates them.

Every layer the plugin makes carries its role and the image it belongs to in ``layer.metadata``
(names are for people and may be renamed; the metadata is what the code reads):

- ``unetv2_role``: ``mask`` (the editable Labels layer), ``proposal`` (a newer prediction for an image
  whose mask the user has edited: one per image, updated in place), ``probability``, ``attention``,
  ``clicks`` and ``box`` (the click widget's), ``reference`` (a sample's ground truth: for comparing, not a correction),
  ``comparison`` (another version's mask of the image, outlined beside its own: for looking, one per image);
- ``unetv2_image``: the id of the image layer (kept in that layer's own metadata under the same key).

Re-segmenting never adds a layer per round: the mask is updated in place unless it was edited, in
which case the new prediction goes into the image's single proposal layer.

- :mod:`.roles`: the metadata keys, a layer's role and image, finding an image's layers;
- :mod:`.outputs`: the layers added for an image and updated in place (probability, mask, proposal, attention, clicks);
- :mod:`.view`: what is on screen (the image on top, bringing an image into view, hiding the images around it);
- :mod:`.events`: napari's own actions on those layers (closing, deleting, copying, converting, reopening).

The widgets import from here.
"""

from .events import (  # noqa: F401
    BRUSH_MODES,
    CLOSED_IMAGE,
    CLOSED_NOTE,
    HIDDEN_ON_CLOSE,
    PLUGIN_KEYS,
    REMOVED_BY_PLUGIN,
    DeletedMasks,
    deleted_masks,
    disown_napari_copies,
    follow_removed_images,
    forget_removed_image,
    leave_brush_before_removal,
    no_box_behind_the_brush,
    plugin_adds,
    reattach_reopened_image,
    remove_layer,
)
from .outputs import (  # noqa: F401
    attention_limits,
    brush_size_in_use,
    click_layers,
    comparison_colormap,
    forget_brush_history,
    has_brush_history,
    mask_colormap,
    mask_display_of,
    proposal_colormap,
    record_settings,
    replace_labels,
    set_mask_display,
    settings_of,
    settings_to_segment_again,
    show_comparison,
    show_prediction,
    show_probability,
    start_mask,
    start_proposal,
)
from .roles import (  # noqa: F401
    ACCEPTED_HASH,
    ACCEPTED_MASKS,
    ADVISED_MODEL,
    ATTENTION,
    BOX,
    CLICKS,
    COMPARISON,
    IMAGE_GRID,
    IMAGE_ID,
    KEPT_ACCEPTED,
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
    REFERENCE,
    ROLE,
    SESSION_IMAGE,
    SOURCE_FILE,
    belongs_to,
    converted_mask_note,
    converted_role,
    file_name_of,
    folder_of,
    grid_of,
    image_for,
    image_id,
    is_source_image,
    layer_of,
    layers_of,
    let_go_of_converted,
    mask_was_edited,
    note_accepted,
    role_of,
    same_layer,
    spatial_placement,
    spatial_shape,
    stored_as_accepted,
    unproxied,
)
from .view import (  # noqa: F401
    HIDDEN_EVERY,
    HIDDEN_FOR_VIEW,
    bring_into_view,
    bring_to_front,
    grid_enabled,
    hide_every_image,
    hide_images_around,
    in_view,
    layer_is_shown,
    plane_on_screen,
    raise_to_top,
    ready_to_paint,
)
