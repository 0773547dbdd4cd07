"""Session 35's clinician trial of the whole loop (Segment, Correct & retrain, Batch, a folder session, clicks over
eight frames in one napari): each test failed on the code before its fix."""
import numpy as np

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
from napari_unetv2.widgets._layers import start_mask


def test_a_mask_selected_to_paint_hides_a_larger_image_that_frames_it(make_napari_viewer, qtbot):
    """A 360 px frame segmented over a 480 px one: its mask was selected with the brush ready, and the larger frame
    still showed around it, the two read as one picture."""
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    large = viewer.add_image(np.full((480, 480), 90, np.uint8), name="large frame")
    small = viewer.add_image(np.full((360, 360), 160, np.uint8), name="small frame")
    mask = np.zeros((360, 360), np.uint8)
    mask[100:200, 100:200] = 1
    layer = start_mask(viewer, small, mask, mask, "v1")
    viewer.layers.selection.active = layer
    qtbot.waitUntil(lambda: not large.visible, timeout=5000)
    assert small.visible and layer.visible


def test_a_finished_session_reopened_on_an_unreadable_last_image_says_it_is_finished(make_napari_viewer, qtbot,
                                                                                      tmp_path):
    """A session whose last image could not be read (skipped) opened again on it: an error and an empty canvas, no word
    that every image was reviewed."""
    from test_session import crops_folder, open_session

    data = crops_folder(tmp_path / "data", n=1)
    images = data / "images"
    (images / "z_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")  # sorts last
    widget = open_session(make_napari_viewer(), qtbot, tmp_path / "session", images=images)
    assert widget.accept_and_next() is not None
    qtbot.waitUntil(lambda: widget.failed_path == widget.session.current and not widget._writing, timeout=30_000)
    widget.skip()
    widget._writer.submit(lambda: None).result(timeout=30)  # the session file written
    again = make_napari_viewer()
    from napari_unetv2.widgets.session import SessionWidget

    reopened = SessionWidget(again)
    again.window.add_dock_widget(reopened, name="Annotate a folder")
    reopened.session_folder.value = str(tmp_path / "session")
    assert reopened.open_session() is not None, reopened.status.value
    qtbot.waitUntil(lambda: reopened.failed_path is not None, timeout=30_000)
    status = reopened.status.value.replace("\u200b", "")
    assert "could not be read" in status and "all 2 images are reviewed" in status and "Skip" not in status, status


def test_segment_says_when_the_proposal_it_filled_is_hidden(make_napari_viewer, qtbot):
    """Segment again over an edited mask said the new prediction was in the proposal layer, which the user had hidden."""
    from test_kept_edits import _flip, _polyp_segmented
    from test_widget import run_and_wait

    viewer, image, _, widget, mask = _polyp_segmented(make_napari_viewer, qtbot)
    _flip(mask, slice(10, 40), slice(10, 40))
    run_and_wait(qtbot, widget)
    proposal = viewer.layers[f"{image.name} proposal"]
    assert "(hidden" not in widget.status.value
    proposal.visible = False
    run_and_wait(qtbot, widget)
    status = widget.status.value.replace("\u200b", "")
    assert f"the new prediction is in '{proposal.name}' (hidden: tick its eye to compare)" in status, status


def test_segment_says_when_the_image_chosen_is_not_on_screen(make_napari_viewer, qtbot):
    """A hidden image selected in the layer list became Segment's image while another was on screen, taken for it."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    hidden = viewer.add_image(np.full((64, 64), 50, np.uint8), name="hidden frame", visible=False)
    below = viewer.add_image(np.full((64, 64), 90, np.uint8), name="frame below")
    viewer.add_image(np.full((64, 64), 160, np.uint8), name="frame on top")
    viewer.layers.selection.active = hidden
    said = lambda text: text in widget.status.value.replace("\u200b", "")  # noqa: E731
    qtbot.waitUntil(lambda: said("hidden frame: not segmented yet (hidden: tick its eye"), timeout=5000)
    viewer.layers.selection.active = below
    qtbot.waitUntil(lambda: said("frame below: not segmented yet (not on screen: an image above it covers it)"),
                    timeout=5000)


def test_storing_an_empty_mask_says_so(tmp_path):
    """An empty mask accepted on a frame with a polyp went by as "0 pixels changed", like any reviewed mask."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet

    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    empty = np.zeros_like(gt)
    said = store_correction(cs, image, empty, source="frame.png", predicted_mask=empty).describe()
    assert "the mask is EMPTY" in said
    assert "EMPTY" not in store_correction(cs, image, gt, source="frame.png", predicted_mask=empty).describe()


