"""Session 39: stop 38's list worked through and a clinician trial over several days of use (napari closed, reopened
and killed between steps). Each test failed on the code before its fix."""

from pathlib import Path

import numpy as np
import pytest

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


def test_batch_folder_reads_the_results_it_opens_in_its_worker(make_napari_viewer, qtbot, tmp_path, isolated_home,
                                                              monkeypatch):
    """*Open the results in the viewer* read every image and mask in the GUI thread when the run ended: a few pairs with
    a clip held the window 2-4 s (session 38). The worker reads them now; the GUI thread only adds the layers."""
    import threading

    from test_gui_findings import dock, run_until_idle

    import napari_unetv2.files as files
    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.widgets._layers import MASK, layer_of

    rng = np.random.default_rng(2)
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a", "b", "c"):
        write_png_atomic(source / f"{name}.png", rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    read_in, read_image = [], files.read_image

    def spy(path, *args, **kwargs):
        read_in.append(threading.current_thread() is threading.main_thread())
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(files, "read_image", spy)
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    read_in.clear()
    run_until_idle(qtbot, batch)
    for name in ("a", "b", "c"):
        assert layer_of(viewer, viewer.layers[name], MASK) is not None
    opened = [flag for flag in read_in]
    assert opened and not any(opened), opened  # every read in the worker (the run's own reads, and the opening's)


def test_a_painted_clips_pixels_are_hashed_once_a_pause(make_napari_viewer, qtbot, isolated_home, monkeypatch):
    """Each pause in painting judged the mask by hashing its pixels up to five times in the GUI thread (about 2 s for a
    100-frame 1080p clip, stop 38's list); and again when nothing had changed (a layer shown or selected). Once a
    pause now, none when nothing changed; what is kept is still the last pixels painted."""
    from test_kept_edits import _segment, _settle

    import napari_unetv2.widgets._kept_edits as kept_edits
    import napari_unetv2.widgets._layers.roles as roles
    from napari_unetv2.widgets._kept_edits import IMAGE_KEY, painted_mask_keeper

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (3, 64, 96, 3), dtype=np.uint8)
    viewer = make_napari_viewer()
    viewer.add_image(clip, name="clip", rgb=True)
    _, mask = _segment(viewer, qtbot)
    _settle(viewer, qtbot)
    hashed, image_hash = [], kept_edits.image_hash

    def counting(array):
        if np.shape(array) == mask.data.shape:
            hashed.append(1)
        return image_hash(array)

    monkeypatch.setattr(kept_edits, "image_hash", counting)
    monkeypatch.setattr(roles, "image_hash", counting)
    painted = np.asarray(mask.data).copy()
    painted[1, 10:30, 20:50] = 1 - painted[1, 10:30, 20:50]
    mask.data = painted
    _settle(viewer, qtbot)
    assert len(hashed) == 1, len(hashed)
    keeper = painted_mask_keeper(viewer)
    keeper.schedule(mask, painted=False)  # (a thumbnail redrawn on selection: a look, nothing painted)
    _settle(viewer, qtbot)
    assert len(hashed) == 1, len(hashed)
    found = keeper.store.find(mask.metadata[IMAGE_KEY], painted.shape)
    np.testing.assert_array_equal(found.mask > 0, painted > 0)
    # napari's undo changes the pixels in place and says only "thumbnail": the next pause sees them
    mask.data[1, 0:5, 0:5] = 1 - mask.data[1, 0:5, 0:5]
    mask.events.thumbnail()
    _settle(viewer, qtbot)
    found = keeper.store.find(mask.metadata[IMAGE_KEY], painted.shape)
    np.testing.assert_array_equal(found.mask > 0, np.asarray(mask.data) > 0)


def test_segment_says_when_its_image_becomes_covered_or_hidden(make_napari_viewer, qtbot, isolated_home):
    """Segment's note "(not on screen: an image above it covers it)" was taken back when the image came into view, but
    never added when another image was opened over it (or its eye unticked) after the status was said."""
    from test_gui_findings import two_samples_and_segment

    from napari_unetv2.widgets._layers import bring_into_view

    viewer, seg, first, second = two_samples_and_segment(make_napari_viewer)
    viewer.layers.selection.active = second
    qtbot.wait(20)
    viewer.layers.selection.active = first
    bring_into_view(viewer, first)
    qtbot.waitUntil(lambda: seg.status.value.replace("\u200b", "") == f"{first.name}: not segmented yet", timeout=5000)
    said = seg.status.value.replace("\u200b", "")
    # another image dragged above it in the layer list (the selection, and so the chosen image, stays)
    viewer.layers.move(viewer.layers.index(second), len(viewer.layers))
    second.visible = True  # (bring_into_view had hidden it)
    qtbot.waitUntil(lambda: "covers it" in seg.status.value.replace("\u200b", ""), timeout=5000)
    assert seg.image.value is first
    assert seg.status.value.replace("\u200b", "").startswith(said.rstrip()), seg.status.value
    bring_into_view(viewer, first)
    qtbot.waitUntil(lambda: "covers it" not in seg.status.value.replace("\u200b", ""), timeout=5000)
    first.visible = False
    qtbot.waitUntil(lambda: "(hidden: tick its eye" in seg.status.value.replace("\u200b", ""), timeout=5000)


