"""Masks painted outside a folder session are kept on disk and come back with their image (stop 32's list: closing
napari lost a touched-up *Segment* result without a question)."""
import numpy as np
import pytest

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
from napari_unetv2.annotation.kept_edits import KeptEdits
from napari_unetv2.corrections.correction_set import image_hash

PLUGIN = "napari-unetv2"


def test_kept_edits_round_trip_and_refuse_names_that_leave_the_folder(tmp_path):
    store = KeptEdits(tmp_path / "kept")
    key = image_hash(np.zeros((4, 4), np.uint8))
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:20] = 1
    assert store.find(key, mask.shape) is None
    started = np.ones_like(mask)
    store.keep(key, mask * 3, {"image": "a", "model_version": "v1"}, started)  # any label is lesion
    found = store.find(key, mask.shape)
    assert found is not None and np.array_equal(found.mask, mask) and found.about["model_version"] == "v1"
    assert np.array_equal(found.model_mask, started)
    assert store.find(key, (40, 30)) is None  # another image's shape: not its edits
    assert store.keys() == [key]
    for hostile in ("../evil", "/etc/passwd", key.upper(), key + "/x", "", None):
        with pytest.raises(ValueError):
            store.keep(hostile, mask, {})
        assert store.find(hostile, mask.shape) is None
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [f"{key}.json", f"{key}.model.png", f"{key}.png"]
    (tmp_path / "kept" / f"{key}.json").write_text("{not json")
    assert store.find(key, mask.shape) is None  # unreadable: as if there were none
    store.drop(key)
    assert store.keys() == [] and not list((tmp_path / "kept").iterdir())


def _segment(viewer, qtbot):
    from test_widget import run_and_wait

    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    widget.image.value = viewer.layers[0]
    run_and_wait(qtbot, widget)
    return widget, viewer.layers[f"{viewer.layers[0].name} mask"]


def _settle(viewer, qtbot):
    from napari_unetv2.widgets._kept_edits import KEEP_AFTER_MS, painted_mask_keeper

    qtbot.wait(KEEP_AFTER_MS + 200)
    painted_mask_keeper(viewer).wait()


