"""Session 39: stop 38's list worked through and a clinician trial over several days of use (napari closed, reopened
and killed between steps). Each test failed on the code before its fix."""

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)

PLUGIN = "napari-unetv2"


def test_a_mode_left_to_the_model_is_left_to_the_next_model(make_napari_viewer, qtbot, isolated_home, tmp_path,
                                                             monkeypatch):
    """Segment's "model default" mode was recorded as the mode it resolved to: a new model whose own mode is tile
    re-segmented the image in the old model's resize mode."""
    import torch
    from test_gui_findings import dock, segment, two_samples_and_segment, wait

    from napari_unetv2.checkpoints import ModelConfig, build_unetv2, bundled_checkpoint, read_config, save_checkpoint
    from napari_unetv2.inference import Predictor
    from napari_unetv2.widgets._layers import PREDICTION_SETTINGS, settings_of

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    rt = dock(viewer, "Correct & retrain")
    seg.image.value = first
    seg.threshold.value, seg.mode.value = 0.4, "model default"
    segment(qtbot, seg)
    assert first.metadata[PREDICTION_SETTINGS]["mode"] is None
    assert settings_of(first) == {"threshold": 0.4, "tta": False}
    torch.manual_seed(0)
    model = build_unetv2("tf_efficientnet_lite0", channels=16, pretrained=True).eval()
    config = ModelConfig.for_model(model, input_size=(64, 64), name="tile-model", inference_mode="tile",
                                   parent=read_config(bundled_checkpoint()).version)
    save_checkpoint(model, tmp_path / "tile.safetensors", config)
    modes, predict = [], Predictor.predict

    def spy(self, *args, **kwargs):
        prediction = predict(self, *args, **kwargs)
        modes.append(prediction.mode)
        return prediction

    monkeypatch.setattr(Predictor, "predict", spy)
    rt.models.use(rt.models.store.add(tmp_path / "tile.safetensors").version)
    worker = rt.resegment("now using it")
    wait(qtbot, worker)
    qtbot.waitUntil(lambda: rt.resegmented == 1, timeout=120_000)
    assert modes == ["tile"]  # the new model's own mode
    assert first.metadata[PREDICTION_SETTINGS]["mode"] is None  # still the model's: the next model decides again
    assert first.metadata[PREDICTION_SETTINGS]["threshold"] == 0.4