def test_a_correction_removed_in_retrain_is_said_by_the_folder_session_and_its_export(make_napari_viewer, qtbot,
                                                                                      tmp_path, isolated_home):
    """Clinician trial of session 39: a correction removed with one press of *Remove selected* (no question, no word)
    went on as "your accepted mask" in the folder session, which exported it unsaid. Removing asks a second press and
    says what it deleted; the session says the image's correction is gone, on screen and at export."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    folder = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    session.corrections.value = str(isolated_home / "corrections")
    first = session.session.current
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    assert session.previous_image()  # back on the accepted image: it is on screen while its correction is removed
    wait_shown(qtbot, session)
    rt = dock(viewer, "Correct & retrain")
    rt.folder.value = str(isolated_home / "corrections")
    rt.refresh_entries()
    (entry_id,) = [entry.id for entry in rt.correction_set.entries()]
    rt.entries.value = [entry_id]
    assert rt.remove_selected() == []  # asked, nothing deleted
    status = rt.status.value.replace("\u200b", "")
    assert "Press Remove selected again" in status and first.stem in status, status
    assert rt.correction_set.holds(entry_id)
    assert rt.remove_selected() == [entry_id]
    assert f"removed 1 correction(s) from the set: {first.name}" in rt.status.value.replace("\u200b", "")
    status = session.status.value.replace("\u200b", "")
    assert "its correction was taken out of the correction set" in status, status
    assert session.next_image() and session.previous_image()  # and when it is shown again
    wait_shown(qtbot, session)
    status = session.status.value.replace("\u200b", "")
    assert "its correction was taken out of the correction set" in status, status
    session.export_folder.value = str(tmp_path / "export")
    assert len(session.export()) == 1  # the mask accepted here is exported, and said
    status = session.status.value.replace("\u200b", "")
    assert "no longer have a correction in the correction set" in status and first.stem in status, status


def test_kept_edits_are_exported_under_the_image_files_name(make_napari_viewer, qtbot, tmp_path, isolated_home):
    """Clinician trial of session 39: an image opened a second time is napari's "frame [1]"; its painted mask, kept,
    was exported as ``frame_1_mask.png``, which a folder session's "existing masks" never finds for ``frame.png``
    (the colleague silently got the model's mask)."""
    from test_kept_edits import _segment, _settle

    from napari_unetv2.annotation import AnnotationSession
    from napari_unetv2.annotation.kept_edits import KeptEdits, export_stem
    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    rng = np.random.default_rng(3)
    images = tmp_path / "images"
    images.mkdir()
    write_png_atomic(images / "frame.png", rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8), np.uint8), name="frame")  # another layer of that name is open
    (layer,) = viewer.open(str(images / "frame.png"))
    assert layer.name == "frame [1]"
    _, mask = _segment(viewer, qtbot, layer)
    painted = np.asarray(mask.data).copy()
    painted[5:25, 5:40] = 1
    mask.data = painted
    _settle(viewer, qtbot)
    painted_mask_keeper(viewer).wait()
    store = KeptEdits()
    ((key, _role, about),) = [entry for entry in store.listing() if entry[1] == "mask"]
    assert about["file"] == "frame.png"
    written = store.export(key, tmp_path / "to_colleague")
    assert written.name == "frame_mask.png", written
    session = AnnotationSession(tmp_path / "session", images, tmp_path / "to_colleague")
    found = session.starting_mask(session.images[0])
    assert found is not None and np.array_equal(found > 0, painted > 0)
    # an entry kept before the file was recorded, or from an image with no file: napari's " [1]" is not in the name
    assert export_stem({"image": "frame [1]"}) == "frame"
    assert export_stem({"image": "frame [1]", "file": "../../frame.jpg"}) == "frame"
    # the name a session looks for, exactly (cold review of session 39); a layer's name keeps its dots
    for file_name, stem in (("frame 1.jpg", "frame 1"), ("Läsion_03.png", "Läsion_03"), ("IMG (2).jpg", "IMG (2)")):
        assert export_stem({"image": "x", "file": file_name}) == stem
    assert export_stem({"image": "scan.v2 [1]"}) == "scan.v2"


