"""Masks painted outside a folder session are kept on disk and come back with their image (stop 32's list: closing
napari lost a touched-up *Segment* result without a question)."""
import time

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
    store.keep(key, mask, {}, role="proposal")  # the image's proposal, painted on: beside the mask's entry
    assert store.find(key, mask.shape) is None and np.array_equal(store.find(key, mask.shape, "proposal").mask, mask)
    with pytest.raises(ValueError):
        store.keep(key, mask, {}, role="../x")
    assert found.newer_than("2000-01-01T00:00:00") and not found.newer_than("2999-01-01T00:00:00")
    assert found.newer_than(found.kept_at.replace(" ", "T"))  # (the same second: kept after a correction stored here)
    assert not store.unchanged(found)  # its JSON damaged above: not the entry found
    store.keep(key, mask, {})
    assert store.unchanged(store.find(key, mask.shape))
    store.drop(key)  # both
    assert store.keys() == [] and not list((tmp_path / "kept").iterdir())


def _segment(viewer, qtbot, image=None):
    from test_widget import run_and_wait

    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    image = image or viewer.layers[0]
    widget.image.value = image
    run_and_wait(qtbot, widget)
    return widget, viewer.layers[f"{image.name} mask"]


def _polyp_segmented(make_napari_viewer, qtbot):
    """A viewer with the polyp sample segmented: (viewer, image layer, its key, the Segment dock, the mask)."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    image = viewer.layers[0]
    widget, mask = _segment(viewer, qtbot, image)
    return viewer, image, image_hash(np.asarray(image.data)), widget, mask


def _flip(layer, rows, cols):
    edited = np.asarray(layer.data).copy()
    edited[rows, cols] = 1 - edited[rows, cols]
    layer.data = edited
    return edited


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

    # painted less than the pause before napari closes: written as the layers go
    edited = _flip(mask, slice(100, 140), slice(100, 140))
    viewer.close()
    painted_mask_keeper(viewer).wait()
    assert np.array_equal(store.find(key, edited.shape).mask, edited > 0)

    # the next napari: the same image segmented again gives the edits back as its mask, the model's beside them
    painted_when = store.find(key, edited.shape).kept_at
    qtbot.wait(1100)  # (a rewrite would show in the time, kept to the second)
    again = make_napari_viewer()
    again.open_sample(PLUGIN, "polyp")
    widget, mask = _segment(again, qtbot)
    assert np.array_equal(np.asarray(mask.data) > 0, edited > 0), widget.status.value
    # measured against the mask they were painted from (what Accept scores the model by), of the model that made it
    assert np.array_equal(mask.metadata[PREDICTED_MASK], model_mask) and mask.metadata[MODEL_VERSION] == version
    proposal = again.layers[f"{again.layers[0].name} proposal"]
    assert not np.array_equal(np.asarray(proposal.data) > 0, edited > 0)
    assert "painted on this image before" in widget.status.value.replace("\u200b", "")
    _settle(again, qtbot)
    assert store.find(key, edited.shape).kept_at == painted_when  # given back, not painted: the time they were kept

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
    edited = _flip(mask, slice(0, 30), slice(0, 30))
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
    edited = _flip(mask, slice(0, 30), slice(0, 30))
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
    edited = _flip(mask, slice(0, 30), slice(0, 30))
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    viewer.layers.remove(mask)
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is None
    restored = widget.restore_deleted_mask()
    assert restored is not None, widget.status.value
    _settle(viewer, qtbot)
    assert np.array_equal(store.find(key, edited.shape).mask, edited > 0)


def _two_copies_the_later_painted(viewer, qtbot):
    """The polyp sample and a copy of its pixels, both segmented, the copy's mask painted (settled); returns the Segment
    widget, the first image, the image key and the painted pixels."""
    from test_widget import run_and_wait

    viewer.open_sample(PLUGIN, "polyp")
    first = viewer.layers[0]
    second = viewer.add_image(np.asarray(first.data).copy(), name="copy", rgb=True)
    widget, _ = _segment(viewer, qtbot, first)
    widget.image.value = second
    run_and_wait(qtbot, widget)
    painted = _flip(viewer.layers["copy mask"], slice(0, 40), slice(0, 40))
    _settle(viewer, qtbot)
    return widget, first, image_hash(np.asarray(first.data)), painted


def test_the_same_image_open_twice_keeps_the_edits_of_the_copy_painted(make_napari_viewer, qtbot):
    """Both copies share one entry (the image's pixels): the unedited copy, judged after the painted one at close or
    segmented again, dropped the painted copy's edits (trial of session 33)."""
    from test_widget import run_and_wait

    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    widget, first, key, painted = _two_copies_the_later_painted(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    assert np.array_equal(store.find(key, painted.shape).mask, painted > 0)
    widget.image.value = first  # the unedited copy segmented again: its twin's edits stay
    run_and_wait(qtbot, widget)
    _settle(viewer, qtbot)
    assert np.array_equal(store.find(key, painted.shape).mask, painted > 0)
    viewer.close()
    painted_mask_keeper(viewer).wait()
    assert np.array_equal(store.find(key, painted.shape).mask, painted > 0)


def test_undo_and_painting_without_a_pause_reach_the_disk(make_napari_viewer, qtbot, monkeypatch):
    """Ctrl+Z sends neither a paint nor a data event: undone strokes came back after a crash. Strokes every 0.3 s never
    let the half-second pause pass: nothing was written at all (trial of session 33)."""
    from napari_unetv2.widgets import _kept_edits

    monkeypatch.setattr(_kept_edits, "KEEP_AT_LEAST_EVERY_S", 1.0)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    key = image_hash(np.asarray(viewer.layers[0].data))
    _, mask = _segment(viewer, qtbot)
    store = _kept_edits.painted_mask_keeper(viewer).store
    for step in range(8):  # 2.4 s of strokes, never half a second apart
        mask.paint((20 + 10 * step, 30), 1 - int(mask.data[20 + 10 * step, 30]))
        qtbot.wait(300)
    _kept_edits.painted_mask_keeper(viewer).wait()
    assert store.find(key, mask.data.shape) is not None  # written while the strokes went on
    _settle(viewer, qtbot)
    assert np.array_equal(store.find(key, mask.data.shape).mask, np.asarray(mask.data) > 0)
    for _ in range(8):
        mask.undo()
    _settle(viewer, qtbot)
    assert store.find(key, mask.data.shape) is None  # all undone: nothing left to keep


def test_a_correction_stored_from_another_layer_supersedes_the_kept_edits(make_napari_viewer, qtbot):
    """A mask drawn by hand (or accepted in a folder session) stored for the image: the Segment mask's older edits,
    kept on disk, came back later over the accepted image as "never accepted" (trial of session 33)."""
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    image = viewer.layers[0]
    key = image_hash(np.asarray(image.data))
    _, mask = _segment(viewer, qtbot)
    edited = _flip(mask, slice(0, 40), slice(0, 40))
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    assert store.find(key, edited.shape) is not None
    drawn = viewer.add_labels(np.zeros(edited.shape, np.uint8), name="my outline")
    drawn.data[50:150, 60:160] = 1
    drawn.refresh()
    _, retrain = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct & retrain")
    retrain.image.value = image
    retrain.mask.value = drawn
    assert retrain.accept_correction() is not None, retrain.status.value
    _settle(viewer, qtbot)
    assert store.find(key, edited.shape) is None
    viewer.close()  # the Segment mask's edits, unchanged since, are not kept again
    painted_mask_keeper(viewer).wait()
    assert store.find(key, edited.shape) is None


def test_a_mask_deleted_with_its_image_or_after_it_is_not_kept(make_napari_viewer, qtbot):
    """Deleting is a choice whether the image is still open or not; only napari's close (every layer goes) keeps."""
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    viewer.open_sample(PLUGIN, "kvasir")
    polyp, kvasir = [x for x in viewer.layers if getattr(x, "rgb", False)]
    keys = [image_hash(np.asarray(x.data)) for x in (polyp, kvasir)]
    widget, _ = _segment(viewer, qtbot, polyp)
    from test_widget import run_and_wait

    widget.image.value = kvasir
    run_and_wait(qtbot, widget)
    masks = [viewer.layers[f"{x.name} mask"] for x in (polyp, kvasir)]
    for mask in masks:
        _flip(mask, slice(0, 30), slice(0, 30))
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    assert all(store.find(k, m.data.shape) is not None for k, m in zip(keys, masks))
    viewer.layers.remove(polyp)  # the image closed: its painted mask stays, "(image closed)"
    qtbot.wait(50)
    assert store.find(keys[0], masks[0].data.shape) is not None
    viewer.layers.remove(masks[0])  # then deleted
    viewer.layers.selection = {kvasir, masks[1]}  # an image and its mask deleted together
    viewer.layers.remove_selected()
    qtbot.wait(50)
    painted_mask_keeper(viewer).wait()
    assert all(store.find(k, m.data.shape) is None for k, m in zip(keys, masks))


def test_a_folder_session_keeps_its_draft_while_painting_goes_on_without_a_pause(make_napari_viewer, qtbot, tmp_path,
                                                                                  monkeypatch):
    """The session's draft waited for a half-second pause: strokes without one were never written (trial of session
    33, the same timer as the kept edits)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.widgets import session as session_module

    monkeypatch.setattr(session_module, "DRAFT_AT_LEAST_EVERY_S", 1.0, raising=False)
    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path)
    path = session.session.current
    for step in range(8):  # 2.4 s of strokes, never half a second apart
        painted = np.asarray(session.mask_layer.data).copy()
        painted[10 * step:10 * step + 10, 0:10] = 1 - painted[10 * step:10 * step + 10, 0:10]
        session.mask_layer.data = painted
        qtbot.wait(300)
    assert session.session.draft_path(path).is_file()  # written while the strokes went on (the last was 0.3 s ago)


def test_closing_napari_keeps_the_edits_of_the_later_copy_of_an_image_open_twice(make_napari_viewer, qtbot):
    """napari's close removes the layers from the top: the painted later copy's mask first (kept), then the unedited
    earlier copy's, which dropped the entry (verification of session 33)."""
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer = make_napari_viewer()
    _, _, key, painted = _two_copies_the_later_painted(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    viewer.close()
    qtbot.wait(50)
    painted_mask_keeper(viewer).wait()
    assert np.array_equal(store.find(key, painted.shape).mask, painted > 0)


def test_emptying_the_viewer_by_hand_is_a_delete_not_a_close(make_napari_viewer, qtbot):
    """One image: closed, then its "(image closed)" mask deleted, the viewer left empty; taken for napari's close, the
    edits came back at the next Segment as "never accepted" (verification of session 33)."""
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer, image, key, _, mask = _polyp_segmented(make_napari_viewer, qtbot)
    painted = _flip(mask, slice(0, 40), slice(0, 40))
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    assert store.find(key, painted.shape) is not None
    viewer.layers.remove(image)
    qtbot.wait(50)
    viewer.layers.clear()  # the mask, the ground truth, whatever is left: deleted by hand
    qtbot.wait(50)
    painted_mask_keeper(viewer).wait()
    assert store.find(key, painted.shape) is None


def test_a_proposal_painted_on_is_neither_overwritten_nor_lost(make_napari_viewer, qtbot):
    """Painted on, the proposal is the user's work: Segment at another threshold overwrote 11,235 painted pixels without
    a word, and napari's close lost them (verification of session 33)."""
    from test_widget import run_and_wait

    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer, image, key, widget, mask = _polyp_segmented(make_napari_viewer, qtbot)
    mask_edits = _flip(mask, slice(0, 20), slice(0, 20))
    widget.threshold.value = 0.3
    run_and_wait(qtbot, widget)
    proposal = viewer.layers[f"{image.name} proposal"]
    painted = _flip(proposal, slice(100, 160), slice(100, 160))
    widget.threshold.value = 0.7
    run_and_wait(qtbot, widget)
    assert np.array_equal(proposal.data, painted)
    assert "proposal you painted on" in widget.status.value.replace("\u200b", "")
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    # both kept, side by side (keeping only the one painted last lost the mask's strokes; second verification)
    assert np.array_equal(store.find(key, painted.shape, "proposal").mask, painted > 0)
    assert np.array_equal(store.find(key, painted.shape).mask, mask_edits > 0)
    viewer.close()
    painted_mask_keeper(viewer).wait()
    again = make_napari_viewer()
    again.open_sample(PLUGIN, "polyp")
    widget, mask = _segment(again, qtbot)
    assert np.array_equal(np.asarray(mask.data) > 0, mask_edits > 0)
    proposal = again.layers[f"{again.layers[0].name} proposal"]
    assert np.array_equal(np.asarray(proposal.data) > 0, painted > 0), widget.status.value
    assert "the proposal you painted on" in widget.status.value.replace("\u200b", "")
    _settle(again, qtbot)
    assert np.array_equal(store.find(key, painted.shape, "proposal").mask, painted > 0)  # still kept


def test_segment_says_when_the_image_has_a_stored_correction(make_napari_viewer, qtbot):
    """An image corrected and accepted, segmented again later: the model's mask was shown as if nothing had been done
    (trial of session 33)."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    image = viewer.layers[0]
    widget, mask = _segment(viewer, qtbot, image)
    assert "stored already" not in widget.status.value.replace("\u200b", "")
    _flip(mask, slice(0, 40), slice(0, 40))
    _, retrain = viewer.window.add_plugin_dock_widget(PLUGIN, "Correct & retrain")
    retrain.image.value, retrain.mask.value = image, mask
    assert retrain.accept_correction() is not None, retrain.status.value
    viewer.layers.remove(mask)
    widget, _ = _segment(viewer, qtbot, image)
    said = widget.status.value.replace("\u200b", "")
    assert "a correction of this image is stored already" in said and "the mask shown is the model's" in said, said
    # painted on after that, napari closed: given back next time, and the stored correction still said
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    _flip(viewer.layers[f"{image.name} mask"], slice(100, 140), slice(100, 140))
    _settle(viewer, qtbot)
    viewer.close()
    painted_mask_keeper(viewer).wait()
    again = make_napari_viewer()
    again.open_sample(PLUGIN, "polyp")
    widget, _ = _segment(again, qtbot)
    said = widget.status.value.replace("\u200b", "")
    assert "painted on this image before" in said and "a correction of this image is stored already" in said, said


def _touch_up_in_segment(viewer, qtbot, path, corner):
    """The frame ``path`` opened and segmented outside a session, a square flipped at ``corner``, kept on disk."""
    from napari_unetv2.files import read_image
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    layer = viewer.add_image(read_image(path), name=path.stem)
    _, mask = _segment(viewer, qtbot, layer)
    model_mask = np.asarray(mask.data).copy()
    edited = _flip(mask, slice(corner, corner + 30), slice(corner, corner + 30))
    _settle(viewer, qtbot)
    key = image_hash(np.asarray(layer.data))
    assert painted_mask_keeper(viewer).store.find(key, edited.shape) is not None
    return key, model_mask, edited > 0


def test_a_folder_session_shows_the_edits_kept_from_segment_and_accept_or_leave_ends_them(make_napari_viewer, qtbot,
                                                                                          tmp_path):
    """A frame touched up in *Segment*, then reviewed in a folder session (the next day): the session showed the model's
    mask, said nothing of the edits, and its Accept dropped them (stop 33's list). Now they are its mask; Accept stores
    them, and leaving them (a second Next) lets them go."""
    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.annotation.accept import stored_correction_of
    from napari_unetv2.files import read_image
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper
    from napari_unetv2.widgets._layers import MODEL_VERSION, PREDICTED_MASK
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    folder = two_frames(tmp_path / "images")
    first = make_napari_viewer()
    key_a, model_a, edits_a = _touch_up_in_segment(first, qtbot, folder / "a.png", 20)
    key_b, _, edits_b = _touch_up_in_segment(first, qtbot, folder / "b.png", 60)
    first.close()

    viewer = make_napari_viewer()
    store = painted_mask_keeper(viewer).store
    session = open_session_on_two_frames(viewer, qtbot, tmp_path, images=folder)
    said = session.status.value.replace("\u200b", "")
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, edits_a), said
    assert "painted on it outside this session" in said
    # measured against the model's mask they were painted from: Accept records them as edits of it
    assert np.array_equal(session.mask_layer.metadata[PREDICTED_MASK], model_a)
    assert session.mask_layer.metadata[MODEL_VERSION]
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    painted_mask_keeper(viewer).wait()
    assert store.find(key_a, edits_a.shape) is None  # stored: no longer "never accepted"
    entry, stored = stored_correction_of(session.corrections.value, read_image(folder / "a.png"), "a.png")
    assert np.array_equal(stored > 0, edits_a) and entry.pixels_changed > 0

    # the second frame: its edits shown too; Next twice leaves them, and then they are gone from disk
    qtbot.waitUntil(lambda: session.shown_path == folder / "b.png", timeout=60_000)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, edits_b), session.status.value
    session.previous_image()
    assert "not accepted" in session.status.value.replace("\u200b", "")
    assert store.find(key_b, edits_b.shape) is not None  # asked first: nothing goes yet
    session.previous_image()
    qtbot.waitUntil(lambda: session.shown_path == folder / "a.png", timeout=60_000)
    painted_mask_keeper(viewer).wait()
    assert store.find(key_b, edits_b.shape) is None


def test_a_correction_stored_after_the_kept_edits_is_what_the_session_shows(make_napari_viewer, qtbot, tmp_path):
    """Edits kept, then a correction of the image stored where the keeper could not see it (another napari, a script):
    the later correction is the image's mask in a folder session, not the older edits."""
    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_image
    from napari_unetv2.storage import default_corrections_dir

    folder = two_frames(tmp_path / "images")
    image = read_image(folder / "a.png")
    edits, corrected = np.zeros(image.shape[:2], np.uint8), np.zeros(image.shape[:2], np.uint8)
    edits[10:40, 10:40], corrected[50:90, 50:90] = 1, 1
    KeptEdits().keep(image_hash(image), edits, {"image": "a", "model_version": "v0"}, np.zeros_like(edits))
    qtbot.wait(1100)  # (times are kept to the second)
    store_correction(CorrectionSet(default_corrections_dir()), image, corrected, source="a.png")

    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path, images=folder)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, corrected > 0), session.status.value
    assert "is shown, not the model's mask" in session.status.value.replace("\u200b", "")


def test_a_painted_proposal_deleted_is_offered_back_as_the_proposal(make_napari_viewer, qtbot):
    """*Restore deleted mask* offered only masks: a proposal painted on and deleted was gone, from the viewer and (the
    window staying open: a choice) from disk (stop 33's list)."""
    from test_widget import run_and_wait

    from napari_unetv2.widgets._kept_edits import painted_mask_keeper
    from napari_unetv2.widgets._layers import PROPOSAL, role_of

    viewer, image, key, widget, mask = _polyp_segmented(make_napari_viewer, qtbot)
    mask_edits = _flip(mask, slice(0, 20), slice(0, 20))
    mask_edits_kept = lambda layer: np.array_equal(np.asarray(layer.data), mask_edits)  # noqa: E731
    widget.threshold.value = 0.3
    run_and_wait(qtbot, widget)
    proposal = viewer.layers[f"{image.name} proposal"]
    painted = _flip(proposal, slice(100, 160), slice(100, 160))
    _settle(viewer, qtbot)
    store = painted_mask_keeper(viewer).store
    viewer.layers.remove(proposal)
    qtbot.wait(50)
    painted_mask_keeper(viewer).wait()
    assert store.find(key, painted.shape, "proposal") is None  # deleted while napari stays open: the user's choice
    assert not widget.restore_button.native.isHidden()  # set to show (the test's window itself is not on screen)
    assert "proposal' was deleted" in widget.status.value.replace("\u200b", "")
    restored = widget.restore_deleted_mask()
    assert restored is not None and role_of(restored) == PROPOSAL and restored.name == f"{image.name} proposal"
    assert (restored.contour, restored.opacity) == (proposal.contour, proposal.opacity) == (2, 0.6)  # its outline too
    assert np.array_equal(restored.data, painted)
    assert mask in viewer.layers and mask_edits_kept(mask)  # the mask stays the mask
    _settle(viewer, qtbot)
    assert np.array_equal(store.find(key, painted.shape, "proposal").mask, painted > 0)  # kept on disk again


def test_unetv2_kept_edits_lists_exports_and_forgets_without_leaving_the_folder(tmp_path, capsys):
    """Nothing listed the kept masks, and only their folder could save or clean them (stop 33's list)."""
    from napari_unetv2.cli import main

    store = KeptEdits()
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:9] = 1
    key, other = image_hash(mask), image_hash(mask[:10])
    store.keep(key, mask, {"image": "../../frame 01.jpg", "model_version": "v1"})  # a hostile name in the JSON
    store.keep(key, 1 - mask, {"image": "../../frame 01.jpg"}, role="proposal")
    store.keep(other, mask[:10], {"image": "b.png"})
    (store.root / f"{'f' * 32}.json").write_text("{damaged")
    assert main(["kept-edits"]) == 0
    listed = capsys.readouterr().out
    assert key in listed and other in listed and "frame 01.jpg" in listed and "30x20" in listed and "damaged" in listed
    assert "older than its correction" not in listed
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.storage import default_corrections_dir

    time.sleep(1.1)  # (times are kept to the second)
    store_correction(CorrectionSet(default_corrections_dir()), mask[:10], 1 - mask[:10], source="b.png")  # its image
    assert main(["kept-edits"]) == 0  # a correction of b stored since (elsewhere): its entry is never given back
    older = [line for line in capsys.readouterr().out.splitlines() if "older than its correction" in line]
    assert len(older) == 1 and other in older[0]

    images = tmp_path / "images"
    images.mkdir()
    (images / "frame 01.jpg").write_bytes(b"an image")
    assert main(["kept-edits", "export", str(images)]) == 2  # masks among the images: a session would count them
    assert "holds image files" in capsys.readouterr().err and sorted(p.name for p in images.iterdir()) == ["frame 01.jpg"]

    assert main(["kept-edits", "export", str(images / "frame 01.jpg")]) == 2  # a file: refused, left as it was
    assert "is a file, not a folder" in capsys.readouterr().err and (images / "frame 01.jpg").read_bytes() == b"an image"
    out = tmp_path / "export"
    out.mkdir()
    (out / "b_mask.png").write_bytes(b"mine")  # a file already there is never replaced
    assert main(["kept-edits", "export", str(out)]) == 0
    assert (out / "b_mask.png").read_bytes() == b"mine"
    assert "exists already" in capsys.readouterr().err
    from napari_unetv2.files import read_mask

    # named as a folder session's "existing masks" finds them (the image's own stem, spaces and all: session 39)
    assert np.array_equal(read_mask(out / "frame 01_mask.png"), mask)
    assert np.array_equal(read_mask(out / "frame 01_proposal.png"), 1 - mask)
    assert sorted(p.name for p in out.iterdir()) == ["b_mask.png", "frame 01_mask.png", "frame 01_proposal.png"]
    third = image_hash(mask[:5])
    store.keep(third, mask[:5], {"image": "frame 01.png"})  # another image of that name: told apart by its key
    again = tmp_path / "again"
    assert main(["kept-edits", "export", str(again)]) == 0
    assert {f"frame 01-{key[:8]}_mask.png", f"frame 01-{third[:8]}_mask.png"} <= {p.name for p in again.iterdir()}
    store.drop(third)

    assert main(["kept-edits", "forget", "../" + key]) == 2  # not a key: one line, nothing removed
    assert main(["kept-edits", "forget", key]) == 0
    assert store.find(key, mask.shape) is None and store.find(key, mask.shape, "proposal") is None
    assert store.find(other, (10, 30)) is not None


def test_a_folder_session_asks_before_next_leaves_a_proposal_painted_on(make_napari_viewer, qtbot, tmp_path):
    """A proposal painted on in a folder session (a new model's mask beside edits) went with Next without a question;
    asked now, as edits of the mask are, and the second Next leaves it (not offered back as deleted)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.widgets._layers import start_proposal

    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path)
    first = session.shown_path
    model_mask = np.asarray(session.mask_layer.data).copy()
    proposal = start_proposal(session.viewer, session.image_layer, model_mask.copy(), model_mask, "v-test")
    _flip(proposal, slice(0, 30), slice(0, 30))
    assert not session.next_image()
    assert session.shown_path == first and "proposal you painted on" in session.status.value.replace("\u200b", "")
    assert session.next_image()
    qtbot.waitUntil(lambda: session.shown_path not in (None, first), timeout=60_000)
    assert proposal not in session.viewer.layers and session.restore_button.native.isHidden()


def test_edits_painted_in_segment_on_the_image_read_ahead_are_shown_and_stored(make_napari_viewer, qtbot, tmp_path):
    """The session reads the next image ahead; edits painted on it in Segment after that were not shown, and the
    session's Accept stored the model's mask and dropped them (trial of session 34: 6,000 pixels lost)."""
    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.annotation.accept import stored_correction_of
    from napari_unetv2.files import read_image
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    folder = two_frames(tmp_path / "images")
    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path, images=folder)
    qtbot.waitUntil(lambda: len(session._cache) >= 2, timeout=60_000)  # the next image computed ahead
    key, _, edits = _touch_up_in_segment(viewer, qtbot, folder / "b.png", 40)
    viewer.layers.remove(viewer.layers["b"])  # its image closed (the painted mask stays, "(image closed)")
    qtbot.wait(50)
    painted_mask_keeper(viewer).wait()
    assert painted_mask_keeper(viewer).store.find(key, edits.shape) is not None
    session.image_layer.visible = True
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.shown_path == folder / "b.png", timeout=60_000)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, edits), session.status.value
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    session.accept_and_next()
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    _, stored = stored_correction_of(session.corrections.value, read_image(folder / "b.png"), "b.png")
    assert np.array_equal(stored > 0, edits)


def test_the_later_of_a_draft_and_segment_edits_is_shown_and_leaving_it_leaves_both(make_napari_viewer, qtbot,
                                                                                     tmp_path):
    """A draft painted over Segment's kept edits, napari closed, the session resumed: the draft was shown and leaving
    it kept the older edits, which came back as "never accepted" (trial of session 34). And edits painted in Segment
    after a draft are the later work: shown over it."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.annotation import AnnotationSession

    folder, shape, key = _frames_and_first_key(tmp_path)
    older, later = _square(shape, 10, 40), _square(shape, 60, 100)
    _keep_for_a(key, older)
    AnnotationSession(tmp_path / "session", folder).keep_draft(folder / "a.png", later)  # painted here after them
    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path, images=folder)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, later > 0), session.status.value
    assert not session.next_image() and session.next_image()  # asked, then left
    qtbot.waitUntil(lambda: session.shown_path == folder / "b.png", timeout=60_000)
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    painted_mask_keeper(session.viewer).wait()
    assert not session.session.draft_path(folder / "a.png").exists()
    assert KeptEdits().find(key, shape) is None  # the draft grew from them: left with it

    # Segment's edits written after the draft: the later work, shown
    session.session.keep_draft(folder / "a.png", older)
    _keep_for_a(key, later)
    session._cache.clear()
    session.previous_image()
    qtbot.waitUntil(lambda: session.shown_path == folder / "a.png", timeout=60_000)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, later > 0), session.status.value
    said = session.status.value.replace("\u200b", "")
    assert "outside this session" in said and "a draft painted on it here before them is set aside" in said, said


