"""The annotation session over a folder: the Qt-free state, and a clinician's scripted session in a real viewer."""
import json
import shutil
import time

import numpy as np
import pytest

import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
from napari_unetv2._sample_data import SAMPLES, load_sample
from napari_unetv2.annotation import AnnotationSession, DuplicateCorrection, store_correction
from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.files import read_image, read_mask, write_png_atomic

PLUGIN = "napari-unetv2"


def crops_folder(root, n=12, side=256):
    """``root/images`` + ``root/masks``: n distinct real images, crops of the shipped samples (4 per sample)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    made = 0
    for key in SAMPLES:
        image, mask, stem = load_sample(key)
        h, w = mask.shape
        for i, (y, x) in enumerate([(0, 0), (0, w - side), (h - side, 0), (h - side, w - side)]):
            if made == n:
                return root
            name = f"{key}_{i}"
            write_png_atomic(root / "images" / f"{name}.png", image[y:y + side, x:x + side])
            write_png_atomic(root / "masks" / f"{name}.png", mask[y:y + side, x:x + side] * 255)
            made += 1
    return root


# ---- the session's state, without Qt -------------------------------------------------------------------
def test_session_resumes_and_exports_without_overwriting(tmp_path):
    folder = crops_folder(tmp_path / "data", n=5)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    first = session.current
    session.accept(first, read_mask(folder / "masks" / first.name), "entry-1")
    session.next()
    session.skip(session.current)
    session.next()
    again = AnnotationSession(tmp_path / "s")  # a restart: only the session folder is needed
    assert again.position == 2 and again.reviewed() == 2 and again.progress_text().startswith("2 / 5 reviewed")
    assert np.array_equal(again.starting_mask(first), read_mask(folder / "masks" / first.name))
    out = tmp_path / "out"
    written = again.export(out)
    assert [p.name for p in written] == [first.name] and np.array_equal(read_mask(written[0]), again.starting_mask(first))
    with pytest.raises(ValueError, match="Nothing was overwritten"):
        again.export(out)


def test_an_export_that_fails_part_way_leaves_nothing_and_can_be_done_again(tmp_path, monkeypatch):
    """A cold review of session 25: a full disk on the 2nd of 3 masks left the 1st in the export folder, and the
    export done again after freeing space was refused ('already holds ...')."""
    import errno

    from napari_unetv2.annotation import session as session_module

    folder = crops_folder(tmp_path / "data", n=3)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    for path in session.images:
        session.accept(path, read_mask(folder / "masks" / path.name), f"entry-{path.stem}")
    write = session_module.atomic_write_bytes
    calls = []

    def full_disk_on_the_second(target, data):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(target, data)

    monkeypatch.setattr(session_module, "atomic_write_bytes", full_disk_on_the_second)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        session.export(out)
    assert list(out.iterdir()) == []
    monkeypatch.setattr(session_module, "atomic_write_bytes", write)
    assert len(session.export(out)) == 3


def test_session_refuses_bad_folders(tmp_path):
    folder = crops_folder(tmp_path / "data", n=2)
    AnnotationSession(tmp_path / "s", folder / "images")
    with pytest.raises(ValueError, match="belongs to"):
        AnnotationSession(tmp_path / "s", folder / "masks")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        AnnotationSession(tmp_path / "s2", tmp_path / "empty")
    (folder / "images" / "polyp_0.jpg").write_bytes((folder / "images" / "polyp_0.png").read_bytes())
    with pytest.raises(ValueError, match="share a name"):
        AnnotationSession(tmp_path / "s3", folder / "images")
    (tmp_path / "s4").mkdir()
    (tmp_path / "s4" / "session.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        AnnotationSession(tmp_path / "s4")


def test_two_windows_on_one_session_keep_each_others_decisions(tmp_path):
    folder = crops_folder(tmp_path / "data", n=3)
    first, second = (AnnotationSession(tmp_path / "s", folder / "images") for _ in range(2))
    a, b, c = first.images
    mask = read_mask(folder / "masks" / a.name)
    first.accept(a, mask, "entry-a")
    second.accept(b, mask, "entry-b")
    second.skip(a)  # the second window never saw the first's acceptance: a skip must not undo it
    second.next()
    again = AnnotationSession(tmp_path / "s")
    assert [again.status(p) for p in (a, b, c)] == ["accepted", "accepted", None]
    assert [p.name for p in again.export(tmp_path / "out")] == [a.name, b.name]


def test_a_given_mask_is_found_by_its_exact_name(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for stem, rows in (("scan1", 10), ("scan[1]", 4), ("scan2", 0)):
        write_png_atomic(images / f"{stem}.png", np.zeros((16, 16, 3), np.uint8))
        if rows:
            mask = np.zeros((16, 16), np.uint8)
            mask[:rows] = 255
            write_png_atomic(masks / f"{stem}.png", mask)
    session = AnnotationSession(tmp_path / "s", images, masks)
    found = {p.stem: session.starting_mask(p) for p in session.images}
    assert found["scan[1]"].sum() == 4 * 16 and found["scan1"].sum() == 10 * 16 and found["scan2"] is None


@pytest.mark.parametrize("state, says", [
    ("[]", "not an object"), ('{"images": 3}', "folder paths"), ('{"images": "%s", "position": null}', "whole number"),
    ('{"images": "%s", "items": []}', "decisions"), ('{"images": "%s", "items": {"a.png": {"status": "done"}}}', "decisions"),
])
def test_a_session_file_of_the_wrong_shape_is_refused_and_kept(tmp_path, state, says):
    folder = crops_folder(tmp_path / "data", n=2)
    (tmp_path / "s").mkdir()
    text = state.replace("%s", str(folder / "images"))
    (tmp_path / "s" / "session.json").write_text(text)
    with pytest.raises(ValueError, match=says):
        AnnotationSession(tmp_path / "s")
    assert (tmp_path / "s" / "session.json").read_text() == text


def test_a_position_out_of_range_opens_at_an_end(tmp_path):
    folder = crops_folder(tmp_path / "data", n=2)
    AnnotationSession(tmp_path / "s", folder / "images").go(1)
    state = tmp_path / "s" / "session.json"
    text = json.loads(state.read_text())
    text.pop("current")  # a session file written before the image's name was kept beside the position
    text["position"] = -9
    state.write_text(json.dumps(text))
    assert AnnotationSession(tmp_path / "s").position == 0


def test_a_session_resumes_on_its_image_when_files_were_added_before_it(tmp_path):
    folder = crops_folder(tmp_path / "data", n=3)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    session.go(2)
    left_on = session.current.name
    shutil.copy(folder / "images" / left_on, folder / "images" / ("0_added_" + left_on))  # sorts first
    assert AnnotationSession(tmp_path / "s").current.name == left_on


def test_a_given_mask_is_not_another_images_whose_name_starts_alike(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for stem, rows in (("p", 3), ("p.1", 9)):
        write_png_atomic(images / f"{stem}.png", np.zeros((16, 16, 3), np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[:rows] = 255
        write_png_atomic(masks / f"{stem}.png", mask)
    session = AnnotationSession(tmp_path / "s", images, masks)
    found = {p.stem: int((session.starting_mask(p) > 0).sum()) // 16 for p in session.images}
    assert found == {"p": 3, "p.1": 9}  # "p.*" matched p.1.png first


def test_images_whose_masks_would_be_one_file_on_a_case_insensitive_disk_are_refused(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("Scan.png", "scan.jpg"):
        write_png_atomic(images / name, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="Scan.png and scan.jpg"):
        AnnotationSession(tmp_path / "s", images)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("where", ["images", "other data"])
def test_a_data_folder_is_refused_as_the_session_folder_and_left_alone(tmp_path, where):
    folder = crops_folder(tmp_path / "data", n=2)
    root = folder / "images" if where == "images" else folder / "masks"
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ValueError, match="session folder"):
        AnnotationSession(root, folder / "images")
    assert sorted(p.name for p in root.iterdir()) == before


def test_store_correction_refuses_exact_duplicates_and_replaces_older_masks(tmp_path):
    image, mask, stem = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "cs")
    first = store_correction(cs, image, mask, source=stem)
    with pytest.raises(DuplicateCorrection):
        store_correction(cs, image, mask, source=stem)
    edited = mask.copy()
    edited[:20, :20] = 1
    second = store_correction(cs, image, edited, source=stem)
    assert second.replaced == [first.entry.id] and [e.id for e in cs.entries()] == [second.entry.id]
    assert np.array_equal(read_mask(cs.root / second.entry.mask_file), edited)


# ---- the goal: a clinician's session in a real viewer ----------------------------------------------
class Lateness:
    """Event-loop lateness: how much later than its 20 ms interval each QTimer tick came, for the whole session."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.values: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self):
        now = time.perf_counter()
        self.values.append(max(now - self._last - 0.020, 0.0) * 1000)
        self._last = now

    def stop(self) -> dict:
        self.timer.stop()
        v = np.array(self.values)
        return {"ticks": len(v), "median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)),
                "max_ms": float(v.max()), "over_100ms": int((v > 100).sum())}


