"""Findings of session 31's clinician trial (a batch folder's results corrected, retrained, batched again)."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
from napari_unetv2.widgets._layers import MASK, PROBABILITY, bring_into_view, layer_of, start_mask

PLUGIN = "napari-unetv2"


def dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def frame_with_mask(viewer, name, shape, value, version=""):
    """An image as the Batch folder widget opens one: the image and its mask (no probability layer)."""
    image = viewer.add_image(np.full((*shape, 3), value, np.uint8), name=name, rgb=True)
    mask = np.zeros(shape, np.uint8)
    mask[10:30, 10:30] = 1
    return image, start_mask(viewer, image, mask, mask, version)


def test_a_frame_brought_into_view_hides_the_larger_frames_around_it_until_they_are_viewed(make_napari_viewer):
    """A 640x360 frame raised over a 640x512 one left the larger one's lower part, and its painted mask, drawn below
    it: two frames read as one picture. Frames it covers whole are left as they are."""
    viewer = make_napari_viewer()
    tall, tall_mask = frame_with_mask(viewer, "tall", (120, 80), 200)
    small, small_mask = frame_with_mask(viewer, "small", (40, 40), 60)
    wide, wide_mask = frame_with_mask(viewer, "wide", (60, 100), 120)
    assert all(x.visible for x in viewer.layers)
    assert bring_into_view(viewer, wide, wide_mask)
    assert not tall.visible and not tall_mask.visible  # sticks out below "wide"
    assert small.visible and small_mask.visible  # inside "wide", under it: nothing of it is seen
    assert wide.visible and wide_mask.visible
    bring_into_view(viewer, tall, tall_mask)  # viewed again: with its mask, and "wide" (wider) is hidden now
    assert tall.visible and tall_mask.visible and not wide.visible and not wide_mask.visible
    viewer.grid.enabled = True  # in a grid every image has its own place: nothing is hidden
    bring_into_view(viewer, small, small_mask)
    assert tall.visible and tall_mask.visible


def test_selecting_a_hidden_mask_shows_it_ready_to_paint(make_napari_viewer, qtbot):
    """Selecting the hidden mask of a batch result showed its image but left the mask hidden: napari greys out the
    brush on a hidden layer, and Accept refused it as not on screen, an extra click on every image after the first."""
    viewer = make_napari_viewer()
    dock(viewer, "Correct & retrain")  # (the docks follow the selection and bring the selected mask into view)
    first, first_mask = frame_with_mask(viewer, "first", (50, 50), 200)
    second, second_mask = frame_with_mask(viewer, "second", (50, 50), 90)
    second.visible = second_mask.visible = False
    viewer.layers.selection.active = second_mask
    qtbot.waitUntil(lambda: second_mask.visible and second.visible, timeout=3000)
    assert viewer.layers.index(second) > viewer.layers.index(first)


def test_resegmenting_batch_results_keeps_the_clinicians_mask_selected(make_napari_viewer, qtbot, isolated_home,
                                                                     small_checkpoint):
    """After a round (or a roll back) the images a Batch folder run opened were segmented again; each got its first
    probability layer, napari selects each layer added, and the clinician's mask, with its brush, was left for a hidden
    probability map."""
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config
    from napari_unetv2.widgets._layers import ready_to_paint

    viewer = make_napari_viewer()
    rt = dock(viewer, "Correct & retrain")
    bundled = read_config(bundled_checkpoint()).version
    images = [frame_with_mask(viewer, f"frame{i}", (64, 64), 100 + 40 * i, version=bundled) for i in range(3)]
    working = images[1][1]
    ready_to_paint(viewer, working)
    version = rt.models.store.add(small_checkpoint).version
    rt.reset_choices()
    rt.versions.value = version
    worker = rt.use_selected_version()
    assert worker is not None, rt.status.value
    qtbot.waitUntil(lambda: rt.resegmented == 1, timeout=120_000)
    assert all(layer_of(viewer, image, PROBABILITY) is not None for image, _ in images)  # all three segmented again
    assert viewer.layers.selection.active is working and working.mode == "paint"
    assert layer_of(viewer, images[1][0], MASK) is working


def test_correct_and_retrain_follows_the_folder_sessions_next_mask_of_another_size(make_napari_viewer, qtbot, tmp_path,
                                                                                    isolated_home):
    """The folder session shows its next image in the same layers; a frame of another size left Correct & retrain's
    mask chooser empty (the chooser lists masks of the image's size, and the old one no longer fitted), and its Accept
    said there was no mask for the image on screen."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.widgets.session import SessionWidget

    image, _, _ = load_sample("polyp")
    (tmp_path / "images").mkdir()
    write_png_atomic(tmp_path / "images" / "a.png", image[:160, :200])
    write_png_atomic(tmp_path / "images" / "b.png", image[:224, :128])
    viewer = make_napari_viewer()
    session = SessionWidget(viewer)
    viewer.window.add_dock_widget(session, name="Annotate a folder")
    rt = dock(viewer, "Correct & retrain")
    session.images.value = str(tmp_path / "images")
    session.session_folder.value = str(tmp_path / "session")
    assert session.open_session() is not None, session.status.value
    qtbot.waitUntil(lambda: session.shown_path == session.session.current, timeout=60_000)
    assert rt.mask.value is not None and tuple(rt.mask.value.data.shape) == (160, 200)
    session.next_image()
    qtbot.waitUntil(lambda: session.shown_path == session.session.current, timeout=60_000)
    qtbot.waitUntil(lambda: rt.mask.value is not None, timeout=3000)
    assert tuple(rt.mask.value.data.shape) == (224, 128) and rt.mask.value.name == "b mask"


def test_accept_asks_before_a_mask_not_started_from_it_replaces_an_earlier_correction(make_napari_viewer, qtbot,
                                                                                       isolated_home, tmp_path):
    """An image corrected yesterday, segmented again today: the new model's mask was shown with nothing said, and a
    small fix to it with Accept replaced the careful correction for good. Now Accept asks once; improving a mask and
    accepting it again, from the same layer, does not ask."""
    viewer = make_napari_viewer()
    from napari_unetv2._sample_data import SAMPLES

    viewer.open_sample(PLUGIN, "polyp")
    image = viewer.layers[SAMPLES["polyp"]]
    seg, rt = dock(viewer, "Segment"), dock(viewer, "Correct & retrain")
    rt.folder.value = str(tmp_path / "set")
    seg.image.value = image
    with qtbot.waitSignal(seg.run().finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: not seg.busy, timeout=5000)
    careful = layer_of(viewer, image, MASK)
    careful.data[100:300, 100:300] = 1
    careful.refresh()
    rt.image.value, rt.mask.value = image, careful
    first = rt.accept_correction()
    assert first is not None, rt.status.value
    careful.data[300:320, 300:320] = 1  # improved, accepted again from the same layer: no question
    careful.refresh()
    second = rt.accept_correction()
    assert second is not None and rt.correction_set.entries()[0].id == second.id, rt.status.value
    qtbot.wait(2100)  # "the next day": the mask below is made after the correction was stored
    viewer.layers.remove(careful)
    with qtbot.waitSignal(seg.run().finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: not seg.busy, timeout=5000)
    today = layer_of(viewer, image, MASK)
    today.data[0:20, 0:20] = 1  # a small fix to the model's new mask
    today.refresh()
    rt.image.value, rt.mask.value = image, today
    assert rt.accept_correction() is None
    said = rt.status.value.replace("\u200b", "")
    assert "already holds a correction" in said and second.id in said and "Accept again" in said
    assert [e.id for e in rt.correction_set.entries()] == [second.id]  # nothing replaced yet
    third = rt.accept_correction()  # asked and answered
    assert third is not None and [e.id for e in rt.correction_set.entries()] == [third.id]
    # Verification of session 31: a correction stored from one layer (here, or by the folder session) was replaced
    # unasked from another layer shown before it was stored. Asked from any layer it was not accepted from.
    import time

    from napari_unetv2.widgets._layers import PREDICTED_AT

    # shown an hour before the correction was stored (as a Batch folder result opened then)
    other = viewer.add_labels(np.zeros(image.data.shape[:2], np.uint8), name="drawn",
                              metadata={PREDICTED_AT: time.time() - 3600})
    other.data[50:60, 50:60] = 1
    rt.image.value, rt.mask.value = image, other
    assert rt.accept_correction() is None and "already holds a correction" in rt.status.value.replace("\u200b", "")
    today.data[40:50, 40:50] = 1  # the layer it came from: painting on and accepting again does not ask
    today.refresh()
    rt.image.value, rt.mask.value = image, today
    assert rt.accept_correction() is not None, rt.status.value


def test_open_the_results_of_a_finished_folder_opens_the_earlier_runs_masks(make_napari_viewer, qtbot, isolated_home,
                                                                             tmp_path):
    """A folder segmented yesterday, run again with continue and "open the results in the viewer" to correct its
    masks: "0 segmented, 3 already done" and nothing opened, with nothing said."""
    import shutil

    from napari.layers import Labels

    from napari_unetv2._sample_data import sample_data_dir

    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    shutil.copytree(sample_data_dir() / "images", tmp_path / "in")
    batch.input.value, batch.output.value, batch.open_results.value = str(tmp_path / "in"), str(tmp_path / "out"), False
    worker = batch.run()
    assert worker is not None, batch.status.value
    qtbot.waitUntil(lambda: not batch.busy, timeout=120_000)
    assert not list(viewer.layers)
    assert "(model: bundled polyp model (" in batch.status.value.replace("\u200b", "")  # the run's, as every widget names it
    batch.resume.value, batch.open_results.value = True, True  # the next day
    viewer.add_image(np.zeros((8, 8), np.uint8), name="small")  # a small image viewed before, zoomed in on:
    viewer.camera.zoom = 40.0  # a corner of a full-size frame would show
    worker = batch.run()
    assert worker is not None, batch.status.value
    qtbot.waitUntil(lambda: not batch.busy, timeout=120_000)
    said = batch.status.value.replace("\u200b", "")
    assert "0 segmented, 3 already done" in said and "Opened 3 mask(s) an earlier run wrote" in said
    assert "(model:" not in said  # it segmented nothing: the earlier runs' notes say whose masks these are
    masks = [x for x in viewer.layers if isinstance(x, Labels)]
    assert len(masks) == 3 and sum(x.visible for x in masks) == 1
    assert viewer.camera.zoom < 10.0  # the view fits the frames opened


def test_the_next_images_line_is_kept_when_the_previous_accept_is_written(make_napari_viewer, qtbot, isolated_home,
                                                                          tmp_path):
    """Accept & next: the write ends after the next image is on screen, and its "stored" line replaced that image's
    own line ("the correction ... is shown, not the model's mask"), unread."""
    from test_session import crops_folder

    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_image
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S, SessionWidget

    data = crops_folder(tmp_path / "data", n=2)
    second = sorted((data / "images").iterdir())[1]
    image = read_image(second)
    painted = np.zeros(image.shape[:2], np.uint8)
    painted[20:70, 30:90] = 1
    earlier = store_correction(CorrectionSet(tmp_path / "corrections"), image, painted, source=second.stem,
                               predicted_mask=np.zeros_like(painted)).entry
    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate a folder")
    widget.images.value, widget.corrections.value = str(data / "images"), str(tmp_path / "corrections")
    widget.session_folder.value = str(tmp_path / "session")
    assert widget.open_session() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.shown_path == widget.session.current, timeout=60_000)
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    widget.mask_layer.paint((30, 30), 1)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.shown_path == second and widget.pending_writes == 0, timeout=60_000)
    qtbot.wait(200)
    said = widget.status.value.replace("\u200b", "")
    assert "stored" in said and f"the correction {earlier.id}" in said, said