def test_a_batch_run_killed_between_summary_writes_loses_no_row(predictor, tmp_path):
    """Clinician trial of session 39: a Batch folder run killed (kill -9) at 17 of 40 images left 17 masks and 13
    summary rows; the next --continue said the 4 others were "not made by this program's runs" and which model made
    them was lost. Each row now goes to the run's journal once its files are written; every read folds journals in."""
    import subprocess
    import sys

    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.inference.batch import predict_folder
    from napari_unetv2.inference.summary import read_summary

    rng = np.random.default_rng(4)
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(5):
        write_png_atomic(source / f"frame{i}.png", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    killed = subprocess.run([sys.executable, "-c", f"""
import os
from pathlib import Path
from napari_unetv2.inference import Predictor, batch, summary
batch.SUMMARY_EVERY_S = 1e9  # summary.csv written after the first image only, as between two rewrites
append, count = summary.SummaryJournal.append, [0]
def append_then_die(self, row):
    append(self, row)
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), 9)
summary.SummaryJournal.append = append_then_die
batch.predict_folder(Predictor(device="cpu"), Path({str(source)!r}), Path({str(out)!r}), resume=True)
"""], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    masks = sorted(p.name for p in out.glob("*.png"))
    assert len(masks) == 3, masks
    with open(out / "summary.csv") as fh:
        assert len(fh.read().splitlines()) == 2  # the header and the first image: the other two only in the journal
    recorded = {row["file"]: row for row in read_summary(out)}
    assert sorted(recorded) == ["frame0.png", "frame1.png", "frame2.png"]
    assert all(row["status"] == "done" and row["model_version"] for row in recorded.values())
    summary = predict_folder(predictor, source, out, resume=True)
    assert summary.unrecorded == 0 and "no summary row" not in summary.describe(), summary.describe()
    assert summary.count("done") == 2 and summary.count("skipped-done") == 3
    final = {row["file"]: row for row in read_summary(out)}
    assert all(final[f"frame{i}.png"]["model_version"] == predictor.config.version for i in range(5))
    assert not list(out.glob(".*.journal"))  # the dead run's journal folded into summary.csv and gone


def test_batch_folder_says_how_many_of_the_masks_it_opens_are_this_runs(make_napari_viewer, qtbot, tmp_path,
                                                                       isolated_home):
    """"Opened the first 20 of 39 masks" after a --continue run that made 23 of them (trial of session 39)."""
    from test_gui_findings import dock, run_until_idle

    from napari_unetv2.files import write_png_atomic

    rng = np.random.default_rng(5)
    source = tmp_path / "in"
    source.mkdir()

    def add(names):
        for name in names:
            write_png_atomic(source / f"{name}.png", rng.integers(0, 255, (32, 40, 3), dtype=np.uint8))

    add([f"a{i:02d}" for i in range(8)])
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), False
    run_until_idle(qtbot, batch)
    add([f"b{i:02d}" for i in range(14)])
    batch.open_results.value = True
    run_until_idle(qtbot, batch)
    status = batch.status.value.replace("\u200b", "")
    assert "Opened 20 of 22 masks: 14 this run made and 6 of the 8 an earlier run wrote." in status, status
    assert "Opened 6 mask(s)" not in status, status


def test_batch_folder_opens_its_results_pair_by_pair_with_the_window_answering(make_napari_viewer, qtbot, tmp_path,
                                                                               isolated_home):
    """Clinician trial of session 39: "open the results in the viewer" added 20 images and masks in one go in the GUI
    thread: the window froze 9-12 s with nothing said. Pairs are added one per turn of the event loop now (the window
    answers between them), the progress bar counts them, and Cancel stops the opening."""
    from qtpy.QtCore import QTimer
    from test_gui_findings import dock, run_until_idle

    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.widgets._layers import MASK, layer_of

    rng = np.random.default_rng(6)
    source = tmp_path / "in"
    source.mkdir()
    for i in range(4):
        write_png_atomic(source / f"f{i}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    ticks, at_each_image = [0], []
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    timer.start()
    viewer.layers.events.inserted.connect(
        lambda event: at_each_image.append(ticks[0]) if type(event.value).__name__ == "Image" else None)
    try:
        run_until_idle(qtbot, batch)
    finally:
        timer.stop()
    assert len(at_each_image) == 4
    assert all(b > a for a, b in zip(at_each_image, at_each_image[1:])), at_each_image  # the loop ran between pairs
    for i in range(4):
        assert layer_of(viewer, viewer.layers[f"f{i}"], MASK) is not None
    assert viewer.layers["f0"].visible and not viewer.layers["f3"].visible
    assert viewer.layers.selection.active is layer_of(viewer, viewer.layers["f0"], MASK)  # ready to paint the first


def test_a_click_where_the_model_saw_nothing_says_its_disk_is_a_guess(make_napari_viewer):
    """Clinician trial of session 39: a left click on an image whose probability was 0 everywhere added "12853 pixels",
    a perfect disk of radius 64 (10% of the frame), with nothing said of where it came from."""
    from test_clicks_widget import H, W, segmented_viewer, two_blobs_probability

    from napari_unetv2.interactive import ClickSession

    session = ClickSession(np.zeros((H, W), np.uint8), np.zeros((H, W), np.float32))
    edit = session.positive(H // 2, W // 2)
    assert edit.guessed_radius == session.fill_radius and edit.pixels > 0
    # evidence to go by (a half-seen blob at the click, or the mask near): no guess
    session = ClickSession((two_blobs_probability() >= 0.5).astype(np.uint8), two_blobs_probability())
    assert session.positive(170, 230).guessed_radius == 0

    _viewer, widget, mask = segmented_viewer(make_napari_viewer, np.zeros((H, W), np.float32))
    widget.click(H // 2, W // 2, positive=True)
    status = widget.status.value.replace("\u200b", "")
    assert "the model saw nothing here" in status and f"radius {session.fill_radius} px" in status, status
    widget.click(H // 2 + 2, W // 2, positive=True)  # inside the disk: nothing to add, nothing guessed
    assert "saw nothing" not in widget.status.value.replace("\u200b", "")


def test_a_version_fine_tuned_from_a_bundled_model_gives_its_domain_hint(small_checkpoint):
    """Clinician trial of session 39: after a first round, the polyp line's fine-tuned version segmented dermoscopy
    images with no hint (only the bundled models' own versions were judged), and an automatic round then trained it
    on them. A fine-tuned version is judged by the bundled model it descends from, and said to be fine-tuned."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.checkpoints import read_config
    from napari_unetv2.inference.domain import domain_note

    version = read_config(small_checkpoint).version  # fine-tuned from the bundled polyp model (its parent)
    skin, _, _ = load_sample("skin")
    polyp, _, _ = load_sample("polyp")
    note = domain_note(skin, True, version, "choose {model}", small_checkpoint)
    assert "dermoscopy images (PH2)" in note and f"({version}) was fine-tuned from" in note, note
    assert note.endswith("choose the bundled skin model."), note
    assert domain_note(polyp, True, version, "choose {model}", small_checkpoint) == ""


def test_the_folders_used_last_are_offered_in_the_next_napari(make_napari_viewer, qtbot, tmp_path, isolated_home):
    """Clinician trial of session 39: every day began with empty image, session and batch folder fields to choose
    again. The folders used last (a session opened, a run started, a set chosen) are offered (a folder gone too: said when used)."""
    import shutil

    from test_gui_findings import dock, run_until_idle
    from test_session import crops_folder, open_session

    from napari_unetv2.files import write_png_atomic

    folder = crops_folder(tmp_path / "data", n=2)
    source = tmp_path / "in"
    source.mkdir()
    write_png_atomic(source / "a.png", np.random.default_rng(7).integers(0, 255, (32, 40, 3), dtype=np.uint8))
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    batch = dock(viewer, "Batch folder")
    assert str(batch.input.value) in ("", ".")  # nothing used yet
    batch.input.value, batch.output.value = str(source), str(tmp_path / "out")
    run_until_idle(qtbot, batch)
    rt = dock(viewer, "Correct & retrain")
    rt.folder.value = str(tmp_path / "another set")
    assert str(rt.folder.value) == str(tmp_path / "another set")
    viewer.close()

    again = make_napari_viewer()  # the next day
    session = dock(again, "Annotate a folder")
    batch, rt = dock(again, "Batch folder"), dock(again, "Correct & retrain")
    assert (str(session.images.value), str(session.session_folder.value)) == (str(folder / "images"), str(tmp_path / "session"))
    assert (str(batch.input.value), str(batch.output.value)) == (str(source), str(tmp_path / "out"))
    assert str(rt.folder.value) == str(session.corrections.value) == str(tmp_path / "another set")
    assert session.open_session() is not None  # one press resumes it
    # another image folder chosen: its own session folder, not "belongs to the images in ..."
    other = crops_folder(tmp_path / "other", n=2)
    session.images.value = str(other / "images")
    assert session.open_session() is not None, session.status.value
    assert str(session.session_folder.value) != str(tmp_path / "session")
    again.close()
    shutil.rmtree(source)  # a folder gone: offered as it was (not looked at on disk: a dead share would hold the
    third = make_napari_viewer()  # window), and said when used
    batch = dock(third, "Batch folder")
    assert str(batch.input.value) == str(source)
    assert batch.run() is None and "input folder not found" in batch.status.value.replace("\u200b", "")


def test_a_killed_rounds_scratch_folder_goes_at_the_next_start(tmp_path):
    """Clinician trial of session 39: a round killed with napari left models/runs/round-* (copies of the corrections)
    for six hours, so a restart the same day kept it. A live round holds a lock in its folder; a folder whose lock is
    free is a killed round's and goes at once; one whose owner cannot be known keeps the age rule."""
    import subprocess
    import sys

    from napari_unetv2.checkpoints import ModelStore
    from napari_unetv2.checkpoints.model_store import RUN_ALIVE
    from napari_unetv2.files import hold, is_held, release

    store = ModelStore(tmp_path / "models")
    runs = tmp_path / "models" / "runs"
    killed, live, unknown = (runs / name for name in ("round-killed", "round-live", "round-unknown"))
    for folder in (killed, live, unknown):
        (folder / "pairs").mkdir(parents=True)
        (folder / "pairs" / "image.png").write_bytes(b"x")
    subprocess.run([sys.executable, "-c", "import os, sys; from napari_unetv2.files import hold; "
                    f"hold({str(killed / RUN_ALIVE)!r}); os._exit(9)"], check=False, timeout=120)
    assert is_held(killed / RUN_ALIVE) is False
    alive = hold(live / RUN_ALIVE)
    try:
        assert is_held(live / RUN_ALIVE) is True
        assert store.remove_stale_runs() == 1
        assert not killed.exists() and live.is_dir() and unknown.is_dir()
    finally:
        release(alive)


def test_a_cancel_while_a_round_scores_stops_at_the_next_score(tmp_path, small_checkpoint, monkeypatch):
    """Clinician trial of session 39: napari's close during a round blocked 8 s: a round's scoring phase (the new
    model and the old on the held-out corrections and the original domain's samples) gave no event, so a Cancel (and
    the close, which waits for the round) waited for every score. Each score is announced now: a chance to stop."""
    import threading

    from napari_unetv2.checkpoints import ModelStore
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.engine import finetune
    from napari_unetv2.widgets._rounds import round_job

    store = ModelStore(tmp_path / "models")
    store.use(store.add(small_checkpoint).version)
    cs = CorrectionSet(tmp_path / "corrections")
    image = np.random.default_rng(9).integers(0, 255, (64, 80, 3), dtype=np.uint8)  # (not a sample: both are scored)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 30:50] = 1
    cs.add(image, mask, source="frame.png", model_version=store.current, predicted_mask=np.zeros_like(mask))
    cancel, trained, scored_after = threading.Event(), threading.Event(), []
    evaluate = finetune.evaluate_pairs

    def scoring(predictor, pairs, *args, **kwargs):
        if trained.is_set():
            scored_after.extend(pairs)  # the images scored once Cancel was pressed
            cancel.set()  # pressed while the first score after training runs
        return evaluate(predictor, pairs, *args, **kwargs)

    monkeypatch.setattr(finetune, "evaluate_pairs", scoring)
    events = round_job(store, cs, cancel, epochs=1, device="cpu")()
    kinds = []
    with pytest.raises(StopIteration) as finished:
        while True:
            event = next(events)
            kinds.append(event.kind)
            if event.kind == "done":
                trained.set()
    assert finished.value.value is None
    assert len(scored_after) == 1, scored_after  # one image: not the rest of its set, nor the scores after it
    assert kinds[-1] == "scoring"


def test_the_clicks_dock_names_the_folder_sessions_next_image(make_napari_viewer, qtbot, tmp_path, isolated_home):
    """Clinician trial of session 39: after Accept & next, the clicks dock said "123OLCV1_100H0004: press 'Click on
    this image' to start" of the image accepted and gone (the session shows the next one in the same layer, renamed)."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    folder = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    clicks = dock(viewer, "Correct with clicks")
    viewer.layers.selection.active = session.image_layer
    qtbot.wait(50)
    first = session.session.current
    assert clicks.image.value is session.image_layer, clicks.image.choices
    clicks._on_image_chosen()
    assert first.stem in clicks.status.value.replace("\u200b", "")
    assert session.accept_and_next() is not None
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    second = session.session.current
    qtbot.waitUntil(lambda: second.stem in clicks.status.value.replace("\u200b", ""), timeout=5000)
    assert first.stem not in clicks.status.value.replace("\u200b", "")


def test_unetv2_kept_edits_lists_the_folder_sessions_drafts(tmp_path, capsys, isolated_home):
    """Clinician trial of session 39: `unetv2 kept-edits` said "0 entries" while two folder-session drafts (painted,
    never accepted) existed: a clinician collecting unaccepted work missed them."""
    from napari_unetv2.annotation import AnnotationSession
    from napari_unetv2.cli import main
    from napari_unetv2.files import write_png_atomic
    from napari_unetv2.remembered import remember

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        write_png_atomic(images / f"{name}.png", np.zeros((16, 16, 3), np.uint8))
    elsewhere = AnnotationSession(tmp_path / "my session", images)  # a session folder the user chose
    elsewhere.keep_draft(elsewhere.images[1], np.ones((16, 16), np.uint8))
    remember(session__folder=tmp_path / "my session")
    default = AnnotationSession(isolated_home / "sessions" / "images-1", images)
    default.keep_draft(default.images[0], np.ones((16, 16), np.uint8))
    assert main(["kept-edits"]) == 0
    listed = capsys.readouterr().out
    assert "0 entries" in listed
    assert f"folder session {tmp_path / 'my session'}: 1 draft(s) painted and not accepted (b)" in listed, listed
    assert f"folder session {isolated_home / 'sessions' / 'images-1'}: 1 draft(s) painted and not accepted (a)" in listed


def test_without_locks_a_killed_runs_journal_is_folded_once_and_goes(tmp_path, monkeypatch):
    """Cold review of session 39: where no lock can be had (Windows, some network shares) a killed run's journal
    stayed for good and its old rows were read over newer ones at every read (a.png credited to model A after model
    B had made it again). It is folded into the next rewrite, under that run's own rows, and removed."""
    import json

    import napari_unetv2.files.lock as lock
    from napari_unetv2.inference.summary import SummaryJournal, read_summary, update_summary

    monkeypatch.setattr(lock, "fcntl", None)
    row = {"file": "a.png", "status": "done", "model_version": "A"}
    killed = SummaryJournal(tmp_path)
    killed.append(row)  # ... and the process died here
    assert json.loads(killed.path.read_text())["model_version"] == "A"
    assert read_summary(tmp_path)[0]["model_version"] == "A"  # what the killed run did, read back
    update_summary(tmp_path, [{**row, "model_version": "B"}])  # the next run made it again
    assert [r["model_version"] for r in read_summary(tmp_path)] == ["B"]
    assert not list(tmp_path.glob(".*.journal"))


def test_a_held_file_is_never_seen_unlocked(tmp_path):
    """Cold review of session 39: ``hold`` created the file, then locked it; ``is_held`` in between read a live
    round's folder as a killed one's (removed whole). It is made and locked under another name, then renamed."""
    from types import SimpleNamespace

    import napari_unetv2.files.lock as lock
    from napari_unetv2.files import hold, is_held, release

    target = tmp_path / ".alive"
    seen_before_locked = []
    real = lock.fcntl

    def flock(descriptor, operation):
        if not seen_before_locked:  # (the first lock: hold's own)
            seen_before_locked.append(target.exists())
        return real.flock(descriptor, operation)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lock, "fcntl", SimpleNamespace(flock=flock, LOCK_EX=real.LOCK_EX, LOCK_NB=real.LOCK_NB))
        descriptor = hold(target)
    assert seen_before_locked == [False]  # no one could open it by its name before it was locked
    try:
        assert descriptor is not None and is_held(target) is True
        assert [p.name for p in tmp_path.iterdir()] == [".alive"]  # (no temporary left beside it)
    finally:
        release(descriptor)
    assert is_held(target) is False


def test_a_session_reopened_with_another_correction_set_keeps_its_own(make_napari_viewer, qtbot, tmp_path,
                                                                       isolated_home):
    """Cold review of session 39: the correction set field offered the set another widget used last; the resumed
    session compared its accepted images with that set and said every one's correction was "removed in Correct &
    retrain" (and would have taken that set's mask of the same pixels). Each acceptance records its set; a session
    whose acceptances went into one set takes it back."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    from napari_unetv2.remembered import remember

    folder = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    first = session.session.current
    assert session.accept_and_next() is not None
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    own = str(session.corrections.value)
    viewer.close()
    other = tmp_path / "another set"
    other.mkdir()
    remember(corrections=other)  # Correct & retrain chose another set since

    again = make_napari_viewer()
    session = dock(again, "Annotate a folder")
    assert str(session.corrections.value) == str(other)  # offered, as used last
    assert session.open_session() is not None
    wait_shown(qtbot, session)
    status = session.status.value.replace("\u200b", "")
    assert str(session.corrections.value) == str(Path(own).resolve()), session.corrections.value
    assert "removed" not in status and "this session's corrections are in" in status, status
    assert not session.session.corrections_removed
    assert session.session.follow_corrections(other) == [] and not session.session.corrections_removed
    assert session.session.status(first) == "accepted"


def test_batch_folder_offers_the_last_output_only_with_its_input(make_napari_viewer, tmp_path, isolated_home):
    """Cold review of session 39: yesterday's output folder stayed offered when another input was chosen; with
    "continue" ticked, every new image named like one of yesterday's (IMG_0001.JPG) kept yesterday's mask."""
    from test_gui_findings import dock

    from napari_unetv2.remembered import remember

    for name in ("clinic A", "clinic B", "out"):
        (tmp_path / name).mkdir()
    remember(batch__input=tmp_path / "clinic A", batch__output=tmp_path / "out")
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    assert (str(batch.input.value), str(batch.output.value)) == (str(tmp_path / "clinic A"), str(tmp_path / "out"))
    batch.input.value = str(tmp_path / "clinic B")
    assert str(batch.output.value) in ("", ".")
    assert "choose its output folder" in batch.status.value.replace("\u200b", "")


def _four_images(tmp_path):
    from napari_unetv2.files import write_png_atomic

    rng = np.random.default_rng(8)
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a", "b", "c", "d"):
        write_png_atomic(source / f"{name}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return source


def test_a_cancelled_batch_run_still_opens_what_it_finished(make_napari_viewer, qtbot, tmp_path, isolated_home,
                                                            monkeypatch):
    """Cold review of session 39: the Cancel that stopped the run also stopped the opening at once: none of the
    finished masks opened, and the status said "Cancelled while opening the results: opened 0 of them"."""
    from test_gui_findings import dock, run_until_idle

    import napari_unetv2.widgets.batch as batch_module
    from napari_unetv2.widgets._layers import MASK, layer_of

    source = _four_images(tmp_path)
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    real = batch_module.predict_folder

    def pressed_after_the_first(predictor, *args, progress=None, **kwargs):
        def progress_then_cancel(done, total, name):
            progress(done, total, name)
            if done == 1:
                batch._cancel.set()  # Cancel pressed
        return real(predictor, *args, progress=progress_then_cancel, **kwargs)

    monkeypatch.setattr(batch_module, "predict_folder", pressed_after_the_first)
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    run_until_idle(qtbot, batch)
    status = batch.status.value.replace("\u200b", "")
    assert batch.last_summary.stopped and "cancelled" in status, status
    assert "while opening" not in status, status
    written = [p.stem for p in (tmp_path / "out").glob("*.png")]
    assert written and all(layer_of(viewer, viewer.layers[stem], MASK) is not None for stem in written)


def test_an_error_reading_one_result_keeps_the_runs_report(make_napari_viewer, qtbot, tmp_path, isolated_home,
                                                           monkeypatch):
    """Cold review of session 39: a MemoryError (or any error other than ValueError and OSError) reading one result to
    open escaped the worker: the run's line and the pairs already added went unsaid."""
    from test_gui_findings import dock, run_until_idle

    import napari_unetv2.files as files

    source = _four_images(tmp_path)
    real = files.read_image

    def short_of_memory(path, *args, **kwargs):
        if path.name == "b.png" and "reading" in short_of_memory.phase:
            raise MemoryError("cannot allocate")
        return real(path, *args, **kwargs)

    short_of_memory.phase = ""
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    monkeypatch.setattr(files, "read_image", short_of_memory)
    short_of_memory.phase = "reading"  # (the run's own reads go through the pipeline's reader, not this one)
    run_until_idle(qtbot, batch)
    status = batch.status.value.replace("\u200b", "")
    assert "4 segmented" in status and "Not opened (1): b (not enough memory (cannot allocate))" in status, status
    assert {"a", "c", "d"} <= {layer.name for layer in viewer.layers}


def test_napari_quitting_while_results_open_stops_the_opening_at_once(make_napari_viewer, qtbot, tmp_path,
                                                                      isolated_home):
    """Cold review of session 39: napari's Quit asks the workers to quit and waits for them in the GUI thread, before
    the dock hears of it: the opening waited for the GUI thread to add its next pair (60 s of a frozen window)."""
    import time

    from qtpy.QtCore import QThreadPool
    from test_gui_findings import dock

    source = _four_images(tmp_path)
    viewer = make_napari_viewer()
    batch = dock(viewer, "Batch folder")
    batch.input.value, batch.output.value, batch.open_results.value = str(source), str(tmp_path / "out"), True
    waited, add_pair = [], batch._add_pair

    def quit_and_wait(opening, pair):  # napari's Quit arrives before the pair is added: the workers are asked to quit
        if not waited:  # and waited for in the GUI thread (wait_for_workers_to_quit)
            batch.worker.quit()
            started = time.monotonic()
            QThreadPool.globalInstance().waitForDone(15_000)
            waited.append(time.monotonic() - started)
        return add_pair(opening, pair)

    batch._add_pair = quit_and_wait
    batch.run()
    qtbot.waitUntil(lambda: bool(waited), timeout=120_000)
    assert waited[0] < 5, waited


def test_a_killed_shards_rows_reach_the_folders_summary(tmp_path):
    """Cold review of session 39: a killed shard's journal was folded in only by a later run with the same shard count;
    an unsharded --continue said its masks were "not made by this program's runs"."""
    import napari_unetv2.files.lock as lock
    from napari_unetv2.inference.shards import summary_name
    from napari_unetv2.inference.summary import SummaryJournal, read_summary, update_summary

    killed = SummaryJournal(tmp_path, summary_name((1, 4)))
    killed.append({"file": "a.png", "status": "done", "model_version": "A"})
    lock.release(killed._descriptor)  # ... the process died: its lock went with it
    assert [row["model_version"] for row in read_summary(tmp_path)] == ["A"]
    update_summary(tmp_path, [{"file": "b.png", "status": "done", "model_version": "B"}])
    assert sorted((row["file"], row["model_version"]) for row in read_summary(tmp_path)) == [("a.png", "A"), ("b.png", "B")]
    assert not list(tmp_path.glob(".*.journal"))


def test_kept_edits_survive_a_kill_while_they_are_rewritten(tmp_path, monkeypatch):
    """Verification of session 39: napari killed while a clip's kept edits were rewritten (its JSON deleted first and
    written last, 1-3 s later for a long clip) lost the whole entry, the edits kept before included. The entry stays
    readable: the old one until the new one is whole."""
    import napari_unetv2.annotation.kept_edits as kept_edits
    from napari_unetv2.annotation.kept_edits import KeptEdits

    store = KeptEdits(tmp_path / "kept")
    key = "0" * 32
    first = np.zeros((3, 20, 30), np.uint8)
    first[1, 2:8, 3:9] = 1
    store.keep(key, first, {"image": "clip"})
    second = first.copy()
    second[2, 10:15, 10:20] = 1

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt("napari killed before the JSON was written")

    monkeypatch.setattr(kept_edits, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        store.keep(key, second, {"image": "clip"})
    found = store.find(key, first.shape)
    assert found is not None and (found.mask > 0).sum() in ((first > 0).sum(), (second > 0).sum())


def test_segments_hidden_image_sentence_goes_when_the_image_is_shown(make_napari_viewer, qtbot, isolated_home):
    """Verification of session 39: "The image is hidden: tick its eye in the layer list to see it." in a run's line
    stayed after the image was shown again (only the bracketed notes followed)."""
    from test_gui_findings import segment, two_samples_and_segment

    from napari_unetv2.widgets.segment import HIDDEN_IMAGE_SENTENCE

    viewer, seg, first, _second = two_samples_and_segment(make_napari_viewer)
    seg.image.value = first
    segment(qtbot, seg)
    first.visible = False  # as a run's line says it when the image is hidden when the run ends
    seg.say(seg.status.value.replace("\u200b", "") + HIDDEN_IMAGE_SENTENCE, about=first)
    qtbot.wait(50)
    assert HIDDEN_IMAGE_SENTENCE.strip() in seg.status.value.replace("\u200b", "")
    first.visible = True
    qtbot.waitUntil(lambda: HIDDEN_IMAGE_SENTENCE.strip() not in seg.status.value.replace("\u200b", ""), timeout=5000)
    assert "done in" in seg.status.value.replace("\u200b", "")


def test_the_session_folder_field_follows_another_image_folder(make_napari_viewer, tmp_path, isolated_home):
    """Verification of session 39: after another image folder was chosen, the session folder field went on showing the
    last folder's session folder until Open."""
    from test_gui_findings import dock

    from napari_unetv2.remembered import remember

    for name in ("polyps", "skin", "my session"):
        (tmp_path / name).mkdir()
    remember(session__images=tmp_path / "polyps", session__folder=tmp_path / "my session")
    viewer = make_napari_viewer()
    session = dock(viewer, "Annotate a folder")
    assert str(session.session_folder.value) == str(tmp_path / "my session")
    session.images.value = str(tmp_path / "skin")
    assert Path(str(session.session_folder.value)).parent == isolated_home / "sessions"
    assert Path(str(session.session_folder.value)).name.startswith("skin")


def test_any_dock_removes_a_killed_rounds_scratch_folder(make_napari_viewer, isolated_home):
    """Verification of session 39: only Correct & retrain's dock removed a killed round's scratch folder; a session
    resumed beside Segment kept it."""
    from test_gui_findings import dock

    killed = isolated_home / "models" / "runs" / "round-killed"
    (killed / "pairs").mkdir(parents=True)
    (killed / ".alive").write_bytes(b"")  # its lock file, no process holding it
    viewer = make_napari_viewer()
    dock(viewer, "Segment")
    assert not killed.exists()


def test_kept_edits_export_says_when_images_share_a_name(tmp_path, capsys):
    """Verification of session 39: two images of one file name were exported with their key in the name, which a
    folder session does not look for, and the export said only "2 of 2 kept masks written"."""
    from napari_unetv2.annotation.kept_edits import KeptEdits
    from napari_unetv2.cli import main

    store = KeptEdits()
    mask = np.ones((8, 8), np.uint8)
    store.keep("a" * 32, mask, {"image": "frame", "file": "frame.png"})
    store.keep("b" * 32, mask, {"image": "frame", "file": "frame.png"})
    assert main(["kept-edits", "export", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "images of one name (frame) were written with their key in the name" in out, out
    assert main(["kept-edits"]) == 0 and "frame.png (8x8" in capsys.readouterr().out