def visible_masks_per_image(viewer):
    from napari.layers import Labels

    from napari_unetv2.widgets._layers import IMAGE_ID

    counts = {}
    for layer in viewer.layers:
        if isinstance(layer, Labels) and layer.visible and IMAGE_ID in layer.metadata:
            counts[layer.metadata[IMAGE_ID]] = counts.get(layer.metadata[IMAGE_ID], 0) + 1
    return counts


def open_session(viewer, qtbot, session_dir, images=None):
    from napari_unetv2.widgets.session import SessionWidget

    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate a folder")
    if images is not None:
        widget.images.value = str(images)
    widget.session_folder.value = str(session_dir)
    assert widget.open_session() is not None, widget.status.value
    wait_shown(qtbot, widget)
    return widget


def wait_shown(qtbot, widget):
    """Until the current image is on screen, and then as long as a person must look at it before accepting."""
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    try:
        qtbot.waitUntil(lambda: widget.shown_path == widget.session.current, timeout=60_000)
    except Exception as err:
        raise AssertionError(f"{widget.session.current} not shown: {widget.status.value}") from err
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)


@pytest.mark.slow
def test_goal_a_clinicians_session_with_retrain_restart_and_resume(make_napari_viewer, qtbot, tmp_path, isolated_home,
                                                                 small_checkpoint):
    """10 images: segment -> edit -> accept & next, a background retrain after 5, restart, resume at image 11."""
    from napari_unetv2.widgets._state import model_in_use

    models = model_in_use()
    start = models.store.add(small_checkpoint)
    models.use(start.version)
    data = crops_folder(tmp_path / "data", n=12)
    session_dir = tmp_path / "session"
    viewer = make_napari_viewer(show=True)
    widget = open_session(viewer, qtbot, session_dir, images=data / "images")
    widget.auto_retrain.value, widget.retrain_every.value, widget.epochs.value = True, 5, 1
    said, say = [], widget.say
    widget.say = lambda text, *args, **kwargs: (said.append(text), say(text, *args, **kwargs))[1]
    lateness = Lateness()
    on_screen, asked = {}, []
    for i in range(10):
        path = widget.session.current
        assert widget.session.position == i and widget.where.value.startswith(f"{i} / 12 reviewed")
        assert viewer.layers.selection.active is widget.mask_layer and widget.mask_layer.mode == "paint"
        assert all(n <= 1 for n in visible_masks_per_image(viewer).values())
        assert len(visible_masks_per_image(viewer)) == 1  # never another image's mask over this one
        # The clinician's edit: the expert's outline painted in where the model was wrong.
        truth = read_mask(data / "masks" / path.name)
        widget.mask_layer.data[truth != widget.mask_layer.data] = truth[truth != widget.mask_layer.data]
        widget.mask_layer.refresh()
        on_screen[path.name] = (np.asarray(widget.image_layer.data).copy(), np.asarray(widget.mask_layer.data).copy())
        accepted = widget.accept_and_next()
        if accepted is None and "looks like the images of the bundled skin model" in widget.status.value.replace(
                "\u200b", ""):  # the first dermoscopy crop: asked once (test_trial40), the clinician presses again
            asked.append(path.name)
            qtbot.wait(600)  # (a press sooner is taken for a double click)
            accepted = widget.accept_and_next()
        assert accepted is not None, widget.status.value
        if i == 4:  # the fifth stored correction starts a background retrain
            qtbot.waitUntil(lambda: widget.busy or widget.retrain_rounds > 0, timeout=30_000)
        wait_shown(qtbot, widget)
        qtbot.wait(400)  # a person looks at each image for seconds; this lets the screen draw and the next one compute
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert len(asked) <= 1  # (once for such images, whichever model version made their masks since)
    qtbot.waitUntil(lambda: widget.retrain_rounds == 2 and not widget.busy, timeout=300_000)
    qtbot.waitUntil(lambda: not widget._loading, timeout=60_000)  # the image on screen segmented by the new model
    assert widget.retrain_rounds == 2, widget.status.value  # after the 5th and the 10th accepted correction
    assert len(models.store.versions()) == 3  # each round added a version
    # each round's original-domain check was said with its result, not only written (trial of session 36)
    assert sum("new version in use" in text and "original domain (endoscopy sample images, 2): Dice" in text
               for text in said) >= 2, said[-5:]
    late = lateness.stop()
    print(f"event-loop lateness during the session: {late}")
    shot = viewer.screenshot(canvas_only=False)
    assert shot.std() > 5

    # Every stored correction is exactly the image and the mask that were on screen; none lost, none twice.
    cs = CorrectionSet(isolated_home / "corrections")
    entries = cs.entries()
    assert sorted(e.source for e in entries) == sorted(on_screen)
    for entry in entries:
        image, mask = on_screen[entry.source]
        assert np.array_equal(read_image(cs.root / entry.image_file), image)
        assert np.array_equal(read_mask(cs.root / entry.mask_file), mask)
    # The goal is < 100 ms throughout; on the quiet 2-core machine five runs of this test gave max
    # 65-94 ms (README, Benchmarks). Timing is not asserted here (the machine running the tests may be
    # shared): the test holds the line that catches real regressions (a synchronous prediction, napari's
    # per-removal garbage collection: seconds) and prints the distribution.
    assert late["max_ms"] < 1000 and late["median_ms"] < 20, late

    # Restart: a new viewer and widget on the same session folder resume at image 11.
    viewer.close()
    viewer2 = make_napari_viewer(show=True)
    again = open_session(viewer2, qtbot, session_dir)
    assert again.session.position == 10 and again.where.value.startswith("10 / 12 reviewed; image 11")
    assert again.shown_path.name not in on_screen
    again.previous_image()  # an accepted image comes back with the mask that was accepted
    assert np.array_equal(np.asarray(again.mask_layer.data), on_screen[again.shown_path.name][1])
    qtbot.wait(500)  # looked at before it is accepted again
    assert again.accept_and_next() is not None
    qtbot.waitUntil(lambda: again.pending_writes == 0, timeout=30_000)
    assert len(CorrectionSet(cs.root).entries()) == 10  # no duplicate