def test_segment_does_not_give_back_edits_older_than_a_stored_correction(make_napari_viewer, qtbot):
    """Edits kept, then a correction of the image stored where this napari could not see it: Segment gave the older
    edits back as the mask, while a folder session showed the correction (trial of session 34)."""
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.storage import default_corrections_dir

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "polyp")
    image = np.asarray(viewer.layers[0].data)
    key, shape = image_hash(image), image.shape[:2]
    edits, corrected = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    edits[10:40, 10:40], corrected[50:90, 50:90] = 1, 1
    KeptEdits().keep(key, edits, {"image": "polyp", "model_version": "v0"}, np.zeros(shape, np.uint8))
    KeptEdits().keep(key, edits, {"image": "polyp", "model_version": "v0"}, np.zeros(shape, np.uint8), "proposal")
    qtbot.wait(1100)  # (times are kept to the second)
    store_correction(CorrectionSet(default_corrections_dir()), image, corrected, source="polyp.png")
    widget, mask = _segment(viewer, qtbot)
    said = widget.status.value.replace("\u200b", "")
    assert not np.array_equal(np.asarray(mask.data) > 0, edits > 0) and "older than that correction" in said, said
    assert not any(layer.name.endswith("proposal") for layer in viewer.layers)
    _settle(viewer, qtbot)  # (the model's unedited mask dropped them once painting "paused": verification of session 34)
    assert KeptEdits().find(key, shape) is not None  # not shown, not thrown away: `unetv2 kept-edits` still has them
    assert KeptEdits().find(key, shape, "proposal") is not None


