"""GUI tests in a real napari viewer (under Xvfb when there is no display)."""
import subprocess
import sys

import numpy as np

import napari_unetv2.widgets  # noqa: F401  (sets up the import guard before the viewer exists)

PLUGIN = "napari-unetv2"


def dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    return widget


def run_and_wait(qtbot, widget, timeout=120_000):
    worker = widget.run()
    assert worker is not None, widget.status.value
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        pass
    qtbot.waitUntil(lambda: not widget.busy, timeout=5000)
    return worker


def test_manifest_validates():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", PLUGIN], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout + result.stderr


def test_sample_data_opens_image_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    names = [layer.name for layer in viewer.layers]
    assert len(names) == 2 and names[1].endswith("ground truth")
    assert viewer.layers[1].data.shape == viewer.layers[0].data.shape[:2]
    assert set(np.unique(viewer.layers[1].data)) == {0, 1}


def test_widget_segments_a_sample_end_to_end(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "kvasir")
    image = viewer.layers[0]
    widget = dock(viewer)
    widget.image.value = image
    widget.attention.value = True  # off by default (finding 4): asked for here
    run_and_wait(qtbot, widget)
    name = image.name
    for suffix in ("probability", "mask", "L1 spatial attention (1/4)", "L4 spatial attention (1/32)"):
        assert f"{name} {suffix}" in viewer.layers, (suffix, widget.status.value)
    mask = viewer.layers[f"{name} mask"]
    assert mask.data.shape == image.data.shape[:2]
    assert set(np.unique(mask.data)) <= {0, 1}
    assert not viewer.layers[f"{name} L1 spatial attention (1/4)"].visible
    path = tmp_path / "viewer.png"
    shot = viewer.screenshot(str(path), canvas_only=False)
    assert path.stat().st_size > 10_000
    assert shot.std() > 5  # not a blank window


def test_rerun_after_edit_keeps_the_edit(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    widget = dock(viewer)
    widget.image.value = viewer.layers[0]
    run_and_wait(qtbot, widget)
    mask = viewer.layers[f"{viewer.layers[0].name} mask"]
    edited = mask.data.copy()
    edited[10:60, 10:60] = 1 - edited[10:60, 10:60]
    mask.data = edited
    run_and_wait(qtbot, widget)
    assert np.array_equal(mask.data, edited)
    # Changed by issue 11: the new prediction goes into the image's one proposal layer (was "mask [2]").
    assert f"{viewer.layers[0].name} proposal" in viewer.layers
    assert widget.last_result["kept_edited"]
    count = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == count  # a second round updates the proposal in place


def test_rerun_without_edit_updates_in_place(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    widget = dock(viewer)
    widget.image.value = viewer.layers[0]
    run_and_wait(qtbot, widget)
    count = len(viewer.layers)
    widget.threshold.value = 0.9
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == count and not widget.last_result["kept_edited"]


def test_cancel_stops_a_long_run_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8), name="big", rgb=True)
    widget = dock(viewer)
    widget.image.value = viewer.layers["big"]
    widget.mode.value = "tile"
    widget.tile_size.value = 64
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.progress.value >= 2, timeout=60_000)
    widget.cancel()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: not widget.busy, timeout=5000)
    assert widget.progress.value < widget.progress.max
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert "cancelled" in widget.status.value


def test_bad_image_gives_a_message_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 40), np.float32), name="thin")
    widget = dock(viewer)
    widget.image.value = viewer.layers["thin"]
    assert widget.run() is None  # refused in the GUI thread, before any worker starts
    assert "at least" in widget.status.value
    assert [layer.name for layer in viewer.layers] == ["thin"]


def test_batch_widget_segments_a_folder(make_napari_viewer, qtbot, tmp_path):
    import shutil

    from napari_unetv2._sample_data import sample_data_dir

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch folder")
    source = tmp_path / "in"
    shutil.copytree(sample_data_dir() / "images", source)
    widget.input.value, widget.output.value = str(source), str(tmp_path / "out")
    worker = widget.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert len(list((tmp_path / "out").glob("*.png"))) == 3 and "3 segmented" in widget.status.value


def test_segment_can_use_the_bundled_skin_model_by_name(make_napari_viewer, qtbot):
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "skin")
    widget = dock(viewer)
    skin_version = read_config(bundled_checkpoint("skin")).version
    widget.model_source.value = next(value for value in widget.model_source.choices if str(value).endswith(":skin"))
    assert f"bundled skin model ({skin_version})" in widget.model_line.value.replace("\u200b", "")
    widget.image.value = viewer.layers[0]
    run_and_wait(qtbot, widget)
    mask = viewer.layers[f"{viewer.layers[0].name} mask"]
    assert mask.metadata.get("model_version") == skin_version, widget.status.value