def test_keyboard_shortcuts_skip_and_export(make_napari_viewer, qtbot, tmp_path):
    from app_model.types import KeyBinding

    data = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    keys = {str(KeyBinding.from_str(k)): k for k in ("Alt-Right", "Alt-Left", "Alt-S", "Alt-Enter")}
    bound = {str(k): f for k, f in viewer.keymap.items()}
    assert set(keys) <= set(bound), sorted(bound)
    bound[str(KeyBinding.from_str("Alt-Right"))](viewer)  # Next
    wait_shown(qtbot, widget)
    assert widget.session.position == 1
    bound[str(KeyBinding.from_str("Alt-S"))](viewer)  # Skip
    wait_shown(qtbot, widget)
    assert widget.session.position == 2 and widget.session.status(widget.session.path_at(1)) == "skipped"
    bound[str(KeyBinding.from_str("Alt-Enter"))](viewer)  # Accept & next on the last image
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert widget.session.reviewed() == 2
    widget.export_folder.value = str(tmp_path / "finished")
    assert [p.name for p in widget.export()] == [widget.session.path_at(2).name]
    # what is left out is said (trial of session 35: a skipped image was left out without a word)
    first, second = widget.session.path_at(0).stem, widget.session.path_at(1).stem
    assert f"not exported: 1 skipped ({second}); 1 not accepted yet ({first})" in widget.status.value.replace("\u200b", "")
    assert widget.export() == [] and "Nothing was overwritten" in widget.status.value.replace("\u200b", "")