def test_a_touched_up_segment_result_survives_closing_napari(make_napari_viewer, qtbot, isolated_home):
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper
    from napari_unetv2.widgets._layers import MODEL_VERSION, PREDICTED_MASK

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    key = image_hash(np.asarray(viewer.layers[0].data))
    _, mask = _segment(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    assert store.root == isolated_home / "kept-edits"
    _settle(viewer, qtbot)
    assert store.find(key, mask.data.shape) is None  # the model's mask, untouched: nothing to keep

    model_mask, version = np.asarray(mask.data).copy(), mask.metadata[MODEL_VERSION]
    mask.paint((40, 40), 1 - int(mask.data[40, 40]))  # a brush stroke (napari's paint event)
    painted = np.asarray(mask.data).copy()
    _settle(viewer, qtbot)
    kept = store.find(key, painted.shape)
    assert kept is not None and np.array_equal(kept.mask, painted > 0)

    edited = painted.copy()
    edited[100:140, 100:140] = 1 - edited[100:140, 100:140]
    mask.data = edited  # painted less than the pause before napari closes: written as the layers go
    viewer.close()
    painted_mask_keeper(viewer).wait()
    assert np.array_equal(store.find(key, edited.shape).mask, edited > 0)

    # the next napari: the same image segmented again gives the edits back as its mask, the model's beside them
    again = make_napari_viewer()
    again.open_sample(PLUGIN, "polyp")
    widget, mask = _segment(again, qtbot)
    assert np.array_equal(np.asarray(mask.data) > 0, edited > 0), widget.status.value
    # measured against the mask they were painted from (what Accept scores the model by), of the model that made it
    assert np.array_equal(mask.metadata[PREDICTED_MASK], model_mask) and mask.metadata[MODEL_VERSION] == version
    proposal = again.layers[f"{again.layers[0].name} proposal"]
    assert not np.array_equal(np.asarray(proposal.data) > 0, edited > 0)
    assert "painted on this image before" in widget.status.value.replace("\u200b", "")

    # deleted by the user while its image stays open: a choice, the entry goes (Restore deleted mask still has it)
    again.layers.remove(mask)
    qtbot.wait(50)
    painted_mask_keeper(again).wait()
    assert store.find(key, edited.shape) is None


def test_quitting_keeps_a_stroke_painted_just_before(make_napari_viewer, qtbot):
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    key = image_hash(np.asarray(viewer.layers[0].data))
    _, mask = _segment(viewer, qtbot)
    edited = np.asarray(mask.data).copy()
    edited[:30, :30] = 1 - edited[:30, :30]
    mask.data = edited
    keeper = painted_mask_keeper(viewer)
    keeper.flush()  # what the application's aboutToQuit runs, before the pause has passed
    assert np.array_equal(keeper.store.find(key, edited.shape).mask, edited > 0)


def test_accepting_the_mask_or_undoing_the_edits_drops_its_entry(make_napari_viewer, qtbot):
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    key = image_hash(np.asarray(viewer.layers[0].data))
    _, mask = _segment(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    model_mask = np.asarray(mask.data).copy()
    edited = model_mask.copy()
    edited[:30, :30] = 1 - edited[:30, :30]
    mask.data = edited
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is not None
    mask.data = model_mask  # back to the model's mask: nothing left to keep
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is None

    mask.data = edited
    _settle(viewer, qtbot)
    _, retrain = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct & retrain")
    retrain.image.value = viewer.layers[0]
    retrain.mask.value = mask
    assert retrain.accept_correction() is not None, retrain.status.value
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is None  # stored as a correction: nothing of it can be lost any more
    viewer.close()
    painted_mask_keeper(viewer).wait()
    assert store.find(key, edited.shape) is None


def test_batch_results_open_with_the_edits_kept_for_their_image(make_napari_viewer, qtbot, tmp_path):
    import shutil

    from test_gui_findings import run_until_idle

    from napari_unetv2._sample_data import sample_data_dir
    from napari_unetv2.files import read_image, read_mask
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    source = tmp_path / "in"
    shutil.copytree(sample_data_dir() / "images", source)
    first = sorted(source.iterdir())[0]
    image = read_image(first)
    viewer = make_napari_viewer()
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch folder")
    store = painted_mask_keeper(viewer).store
    edits = np.zeros(image.shape[:2], np.uint8)
    edits[20:80, 30:90] = 1
    store.keep(image_hash(image), edits, {"image": first.stem})  # painted on in an earlier napari, never accepted
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    run_until_idle(qtbot, batch)
    mask = viewer.layers[f"{first.stem} mask"]
    assert np.array_equal(np.asarray(mask.data) > 0, edits > 0)
    assert not np.array_equal(read_mask(tmp_path / "out" / f"{first.stem}.png"), edits)  # the file keeps the model's
    assert "1 mask(s) opened with the edits painted on them before" in batch.status.value.replace("\u200b", "")
    others = [x for x in viewer.layers if x.name.endswith(" mask") and x is not mask]
    assert others and all(store.find(image_hash(np.asarray(viewer.layers[x.name[:-5]].data)), x.data.shape) is None
                          for x in others)


def test_a_deleted_mask_restored_is_kept_again(make_napari_viewer, qtbot):
    """Deleted while its image stays open, the entry goes; *Restore deleted mask* brings the painting back, and with
    it its entry (a crash after the restore must not lose it)."""
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    key = image_hash(np.asarray(viewer.layers[0].data))
    widget, mask = _segment(viewer, qtbot)
    edited = np.asarray(mask.data).copy()
    edited[:30, :30] = 1 - edited[:30, :30]
    mask.data = edited
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    viewer.layers.remove(mask)
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is None
    restored = widget.restore_deleted_mask()
    assert restored is not None, widget.status.value
    _settle(viewer, qtbot)
    assert np.array_equal(store.find(key, edited.shape).mask, edited > 0)