def test_batch_results_say_a_stored_correction_and_do_not_give_back_older_edits(make_napari_viewer, qtbot, tmp_path):
    """Batch's opened results showed an accepted image with the model's mask and no word of its correction, and would
    have given back edits older than it (trial of session 34)."""
    import shutil

    from test_gui_findings import run_until_idle

    from napari_unetv2._sample_data import sample_data_dir
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_image
    from napari_unetv2.storage import default_corrections_dir

    source = tmp_path / "in"
    shutil.copytree(sample_data_dir() / "images", source)
    first = sorted(source.iterdir())[0]
    image = read_image(first)
    edits, corrected = np.zeros(image.shape[:2], np.uint8), np.zeros(image.shape[:2], np.uint8)
    edits[20:80, 30:90], corrected[100:140, 100:140] = 1, 1
    KeptEdits().keep(image_hash(image), edits, {"image": first.stem})
    qtbot.wait(1100)  # (times are kept to the second)
    store_correction(CorrectionSet(default_corrections_dir()), image, corrected, source=first.name)
    viewer = make_napari_viewer()
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    run_until_idle(qtbot, batch)
    said = batch.status.value.replace("\u200b", "")
    assert not np.array_equal(np.asarray(viewer.layers[f"{first.stem} mask"].data) > 0, edits > 0), said
    assert f"1 of the masks written are of images with a correction stored already (the files hold the model's " \
           f"masks; Correct & retrain lists the corrections): {first.stem}" in said, said
    assert "1 of them have a correction" not in said and "older than the stored correction" in said, said  # once
    _settle(viewer, qtbot)
    assert KeptEdits().find(image_hash(image), image.shape[:2]) is not None  # said to be kept: kept
    # results not opened (or already open, trial of session 35): the run's line says it all the same
    batch.output.value, batch.open_results.value = str(tmp_path / "out2"), False
    run_until_idle(qtbot, batch)
    said = batch.status.value.replace("\u200b", "")
    assert "1 of the masks written are of images with a correction stored already" in said and first.stem in said