def test_a_resumed_session_keeps_its_automatic_retraining_settings(make_napari_viewer, qtbot, tmp_path):
    """The final trial of session 24: a resumed session came back with automatic retraining off (N 5, 20 epochs)."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    widget.auto_retrain.value, widget.retrain_every.value, widget.epochs.value = True, 2, 3
    widget._writer.submit(lambda: None).result(timeout=30)  # the session file written
    viewer.close()
    again = open_session(make_napari_viewer(), qtbot, tmp_path / "session")
    assert (again.auto_retrain.value, again.retrain_every.value, again.epochs.value) == (True, 2, 3)
    # said with the first image's line (trial of session 30: "segmenting ..." replaced it at once)
    status = again.status.value.replace("\u200b", "")
    assert "resumed with this session's settings: automatic retraining on, N 2, 3 epochs per round" in status, status


def test_a_grey_image_after_a_colour_one_is_shown(make_napari_viewer, qtbot, tmp_path, isolated_home):
    """A cold review of session 25: moving from a colour image to a grey one clears the shown layers one by one; closing
    the image took its unedited outputs with it at once, so the clearing met a layer already gone (ValueError) and the
    next image was not shown. The outputs now go on the next turn of the event loop."""
    images = tmp_path / "images"
    images.mkdir()
    image, _, _ = load_sample("polyp")
    write_png_atomic(images / "a_colour.png", image[:128, :128])
    write_png_atomic(images / "b_grey.png", image[:128, :128, 0])
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=images)
    widget.session.next(save=False)
    widget.show_current()
    wait_shown(qtbot, widget)
    assert widget.shown_path.name == "b_grey.png"
    assert sorted(x.name for x in viewer.layers) == ["b_grey", "b_grey mask", "b_grey probability"]


# ---- session 26's clinician trial ----------------------------------------------------------------------------
def test_an_unreadable_next_image_takes_the_last_one_off_the_screen_and_cannot_be_accepted(make_napari_viewer, qtbot,
                                                                                          tmp_path):
    """Next onto a corrupt file left the previous image and its mask on screen, selected with the brush ready,
    under "image 2: b.png"; and the read-ahead's error replaced the current image's instructions."""
    from napari_unetv2.widgets.session import SESSION_FILE_KEY

    data = crops_folder(tmp_path / "data", n=2)
    images = data / "images"
    first, last = sorted(images.iterdir())
    (images / (first.stem + "_corrupt.png")).write_bytes(b"\x89PNG\r\n\x1a\n not a picture")  # sorts between
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=images)
    qtbot.wait(1500)  # the read-ahead of the corrupt file has failed by now
    assert "corrupt" not in widget.status.value
    assert widget.next_image()
    qtbot.waitUntil(lambda: widget.failed_path == widget.session.current, timeout=30_000)
    status = widget.status.value.replace("\u200b", "")
    assert "could not be read" in status and "Skip" in status
    assert not [x for x in viewer.layers if x.metadata.get(SESSION_FILE_KEY) == str(first)]  # a's image is gone
    assert len(viewer.layers) == 0
    assert widget.accept_and_next() is None and "no mask to accept" in widget.status.value.replace("\u200b", "")
    assert widget.skip()
    wait_shown(qtbot, widget)
    assert widget.session.current == last and viewer.layers[0].metadata.get(SESSION_FILE_KEY) == str(last)


def test_accept_onto_an_unreadable_image_keeps_saying_so_and_shows_no_other_image(make_napari_viewer, qtbot, tmp_path):
    """Trial of session 35: Accept & next onto a corrupt file said so, then 1.5 s later the stored line of the image
    before replaced it for good; and the canvas showed another widget's image, under "image 2: b.png"."""
    data = crops_folder(tmp_path / "data", n=2)
    images = data / "images"
    first, last = sorted(images.iterdir())
    (images / (first.stem + "_corrupt.png")).write_bytes(b"\x89PNG\r\n\x1a\n not a picture")  # sorts between
    viewer = make_napari_viewer()
    elsewhere = viewer.add_image(np.full((96, 96, 3), 200, np.uint8), name="segmented elsewhere")
    widget = open_session(viewer, qtbot, tmp_path / "session", images=images)
    assert widget.accept_and_next() is not None
    qtbot.waitUntil(lambda: widget.failed_path == widget.session.current and not widget._writing, timeout=30_000)
    qtbot.wait(200)
    status = widget.status.value.replace("\u200b", "")
    assert f"{first.name}: stored" in status and "could not be read" in status and "Skip" in status
    assert not elsewhere.visible  # the canvas shows nothing that could be taken for the unreadable image
    assert widget.skip()
    wait_shown(qtbot, widget)
    assert widget.session.current == last


def test_next_asks_before_leaving_edits_that_were_not_accepted(make_napari_viewer, qtbot, tmp_path):
    data = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    widget.mask_layer.paint((30, 30), 1)  # an edit, not accepted
    assert not widget.next_image() and widget.session.position == 0
    assert "not accepted" in widget.status.value.replace("\u200b", "")
    assert not widget.skip() and widget.session.status(widget.session.current) is None  # Skip asks too
    assert widget.skip()  # the same action again: the edits are left
    wait_shown(qtbot, widget)
    assert widget.session.position == 1
    assert widget.next_image()  # an unedited mask: no question
    wait_shown(qtbot, widget)
    assert widget.session.position == 2


def test_another_image_folder_gets_its_own_session_folder(make_napari_viewer, qtbot, tmp_path, isolated_home):
    """After folder A, choosing folder B and Open was refused ("belongs to the images in A"): the session folder
    the widget had filled in for A stayed."""
    first, second = crops_folder(tmp_path / "a", n=2), crops_folder(tmp_path / "b", n=2)
    from napari_unetv2.widgets.session import SessionWidget

    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.images.value = str(first / "images")
    assert widget.open_session() is not None
    wait_shown(qtbot, widget)
    first_root = widget.session.root
    widget.images.value = str(second / "images")
    assert widget.open_session() is not None, widget.status.value
    assert widget.session.images_dir == second / "images" and widget.session.root != first_root


def test_edits_left_behind_do_not_come_back_as_the_models_mask(make_napari_viewer, qtbot, tmp_path):
    """Session 26's second trial: the brush painted into the cached prediction, so after leaving the edits (Next,
    Next) and going back, the stroke was shown as the model's own mask, counted as unedited, and stored as such."""
    from napari_unetv2.widgets._layers import mask_was_edited

    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    models_mask = np.array(widget.mask_layer.data, copy=True)
    widget.mask_layer.paint((128, 128), 1 - int(models_mask[128, 128]))
    assert not widget.next_image() and widget.next_image()  # asked, then the edits are left
    wait_shown(qtbot, widget)
    assert widget.previous_image()
    wait_shown(qtbot, widget)
    np.testing.assert_array_equal(widget.mask_layer.data, models_mask)
    assert not mask_was_edited(widget.mask_layer)


def test_a_click_count_does_not_follow_the_layer_to_the_next_image(make_napari_viewer, qtbot, tmp_path):
    from napari_unetv2.interactive import CLICKS_METADATA

    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    widget.mask_layer.metadata[CLICKS_METADATA] = 2  # as Correct with clicks records two clicks on image 1
    widget.mask_layer.paint((128, 128), 1)
    assert not widget.next_image() and widget.next_image()
    wait_shown(qtbot, widget)
    assert CLICKS_METADATA not in widget.mask_layer.metadata


# ---- session 26's cold review of the day's change --------------------------------------------------------------
def test_a_failed_re_segmentation_of_the_image_on_screen_keeps_its_edits(make_napari_viewer, qtbot, tmp_path):
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    widget.mask_layer.paint((30, 30), 1)
    edited = np.array(widget.mask_layer.data)

    def failing(*args, **kwargs):
        raise ValueError("the new model cannot read this frame (a damaged checkpoint)")

    widget.models.predictor = failing
    widget._on_model_switched()  # what the widget runs when another model is put in use
    qtbot.waitUntil(lambda: "damaged checkpoint" in widget.status.value.replace("\u200b", ""), timeout=30_000)
    assert widget.mask_layer in viewer.layers and np.array_equal(widget.mask_layer.data, edited)


