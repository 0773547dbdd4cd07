"""Session 38: a clinician trial of display choices over a sequence of images, a colonoscopy clip as a stack, large
images and the keyboard. Each test failed on the code before its fix."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)

PLUGIN = "napari-unetv2"


def test_a_new_model_segments_each_open_image_again_as_it_was_segmented(make_napari_viewer, qtbot, isolated_home,
                                                                       small_checkpoint):
    """Retrain's adoption (and Roll back) re-segmented every open image at the model's own threshold and mode: a mask
    the clinician made at threshold 0.3 came back at 0.5, a tile-mode image in resize mode, without a word."""
    from test_gui_findings import dock, segment, two_samples_and_segment, wait

    from napari_unetv2.widgets._layers import MASK, PROBABILITY, PREDICTION_SETTINGS, layer_of

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    rt = dock(viewer, "Correct & retrain")
    seg.image.value = first
    seg.threshold.value, seg.mode.value, seg.tile_size.value = 0.3, "tile", 256
    segment(qtbot, seg)
    assert first.metadata[PREDICTION_SETTINGS]["mode"] == "tile"
    rt.models.use(rt.models.store.add(small_checkpoint).version)  # a version of the bundled model's line
    worker = rt.resegment("now using it")
    wait(qtbot, worker)
    qtbot.waitUntil(lambda: rt.resegmented == 1, timeout=60_000)
    probability = np.asarray(layer_of(viewer, first, PROBABILITY).data)
    mask = np.asarray(layer_of(viewer, first, MASK).data)
    assert ((probability >= 0.3) & (probability < 0.5)).any()  # the two thresholds differ on this image
    np.testing.assert_array_equal(mask, (probability >= 0.3).astype(mask.dtype))
    assert first.metadata[PREDICTION_SETTINGS] == {"threshold": 0.3, "mode": "tile", "tile_size": 256, "tta": False}
    status = rt.status.value.replace("\u200b", "")
    assert "each at the threshold and mode it was segmented with" in status, status


def test_settings_read_back_from_an_image_are_checked():
    """What ``settings_of`` hands the predictor comes from layer metadata (anyone can write it): only valid values."""
    from types import SimpleNamespace

    from napari_unetv2.widgets._layers import PREDICTION_SETTINGS, settings_of

    def image(recorded):
        return SimpleNamespace(metadata={PREDICTION_SETTINGS: recorded})

    assert settings_of(SimpleNamespace(metadata={})) == {}
    assert settings_of(image("0.3")) == {}
    assert settings_of(image({"threshold": 0.3, "mode": "tile", "tile_size": 512, "tta": True})) == {
        "threshold": 0.3, "mode": "tile", "tile_size": 512, "tta": True}
    assert settings_of(image({"threshold": 1.5, "mode": "tiles", "tile_size": 512, "tta": "yes"})) == {}
    assert settings_of(image({"threshold": True, "mode": "tile", "tile_size": 10, "tta": None})) == {"mode": "tile"}
    assert settings_of(image({"threshold": 0.4, "mode": "resize", "tile_size": 512})) == {"threshold": 0.4,
                                                                                          "mode": "resize"}


def test_a_click_mark_deleted_or_moved_with_napari_tools_is_put_back(make_napari_viewer, qtbot):
    """A click's mark deleted with napari's point tools left the click in effect and counted; *Undo last click* then
    took away the other click's mark, leaving a 12,853-pixel hole with no mark, stored with the correction."""
    from test_clicks_widget import blob, segmented_viewer, two_blobs_probability

    from napari_unetv2.interactive import CLICKS_METADATA

    probability = two_blobs_probability()
    probability[blob(40, 40, 10)] = 0.9  # a false blob
    viewer, widget, mask = segmented_viewer(make_napari_viewer, probability)
    points = viewer.layers["frame clicks"]
    widget.click(40, 40, positive=False)  # removes the false blob
    widget.click(170, 230, positive=True)  # adds the missed one
    points.selected_data = {0}
    points.remove_selected()  # napari's delete of the first mark
    qtbot.waitUntil(lambda: len(points.data) == 2, timeout=5000)
    np.testing.assert_array_equal(points.data, [[40, 40], [170, 230]])
    assert [tuple(c[:3]) for c in points.face_color] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    assert "Undo last click" in widget.status.value and "2 click(s) in effect" in widget.status.value
    points.data = np.array([[40.0, 40.0], [100.0, 100.0]])  # napari's select tool dragged the second mark
    qtbot.waitUntil(lambda: np.array_equal(points.data, [[40, 40], [170, 230]]), timeout=5000)
    widget.undo()  # takes back the last click (the added blob), and its own mark
    assert mask.data[blob(170, 230, 15)].sum() == 0 and mask.data[blob(40, 40, 10)].sum() == 0
    np.testing.assert_array_equal(points.data, [[40, 40]])
    assert mask.metadata[CLICKS_METADATA] == 1
    qtbot.wait(50)  # the widget's own changes are not taken for napari's
    np.testing.assert_array_equal(points.data, [[40, 40]])