def test_a_folder_session_shows_a_proposal_painted_on_in_segment_and_leaving_it_leaves_it(make_napari_viewer, qtbot,
                                                                                          tmp_path):
    """A proposal painted on in Segment was not shown by a folder session, and its Accept deleted it unseen
    (verification of session 34). Now it is beside the mask, said; leaving the image (asked first) leaves it."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.widgets._kept_edits import painted_mask_keeper
    from napari_unetv2.widgets._layers import PROPOSAL, layer_of

    folder, shape, key = _frames_and_first_key(tmp_path)
    edits, proposal = _square(shape, 10, 40), _square(shape, 50, 120)
    _keep_for_a(key, edits)
    _keep_for_a(key, proposal, "proposal")
    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path, images=folder)
    shown = layer_of(session.viewer, session.image_layer, PROPOSAL)
    said = session.status.value.replace("\u200b", "")
    assert shown is not None and np.array_equal(np.asarray(shown.data) > 0, proposal > 0), said
    assert "the proposal you painted on in Segment" in said and np.array_equal(session.mask_layer.data, edits)
    assert session.viewer.layers.selection.active is session.mask_layer  # the brush stays on the mask
    assert not session.next_image() and session.next_image()  # asked, then left
    qtbot.waitUntil(lambda: session.shown_path == folder / "b.png", timeout=60_000)
    painted_mask_keeper(session.viewer).wait()
    assert KeptEdits().find(key, shape) is None and KeptEdits().find(key, shape, "proposal") is None


def _frames_and_first_key(tmp_path):
    """:func:`two_frames` in ``tmp_path/images``: (the folder, a.png's shape, its image key)."""
    from test_trial32 import two_frames

    from napari_unetv2.files import read_image

    folder = two_frames(tmp_path / "images")
    image = read_image(folder / "a.png")
    return folder, image.shape[:2], image_hash(image)


def _square(shape, start, stop):
    mask = np.zeros(shape, np.uint8)
    mask[start:stop, start:stop] = 1
    return mask


def _keep_for_a(key, mask, role="mask"):
    """Edits of a.png kept as Segment keeps them (painted over an empty mask of version v0)."""
    KeptEdits().keep(key, mask, {"image": "a", "model_version": "v0"}, np.zeros(mask.shape, np.uint8), role)