def test_a_runtime_error_of_the_model_is_said_and_the_image_not_left_being_segmented(make_napari_viewer, qtbot,
                                                                                     tmp_path):
    """superqt takes a returned RuntimeError (CUDA out of memory) for an aborted worker and emits nothing: the
    image stayed "segmenting..." for good, with the previous one on screen."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")

    class OutOfMemory:
        def predict(self, image, **kwargs):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    widget.models.predictor = lambda *args, **kwargs: OutOfMemory()
    widget._cache.clear()
    assert widget.next_image()
    qtbot.waitUntil(lambda: widget.failed_path == widget.session.current, timeout=30_000)
    assert "out of memory" in widget.status.value.replace("\u200b", "") and len(viewer.layers) == 0


def test_an_unreadable_image_with_a_given_mask_is_said_too(make_napari_viewer, qtbot, tmp_path):

    data = crops_folder(tmp_path / "data", n=2)
    first = sorted((data / "images").iterdir())[0]
    corrupt = data / "images" / (first.stem + "_corrupt.png")
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not a picture")  # sorts second
    (data / "masks" / corrupt.name).write_bytes((data / "masks" / first.name).read_bytes())  # its given mask
    viewer = make_napari_viewer()
    widget = open_with_given_masks(viewer, qtbot, data, tmp_path / "session")
    assert widget.next_image()  # read at once (a given mask needs no model): it raised out of Next before
    assert widget.failed_path == corrupt and len(viewer.layers) == 0


def open_with_given_masks(viewer, qtbot, data, session_dir):
    """Annotate a folder on ``data/images`` with the masks of ``data/masks`` shown for correction."""
    from napari_unetv2.widgets.session import SessionWidget

    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.images.value, widget.masks.value = str(data / "images"), str(data / "masks")
    widget.session_folder.value = str(session_dir)
    assert widget.open_session() is not None
    wait_shown(qtbot, widget)
    return widget


def on_the_last_image_with_an_edit(make_napari_viewer, qtbot, tmp_path):
    """A session of two images, on the second (the last) with a brush stroke not yet accepted."""
    data = crops_folder(tmp_path / "data", n=2)
    widget = open_session(make_napari_viewer(), qtbot, tmp_path / "session", images=data / "images")
    widget.corrections.value = str(tmp_path / "corrections")
    assert widget.next_image()
    wait_shown(qtbot, widget)
    widget.mask_layer.paint((30, 30), 1)
    return widget


def test_previous_after_accepting_the_last_image_does_not_call_its_edits_unaccepted(make_napari_viewer, qtbot,
                                                                                    tmp_path, isolated_home):
    widget = on_the_last_image_with_an_edit(make_napari_viewer, qtbot, tmp_path)
    widget.accept_and_next().result(timeout=60)  # the last image: it stays on screen
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert widget.previous_image(), widget.status.value


def test_after_a_folder_that_failed_to_open_the_next_folder_gets_its_own_session_folder(make_napari_viewer, qtbot,
                                                                                        tmp_path, isolated_home):
    from napari_unetv2.widgets.session import SessionWidget

    (tmp_path / "scans_p1").mkdir()  # no images in it
    data = crops_folder(tmp_path / "p2", n=2)
    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.images.value = str(tmp_path / "scans_p1")
    assert widget.open_session() is None
    widget.images.value = str(data / "images")
    assert widget.open_session() is not None, widget.status.value
    assert widget.session.root.name.startswith("images")  # not under the first folder's name


def test_a_session_kept_under_its_hashed_name_is_found_again(tmp_path):
    from napari_unetv2.annotation.session import default_session_folder

    sessions = tmp_path / "sessions"
    first, second = (crops_folder(tmp_path / p, n=3) / "images" for p in ("p1", "p2"))
    AnnotationSession(default_session_folder(sessions, first), first)
    kept = default_session_folder(sessions, second)
    assert kept.name != "images"  # the plain name is the first folder's
    AnnotationSession(kept, second).go(2)
    shutil.rmtree(sessions / "images")  # the first patient's session removed when done
    assert default_session_folder(sessions, second) == kept
    assert AnnotationSession(kept).position == 2


def test_a_session_started_before_the_case_check_still_opens(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("Scan.png", "scan.png"):  # one folder on Linux, two files
        write_png_atomic(images / name, np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "session.json").write_text(json.dumps({"images": str(images), "position": 1, "items": {}}))
    assert AnnotationSession(tmp_path / "s").position == 1


# ---- session 26's cold review of the second round of fixes -----------------------------------------------------
def test_a_resumed_session_still_refuses_one_name_with_two_suffixes(tmp_path):
    """The case check made for new sessions only let a resumed one skip the whole check: scan.png and a scan.jpg
    added later both accepted into finished/scan.png, the second over the first."""
    images = tmp_path / "images"
    images.mkdir()
    write_png_atomic(images / "scan.png", np.zeros((16, 16, 3), np.uint8))
    AnnotationSession(tmp_path / "s", images)
    write_png_atomic(images / "scan.jpg", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="share a name"):
        AnnotationSession(tmp_path / "s")


def test_a_failed_store_of_the_last_image_still_asks_before_its_edits_are_left(make_napari_viewer, qtbot, tmp_path,
                                                                               monkeypatch, isolated_home):
    import napari_unetv2.widgets.session as session_widget

    widget = on_the_last_image_with_an_edit(make_napari_viewer, qtbot, tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session_widget, "store_correction", full_disk)
    widget.accept_and_next().result(timeout=60)
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert "NOT stored" in widget.status.value.replace("\u200b", "")
    assert not widget.previous_image()  # the edits are not stored: leaving them asks first


def test_an_unreadable_given_mask_of_the_next_image_is_met_there(make_napari_viewer, qtbot, tmp_path):
    """The read-ahead read the next image's given mask unguarded: a damaged one raised in Qt's event loop."""
    data = crops_folder(tmp_path / "data", n=2)
    first, second = sorted((data / "images").iterdir())
    (data / "masks" / first.name).unlink()  # the first image is segmented by the model
    (data / "masks" / second.name).write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # the second's given mask is damaged
    widget = open_with_given_masks(make_napari_viewer(), qtbot, data, tmp_path / "session")
    # the read-ahead (150 ms later) reads the next image's given mask
    qtbot.wait(500)
    assert widget.next_image()
    assert widget.failed_path == second, widget.status.value


def test_previous_at_once_after_accept_shows_the_mask_just_accepted(make_napari_viewer, qtbot, tmp_path, monkeypatch,
                                                                   isolated_home):
    """Session 26's third trial: Previous within a quarter of a second of Accept (the write still going) showed the
    model's mask, and accepting it again replaced the correction just made with it."""
    import threading

    import napari_unetv2.widgets.session as session_widget

    data = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    widget.corrections.value = str(tmp_path / "corrections")
    widget.mask_layer.paint((128, 128), 1 - int(widget.mask_layer.data[128, 128]))
    accepted = np.array(widget.mask_layer.data, copy=True)
    release = threading.Event()
    real = session_widget.store_correction

    def slow_disk(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(session_widget, "store_correction", slow_disk)
    future = widget.accept_and_next()
    wait_shown(qtbot, widget)
    assert widget.previous_image()  # the write is still going
    wait_shown(qtbot, widget)
    np.testing.assert_array_equal(widget.mask_layer.data, accepted)
    release.set()
    future.result(timeout=60)
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    np.testing.assert_array_equal(read_mask(widget.session.finished_path(widget.session.current)), accepted)


def test_skipping_the_last_image_updates_the_progress_line(make_napari_viewer, qtbot, tmp_path):
    """First-hour trial of session 28: Skip on the last image said "4 / 5 reviewed" while the line above the buttons
    still read "3 / 5 reviewed; image 5: ..." without "(skipped)", until Previous."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    assert widget.next_image()
    wait_shown(qtbot, widget)
    assert not widget.skip()  # the last image: nowhere to go
    line = widget.where.value.replace("\u200b", "")
    assert line.startswith("1 / 2 reviewed; image 2: ") and line.endswith("(skipped)"), line


def test_the_status_says_how_far_the_next_automatic_retrain_is_earlier_sessions_counted(make_napari_viewer, qtbot,
                                                                                      tmp_path, isolated_home):
    """Trial of session 28: "retrain every N" counts every correction the model in use has not trained on, earlier
    sessions' too (the README's policy), while its tooltip said "accepted in this session", and nothing showed the
    count: a round started at this session's first accept, unexplained."""
    image, mask, stem = load_sample("polyp")
    viewer = make_napari_viewer()
    data = crops_folder(tmp_path / "data", n=2)
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    store_correction(CorrectionSet(widget.corrections.value), image, mask, source=stem)  # an earlier session's
    widget.auto_retrain.value, widget.retrain_every.value = True, 3
    assert "earlier ones" in widget.auto_retrain.tooltip
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    status = widget.status.value.replace("\u200b", "")
    assert "next automatic retrain at 3 corrections new to the model in use (2 now)" in status, status
    assert not widget.busy
    # the accept that starts a round says why now (it counted the earlier session's correction too)
    widget.retrain_every.value, widget.epochs.value = 2, 1
    wait_shown(qtbot, widget)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    status = widget.status.value.replace("\u200b", "")
    assert "retraining in the background on 3 corrections new to the model in use (N = 2)" in status, status
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)


