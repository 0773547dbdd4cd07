"""A mask's brush history belongs to the pixels it was made on: when the plugin replaces a mask (re-segmentation,
the next image of a folder), napari's Ctrl+Z and Redo must not write an old stroke into the new mask."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (sets up the import guard before the viewer exists)
from napari_unetv2.inference import Prediction
from napari_unetv2.widgets._layers import show_prediction, start_mask

H, W = 60, 80


def prediction(rows: slice) -> Prediction:
    mask = np.zeros((H, W), np.uint8)
    mask[rows, 10:70] = 1
    return Prediction(probability=mask.astype(np.float32), mask=mask)


def test_redo_after_a_re_segmentation_does_not_paint_an_old_stroke(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((H, W), np.uint8), name="frame")
    show_prediction(viewer, image, prediction(slice(5, 15)), "a")
    mask = viewer.layers["frame mask"]
    mask.paint((40, 40), 1)  # a stroke, then taken back: the mask is the model's again, unedited
    mask.undo()
    show_prediction(viewer, image, prediction(slice(20, 30)), "b")  # re-segmented in place
    replaced = np.array(mask.data)
    mask.redo()
    np.testing.assert_array_equal(mask.data, replaced)


def test_undo_on_the_next_image_does_not_bring_back_the_last_images_pixels(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((H, W), np.uint8), name="frame")
    first = prediction(slice(5, 15)).mask
    start_mask(viewer, image, first, first, "a")
    mask = viewer.layers["frame mask"]
    mask.paint((10, 40), 0)  # the clinician erases part of the first image's mask
    second = prediction(slice(40, 50)).mask  # the next image, its lesion elsewhere, shown in the same layer
    start_mask(viewer, image, second, second, "a")
    mask.undo()
    np.testing.assert_array_equal(mask.data, prediction(slice(40, 50)).mask)


def test_segment_s_status_follows_a_mask_replaced_by_another_widget(make_napari_viewer, qtbot):
    """After Retrain (or Roll back) re-segmented the open images, Segment still said "segmented with version <old>"
    (session 26's second trial)."""
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((H, W), np.uint8), name="frame")
    show_prediction(viewer, image, prediction(slice(5, 15)), "old-version")
    other = viewer.add_image(np.zeros((H, W), np.uint8), name="other")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    segment.image.value = other
    segment.image.value = image  # the clinician comes back to the frame: the status names its mask's version
    qtbot.waitUntil(lambda: "old-version" in segment.status.value.replace("\u200b", ""), timeout=5000)
    show_prediction(viewer, image, prediction(slice(20, 30)), "new-version")  # as Correct & retrain does
    assert "new-version" in segment.status.value.replace("\u200b", "")