def test_a_pause_timer_whose_qt_object_is_gone_is_not_active(qtbot):
    """A script that ended without closing its viewer aborted at exit: the session dock's destroyed signal asked the
    draft timer, whose Qt object the application had deleted already (RuntimeError in a slot)."""
    from qtpy import sip

    from napari_unetv2.widgets._after_pause import AfterPause

    timer = AfterPause(lambda: None, 500, 5.0)
    timer.poke()
    assert timer.isActive()
    sip.delete(timer._timer)
    assert not timer.isActive()
    timer.stop()


def test_segment_says_a_correction_stored_elsewhere_when_its_older_mask_is_chosen(make_napari_viewer, qtbot):
    """A folder session stored a correction of an image whose Segment mask (made before) stayed open; choosing that
    image again, Segment said only its version, and the old mask was then accepted over the correction."""
    from test_kept_edits import _polyp_segmented

    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.widgets._state import corrections_by_image

    viewer, image, _, widget, mask = _polyp_segmented(make_napari_viewer, qtbot)
    root = widget.models.corrections_dir
    corrected = np.asarray(mask.data).copy()
    corrected[:30, :30] = 1
    entry = store_correction(CorrectionSet(root), np.asarray(image.data), corrected, source="polyp.png").entry
    corrections_by_image(root)  # as the session's writer does once it stored
    other = viewer.add_image(np.full((64, 64), 90, np.uint8), name="other frame")
    viewer.layers.selection.active = other
    said = lambda: widget.status.value.replace("\u200b", "")  # noqa: E731
    qtbot.waitUntil(lambda: "other frame: not segmented yet" in said(), timeout=5000)
    viewer.layers.selection.active = image
    qtbot.waitUntil(lambda: "a correction of this image is stored already" in said(), timeout=5000)
    from napari_unetv2.files.times import shown

    assert "polyp.png" in said() and shown(entry.created) in said()


def test_the_widgets_follow_the_folder_session_image_over_an_image_segmented_before(make_napari_viewer, qtbot,
                                                                                    tmp_path):
    """Verification of session 35: an image segmented in Segment, then a folder session opened: Segment and Correct &
    retrain stayed on the earlier image (hidden by the session), through every image of the session, and Accept
    correction brought that image back over the session's."""
    from test_kept_edits import _polyp_segmented
    from test_session import crops_folder, open_session, wait_shown

    viewer, image, _, segment, _ = _polyp_segmented(make_napari_viewer, qtbot)
    _, retrain = viewer.window.add_plugin_dock_widget("napari-unetv2", "Correct & retrain")
    assert segment.image.value is image
    data = crops_folder(tmp_path / "data", n=2)
    session = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    qtbot.waitUntil(lambda: segment.image.value is session.image_layer, timeout=5000)
    assert retrain.image.value is session.image_layer and retrain.mask.value is session.mask_layer
    assert session.accept_and_next() is not None  # (the session renames its layers for the next image)
    wait_shown(qtbot, session)
    assert segment.image.value is session.image_layer and retrain.mask.value is session.mask_layer


def test_closing_the_session_image_speaks_of_a_painted_mask_only_when_there_is_one(make_napari_viewer, qtbot, tmp_path):
    """The verification of session 35: the viewer cleared, the session said "Accept & next shows it again (a mask you
    painted with it)" though nothing had been painted."""
    from test_session import crops_folder, open_session

    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", images=crops_folder(tmp_path / "data", n=2) / "images")
    name = session.image_layer.name
    viewer.layers.remove(session.image_layer)
    said = session.status.value.replace("\u200b", "")
    assert f"{name} was closed; Accept & next shows it again, Next goes on" in said, said