def test_an_unedited_accept_asks_before_replacing_a_correction_made_in_correct_and_retrain(make_napari_viewer, qtbot,
                                                                                        tmp_path, isolated_home):
    """Trial of session 29: an image corrected (2400 pixels painted) and accepted in *Correct & retrain*, then accepted
    unedited in a folder session over the same correction set: the model's mask replaced the correction silently,
    and the next round trained on it. Now the first Accept stores nothing and says so (checked in the writer thread,
    not the GUI's). Back on that image, the correction is shown (session 40; before, the model's mask read ahead was
    shown again, and a second unedited Accept replaced the correction on purpose)."""
    data = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    path = widget.session.current
    image = read_image(path)
    painted = np.zeros(image.shape[:2], np.uint8)
    painted[20:70, 20:70] = 1
    cs = CorrectionSet(widget.corrections.value)
    earlier = store_correction(cs, image, painted, source=path.name, predicted_mask=np.zeros_like(painted)).entry
    assert earlier.pixels_changed == 2500

    def accept():
        assert widget.accept_and_next() is not None, widget.status.value
        qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
        return widget.status.value.replace("\u200b", "")

    status = accept()
    assert f"{path.name} NOT stored" in status and earlier.id in status and "the model's mask" in status, status
    assert "Previous goes back to it" in status and [e.id for e in cs.entries()] == [earlier.id]
    assert widget.session.status(path) != "accepted"
    # Back on it, the correction stored meanwhile is what is shown (session 40: the image is read again when the set
    # holds other corrections of it than when it was read), not the model's mask: kept, or edited and accepted
    assert widget.previous_image()
    wait_shown(qtbot, widget)
    assert widget.session.current == path and np.array_equal(np.asarray(widget.mask_layer.data) > 0, painted > 0)
    assert earlier.id in widget.status.value.replace("\u200b", "")
    assert "unchanged: this mask was stored already" in accept()
    assert [e.id for e in cs.entries()] == [earlier.id]


def test_a_correction_made_in_correct_and_retrain_is_what_the_folder_session_shows(make_napari_viewer, qtbot, tmp_path,
                                                                                  isolated_home):
    """Stop 29's list: a folder session showed the model's mask over an image the set already held a correction of
    (made in *Correct & retrain*, or in an earlier session of another folder), so the clinician corrected it again or
    was told at Accept that it would replace the correction. Now the correction is shown (the model's probability
    beside it); an unedited Accept keeps that very entry (nothing stored twice, the session points to it), an edit
    replaces it, and a model switch does not paint the model's mask over it."""
    from napari_unetv2.widgets.session import SessionWidget

    data = crops_folder(tmp_path / "data", n=3)
    first = sorted((data / "images").iterdir())[0]
    image = read_image(first)
    painted = np.zeros(image.shape[:2], np.uint8)
    painted[20:70, 30:90] = 1
    corrections = tmp_path / "corrections"
    cs = CorrectionSet(corrections)
    earlier = store_correction(cs, image, painted, source=first.stem, predicted_mask=np.zeros_like(painted)).entry

    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate a folder")
    widget.images.value, widget.corrections.value = str(data / "images"), str(corrections)
    widget.session_folder.value = str(tmp_path / "session")
    assert widget.open_session() is not None, widget.status.value
    wait_shown(qtbot, widget)
    assert widget.session.current == first
    assert np.array_equal(np.asarray(widget.mask_layer.data) > 0, painted > 0)
    status = widget.status.value.replace("\u200b", "")
    assert earlier.id in status and "is shown, not the model's mask" in status, status
    assert any(layer.name == f"{first.stem} probability" for layer in viewer.layers)

    widget._on_model_switched()  # a new model in use: the correction on screen stays, and the status says so
    qtbot.waitUntil(lambda: "stays on screen" in widget.status.value.replace("\u200b", ""), timeout=30_000)
    assert earlier.id in widget.status.value.replace("\u200b", "")
    assert np.array_equal(np.asarray(widget.mask_layer.data) > 0, painted > 0)
    wait_shown(qtbot, widget)

    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert [e.id for e in cs.entries()] == [earlier.id], widget.status.value
    assert widget.session.status(first) == "accepted" and widget.session.entry_id(first) == earlier.id
    assert np.array_equal(read_mask(widget.session.finished_path(first)) > 0, painted > 0)

    # back to it (now this session's accepted mask), one stroke more, accepted: the entry is replaced
    wait_shown(qtbot, widget)
    assert widget.previous_image()
    wait_shown(qtbot, widget)
    edited = np.asarray(widget.mask_layer.data).copy()
    edited[100:120, 100:120] = 1
    widget.mask_layer.data = edited
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    entries = cs.entries()
    assert len(entries) == 1 and entries[0].id != earlier.id, widget.status.value
    assert np.array_equal(read_mask(corrections / entries[0].mask_file) > 0, edited > 0)


