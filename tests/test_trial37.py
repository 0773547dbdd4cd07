"""Session 37: what stop 36 left, and a clinician trial of napari's own layer actions between the plugin's steps.
Each test failed on the code before its fix."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)

PLUGIN = "napari-unetv2"


def test_the_empty_mask_note_gives_way_once_painted(make_napari_viewer, qtbot, isolated_home):
    """"The model marked nothing in this image (its mask is empty)" went on being said over a painted mask."""
    from test_gui_findings import segment

    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    image = viewer.add_image(np.full((256, 256, 3), 128, np.uint8), name="plain grey")
    seg.image.value = image
    segment(qtbot, seg)
    assert "its mask is empty" in seg.status.value, seg.status.value
    mask = seg.last_result["mask"]
    mask.paint((128, 128), 1)  # a brush stroke: napari's paint event
    assert mask.data.any()
    status = seg.status.value.replace("\u200b", "")
    assert "its mask is empty" not in status and "holds what you painted" in status, status
    assert status.startswith("done in"), status  # the rest of what was said stays

