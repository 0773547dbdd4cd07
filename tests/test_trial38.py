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