def a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side: int):
    """A session on two crops, its first mask painted over (a side x side square flipped): viewer, widget, path, mask."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    painted = np.asarray(widget.mask_layer.data).copy()
    painted[10:10 + side, 10:10 + side] = 1 - painted[10:10 + side, 10:10 + side]
    widget.mask_layer.data = painted
    return viewer, widget, widget.session.current, painted


def test_a_painted_mask_deleted_in_a_session_is_restored_and_accepted(make_napari_viewer, qtbot, tmp_path):
    """Deleting the session's painted mask from the layer list lost the painting, and Accept then said the image was
    'still being segmented'. Now Accept says the mask was deleted, Restore brings it back, and Accept stores it."""
    viewer, widget, path, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=50)
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.accept_and_next() is None
    assert "mask layer was deleted" in widget.status.value.replace("\u200b", "")
    assert widget.restore_deleted_mask() is not None
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert np.array_equal(read_mask(widget.session.finished_path(path)) > 0, painted > 0)
    entries = CorrectionSet(widget.corrections.value).entries()
    assert len(entries) == 1 and entries[0].pixels_changed == 2500


def test_a_mask_replaced_in_place_by_a_new_model_must_be_seen_before_accept_takes_it(make_napari_viewer, qtbot, tmp_path):
    """Trial of session 30: a round's new model re-segmented the image on screen, and an Accept 0.1 s later stored
    the new mask as checked (seconds spent: 0.2, the clock restarted by the replacement). Now Accept waits as it does
    for a new image, and the time spent counts from when the image appeared."""
    from types import SimpleNamespace

    from napari_unetv2.widgets._layers import PREDICTED_AT

    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    path, since = widget.session.current, widget.mask_layer.metadata[PREDICTED_AT]
    shape = widget.mask_layer.data.shape
    new_mask = np.zeros(shape, np.uint8)
    new_mask[40:120, 40:120] = 1
    new = SimpleNamespace(mask=new_mask, probability=new_mask.astype(np.float32), attention=None, model_version="v-new")
    widget.models.predictor = lambda *args, **kwargs: SimpleNamespace(predict=lambda image, **kwargs: new)
    widget.models.related = lambda a, b: True
    widget._on_model_switched()
    qtbot.waitUntil(lambda: np.array_equal(widget.mask_layer.data, new_mask), timeout=30_000)
    assert widget.accept_and_next() is None
    assert "was just replaced by the new model's" in widget.status.value.replace("\u200b", "")
    assert widget.session.current == path and widget.mask_layer.metadata[PREDICTED_AT] == since
    painted = np.asarray(widget.mask_layer.data).copy()
    painted[0:5, 0:5] = 1
    widget.mask_layer.data = painted  # painted since it was replaced: it was seen, Accept takes it at once
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    entry = CorrectionSet(widget.corrections.value).entries()[0]
    assert entry.seconds_spent >= 0.4, entry.seconds_spent  # counted from when the image appeared (0.4 s before the switch)


def test_closing_the_sessions_image_shows_it_again_with_its_painted_mask(make_napari_viewer, qtbot, tmp_path):
    """Trial of session 30: the session's image layer closed (napari's delete), Accept said "still being segmented"
    for good, and on the last image Next said "that was the last image" over an empty canvas. Now the status says the
    image was closed; Accept (or Next on the last image) shows it again, with the mask painted on it, and a second
    Accept stores that mask."""
    viewer, widget, path, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=40)
    viewer.layers.remove(widget.image_layer)
    qtbot.wait(50)
    assert f"{path.stem} was closed" in widget.status.value.replace("\u200b", "")
    assert widget.accept_and_next() is None
    assert "shown again with your painted mask" in widget.status.value.replace("\u200b", "")
    assert widget.image_layer in viewer.layers and np.array_equal(widget.mask_layer.data, painted)
    assert sum(1 for layer in viewer.layers if layer.name.startswith(f"{path.stem} mask")) == 1
    wait_shown(qtbot, widget)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert np.array_equal(read_mask(widget.session.finished_path(path)) > 0, painted > 0)
    wait_shown(qtbot, widget)  # the last image, unpainted: closed, then Next
    last = widget.session.current
    viewer.layers.remove(widget.image_layer)
    qtbot.wait(50)
    assert widget.next_image() is False
    wait_shown(qtbot, widget)
    assert widget.image_layer in viewer.layers and widget.image_layer.name == last.stem


def test_the_last_images_stored_line_still_says_it_was_the_last(make_napari_viewer, qtbot, tmp_path):
    """Trial of session 30: on the last image, "that was the last image; export ..." was replaced by the stored line."""
    data = crops_folder(tmp_path / "data", n=1)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    status = widget.status.value.replace("\u200b", "")
    assert "stored" in status and "that was the last image: export the finished masks" in status, status


def test_a_mask_deleted_then_restored_after_next_is_not_tied_to_the_next_image(make_napari_viewer, qtbot, tmp_path):
    """Review of session 30: the session shows every image in one layer, so a painted mask deleted on image A and
    restored after Next came back as image B's mask, and Accept stored A's painting as B's correction; then (the
    verification) a loose copy stayed drawn over every later image. Now it is not restored over B (the status says
    to go back to A); back on A it is A's mask again, Next asks before leaving it, and Accept stores it for A."""
    viewer, widget, first, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=40)
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.restore_deleted_mask() is not None  # on A itself: A's mask again
    assert np.array_equal(widget._live_mask().data, painted)
    assert widget.next_image() is False and "not accepted" in widget.status.value.replace("\u200b", "")
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.next_image()  # nothing on screen to ask about: the painting is kept for Restore
    wait_shown(qtbot, widget)
    second_mask = np.asarray(widget.mask_layer.data).copy()
    layers_before = len(viewer.layers)
    assert widget.restore_deleted_mask() is None
    assert "show that image again" in widget.status.value.replace("\u200b", "")
    assert len(viewer.layers) == layers_before and np.array_equal(widget._live_mask().data, second_mask)
    assert widget.previous_image()
    wait_shown(qtbot, widget)
    assert widget.restore_deleted_mask() is not None and np.array_equal(widget._live_mask().data, painted)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert np.array_equal(read_mask(widget.session.finished_path(first)) > 0, painted > 0)


def test_a_closed_image_whose_prediction_must_be_made_again_is_shown_when_done(make_napari_viewer, qtbot, tmp_path):
    """Review of session 30: with the cache emptied (a model switch, eviction), Accept on a closed image said "shown
    again" while nothing was shown, and the computed result was dropped. Now it is shown when computed; another
    correction set empties the cache too (its corrections of the images differ)."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    path = widget.session.current
    viewer.layers.remove(widget.image_layer)
    qtbot.wait(50)
    widget.corrections.value = str(tmp_path / "another set")
    assert widget._cache == {}
    assert widget.accept_and_next() is None
    assert "shown again" not in widget.status.value.replace("\u200b", "")
    qtbot.waitUntil(lambda: widget.image_layer is not None and widget.image_layer in viewer.layers, timeout=60_000)
    assert widget.image_layer.name == path.stem and widget._live_mask() is not None


def test_accept_after_an_unpainted_mask_was_deleted_shows_the_mask_again(make_napari_viewer, qtbot, tmp_path):
    """Review of session 30: Accept on an image whose unpainted mask was deleted pointed to Restore, which keeps only
    painted masks (its button hidden). Now the image's mask is shown again, to look at before accepting."""
    data = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    widget = open_session(viewer, qtbot, tmp_path / "session", images=data / "images")
    model_mask = np.asarray(widget.mask_layer.data).copy()
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.accept_and_next() is None
    assert "its mask is shown again" in widget.status.value.replace("\u200b", "")
    assert widget._live_mask() is not None and np.array_equal(widget.mask_layer.data, model_mask)
    wait_shown(qtbot, widget)
    assert widget.accept_and_next() is not None, widget.status.value


def test_a_new_model_adds_no_hidden_mask_over_a_deleted_painted_one(make_napari_viewer, qtbot, tmp_path):
    """Second review of session 30: a round's new model re-segmenting an image whose painted mask was deleted added a
    hidden mask, which Accept then stored unseen (the painting waiting in Restore). Now the new model adds no mask,
    the status points to Restore, Accept does too, and the restored painting is what Accept stores."""
    from types import SimpleNamespace

    viewer, widget, first, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=40)
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    new_mask = np.zeros_like(painted)
    new = SimpleNamespace(mask=new_mask, probability=new_mask.astype(np.float32), attention=None, model_version="v2")
    widget.models.predictor = lambda *args, **kwargs: SimpleNamespace(predict=lambda image, **kwargs: new)
    widget.models.related = lambda a, b: True
    widget._on_model_switched()
    qtbot.waitUntil(lambda: "segmented again" in widget.status.value.replace("\u200b", ""), timeout=30_000)
    assert "Restore deleted mask" in widget.status.value.replace("\u200b", "") and widget._live_mask() is None
    qtbot.wait(400)
    assert widget.accept_and_next() is None and "Restore" in widget.status.value.replace("\u200b", "")
    assert widget.restore_deleted_mask() is not None
    assert np.array_equal(widget._live_mask().data, painted)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert np.array_equal(read_mask(widget.session.finished_path(first)) > 0, painted > 0)


def test_restore_finds_an_image_shown_again_by_its_pixels(make_napari_viewer, qtbot, tmp_path):
    """Second review of session 30: a painted mask deleted, then its image closed and shown again (a new layer, a new
    id): Restore called the image closed and left the mask loose on the canvas, and Accept stored the model's mask.
    Now the image shown again says that Restore holds its painting, and Restore makes it that image's mask."""
    viewer, widget, first, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=40)
    viewer.layers.remove(widget.mask_layer)
    viewer.layers.remove(widget.image_layer)
    qtbot.wait(50)
    assert widget.accept_and_next() is None  # shown again
    qtbot.waitUntil(lambda: widget.image_layer in viewer.layers, timeout=30_000)
    assert "Restore deleted mask" in widget.status.value.replace("\u200b", "")
    restored = widget.restore_deleted_mask()
    assert restored is not None and not restored.name.endswith("(image closed)"), widget.status.value
    assert np.array_equal(widget._live_mask().data, painted)
    assert len([x for x in viewer.layers if x.name.startswith(f"{first.stem} mask")]) == 1
    qtbot.wait(400)
    assert widget.accept_and_next() is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.pending_writes == 0, timeout=30_000)
    assert np.array_equal(read_mask(widget.session.finished_path(first)) > 0, painted > 0)


def test_restore_brings_back_the_deletion_of_the_image_on_screen_before_a_newer_one(make_napari_viewer, qtbot,
                                                                                   tmp_path):
    """Second review of session 30: Restore took only the newest deletion; after deleting painted masks on A and then B,
    back on A it refused (B's was newest). Now it restores the newest that fits what is on screen: A's."""
    viewer, widget, first, painted = a_session_with_a_painted_mask(make_napari_viewer, qtbot, tmp_path, side=40)
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.next_image()
    wait_shown(qtbot, widget)
    other = np.asarray(widget.mask_layer.data).copy()
    other[:20, :20] = 1 - other[:20, :20]
    widget.mask_layer.data = other
    viewer.layers.remove(widget.mask_layer)
    qtbot.wait(50)
    assert widget.previous_image()
    wait_shown(qtbot, widget)
    assert widget.restore_deleted_mask() is not None, widget.status.value
    assert np.array_equal(widget._live_mask().data, painted)
