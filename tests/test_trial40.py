"""Session 40: stop 39's list worked through, and a clinician trial of two annotators at once on shared folders.
Each test failed on the code before its fix."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from safetensors.torch import load_file, save_file


def _without_version_metadata(path):
    """Re-save ``path``'s tensors with no version in the file's metadata (as files written before it was recorded,
    or by another tool, are): only the JSON names the version then."""
    save_file(load_file(str(path)), str(path), metadata={"format": "pt"})


def test_models_add_refuses_a_json_naming_another_models_version(small_checkpoint, tmp_path, capsys):
    """``unetv2 models add`` took the version id from the JSON: a JSON naming a version already stored (copied beside
    other weights, or edited) was "already in the store: nothing added", and ``--use`` put the *other* model in use."""
    from napari_unetv2.checkpoints import ModelStore, bundled_checkpoint, config_path_for, read_config
    from napari_unetv2.cli import main
    from napari_unetv2.storage import default_model_store_dir

    store = ModelStore(default_model_store_dir())
    skin = bundled_checkpoint("skin")
    stored = store.add(skin).version
    colleague = tmp_path / "colleague" / "best.safetensors"
    colleague.parent.mkdir()
    shutil.copy2(small_checkpoint, colleague)
    _without_version_metadata(colleague)
    about = json.loads(config_path_for(small_checkpoint).read_text())
    about["version"] = stored  # the JSON of another model
    config_path_for(colleague).write_text(json.dumps(about))
    assert read_config(colleague).version == stored

    with pytest.raises(ValueError, match="weights"):
        store.add(colleague)
    assert main(["models", "add", str(colleague), "--use"]) != 0
    err = capsys.readouterr().err
    assert stored in err and "nothing" in err
    assert store.current is None  # nothing put in use
    assert [c.version for c in store.versions()] == [stored]


def test_models_add_takes_a_checkpoint_without_version_metadata_whose_json_is_right(small_checkpoint, tmp_path):
    """The check is on the weights' content, so an honest file without the metadata still joins the store."""
    from napari_unetv2.checkpoints import ModelStore, read_config
    from napari_unetv2.storage import default_model_store_dir

    plain = tmp_path / "plain.safetensors"
    shutil.copy2(small_checkpoint, plain)
    shutil.copy2(small_checkpoint.with_suffix(".json"), plain.with_suffix(".json"))
    _without_version_metadata(plain)
    store = ModelStore(default_model_store_dir())
    assert store.add(plain).version == read_config(small_checkpoint).version
    assert [c.version for c in store.versions()] == [read_config(small_checkpoint).version]


SKIN_SAMPLE = "ph2_IMD002"


def test_a_session_asks_once_before_storing_an_image_the_hint_says_is_for_another_model(make_napari_viewer, qtbot,
                                                                                         tmp_path):
    """*Accept & next* stored a dermoscopy image segmented by the polyp model in the correction set with no word
    beyond the hint (said once for a run of such images): the polyp line's next round trained on it. Now the first
    press asks; a second stores it, and images like it are not asked about again in the session."""
    from test_session import open_session, wait_shown

    from napari_unetv2._sample_data import sample_data_dir
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.widgets._layers import ADVISED_MODEL

    images = tmp_path / "images"
    images.mkdir()
    for name in (SKIN_SAMPLE, "kvasir_cju0qkwl35piu0993l0dewei2"):
        shutil.copy2(sample_data_dir() / "images" / f"{name}.jpg", images / f"{name}.jpg")
    skin = iio.imread(sample_data_dir() / "images" / f"{SKIN_SAMPLE}.jpg")
    iio.imwrite(images / "zz_skin_again.png", np.ascontiguousarray(skin[::-1]))  # another image of the kind
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", images)
    corrections = CorrectionSet(Path(session.corrections.value))
    assert session.session.current.name == "kvasir_cju0qkwl35piu0993l0dewei2.jpg"  # (sorted: k before p)
    assert session.mask_layer.metadata[ADVISED_MODEL] is None
    assert session.accept_and_next() is not None, session.status.value  # a polyp frame: no question
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    assert session.session.current.name == f"{SKIN_SAMPLE}.jpg"
    assert session.accept_and_next() is None  # asked
    status = session.status.value.replace("\u200b", "")
    assert "skin" in status and "again" in status, status
    assert session.session.current.name == f"{SKIN_SAMPLE}.jpg" and len(corrections.entries()) == 1
    assert session.accept_and_next() is None  # a double click is no answer
    qtbot.wait(600)
    assert session.accept_and_next() is not None, session.status.value  # the second press stores it
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    assert len(corrections.entries()) == 2
    wait_shown(qtbot, session)
    assert session.session.current.name == "zz_skin_again.png"
    assert session.mask_layer.metadata[ADVISED_MODEL] == "skin"  # asked about, were it not answered
    assert session.accept_and_next() is not None, session.status.value  # answered once for such images
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    assert len(corrections.entries()) == 3


def test_correct_and_retrain_asks_before_storing_an_image_the_hint_says_is_for_another_model(make_napari_viewer,
                                                                                             qtbot):
    """Segment's result said "choose the bundled skin model"; *Accept* in *Correct & retrain* stored the polyp model's
    mask of the dermoscopy image at once, for the polyp line's rounds."""
    from test_gui_findings import dock, segment

    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    rt = dock(viewer, "Correct & retrain")
    viewer.open_sample("napari-unetv2", "skin")
    image = next(layer for layer in viewer.layers if SKIN_SAMPLE in layer.name or "IMD002" in layer.name)
    seg.image.value = image
    segment(qtbot, seg)
    assert "skin model" in seg.status.value.replace("\u200b", "")
    rt.image.value = image
    assert rt.accept_correction() is None
    status = rt.status.value.replace("\u200b", "")
    assert "skin" in status and "again" in status, status
    assert len(rt.correction_set.entries()) == 0
    qtbot.wait(600)  # (a press sooner is taken for a double click)
    assert rt.accept_correction() is not None, rt.status.value
    assert len(rt.correction_set.entries()) == 1


def stored_by_another_window(session, path, rows: slice, cols: slice):
    """A correction of ``path`` stored in the session's correction set as another window (or annotator) would:
    (the StoredCorrection, its mask)."""
    from napari_unetv2.annotation.accept import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_image

    image = read_image(path)
    theirs = np.zeros(image.shape[:2], np.uint8)
    theirs[rows, cols] = 1
    corrections = CorrectionSet(Path(session.corrections.value))
    return store_correction(corrections, image, theirs, source=path.name, model_version="someone else's"), theirs


def test_accept_and_next_does_not_replace_a_correction_another_annotator_stored_meanwhile(make_napari_viewer, qtbot,
                                                                                         tmp_path):
    """Two windows (or two workstations) on one folder: A accepted image 1 while B had it on screen; B's one press of
    *Accept & next* replaced A's correction for good ("replaced the earlier correction ..."), and A's *Previous* showed
    B's mask as "your accepted mask" (clinician trial of session 40). Now B's mask is not stored, the status names
    A's correction, and B's painting is still there to accept again (which then replaces it, on purpose)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path)
    first = session.session.current
    corrections = CorrectionSet(Path(session.corrections.value))
    stored, _ = stored_by_another_window(session, first, slice(10, 60), slice(10, 60))  # A
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    painted = np.asarray(session.mask_layer.data).copy()
    painted[100:140, 100:140] = 1
    session.mask_layer.data = painted  # B paints the model's mask shown before A's accept
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    assert [entry.id for entry in corrections.entries()] == [stored.entry.id]  # A's correction is still there
    status = session.status.value.replace("\u200b", "")
    assert "NOT stored" in status and stored.entry.id in status, status
    assert session.previous_image()
    qtbot.waitUntil(lambda: session.shown_path == first, timeout=30_000)
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, painted > 0)  # B's painting is back, not lost
    status = session.status.value.replace("\u200b", "")
    assert "edits you painted" in status and stored.entry.id in status, status
    assert session.accept_and_next() is not None, session.status.value  # accepted again: replaces A's, knowingly
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    entries = corrections.entries()
    assert len(entries) == 1 and entries[0].id != stored.entry.id


def test_the_next_image_read_ahead_shows_a_correction_another_annotator_stored_meanwhile(make_napari_viewer, qtbot,
                                                                                        tmp_path):
    """B's window had image 2 read ahead (the model's mask) when A accepted it: B then saw the model's empty mask with
    "paint what it missed", not A's correction, until Next and Previous (clinician trial of session 40)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path)
    second = session.session.path_at(1)
    qtbot.waitUntil(lambda: any(key[0] == str(second) for key in session._cache), timeout=60_000)  # read ahead
    stored, theirs = stored_by_another_window(session, second, slice(20, 90), slice(30, 120))  # A
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert session.next_image()
    qtbot.waitUntil(lambda: session.shown_path == second, timeout=60_000)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, theirs > 0)
    status = session.status.value.replace("\u200b", "")
    assert stored.entry.id in status, status


def test_continue_says_which_kept_results_this_model_made(tmp_path):
    """Two runs of different models into one folder, then ``--continue`` with one of them: "nothing was segmented
    with this model: every result was already there, made by model version(s) X", when half were its own."""
    from napari_unetv2.inference.batch import BatchSummary, account_for_kept

    summary = BatchSummary(tmp_path, rows=[{"file": name, "status": "skipped-done", "note": ""} for name in "abcd"])
    merged = [{"file": name, "status": "done", "model_version": version}
              for name, version in zip("abcd", ["theirs", "mine", "theirs", "mine"])]
    account_for_kept(summary, merged, "mine")
    said = summary.describe()
    assert "2 of them made by model version(s) theirs" in said and "the others by this model" in said, said
    account_for_kept(summary, [{**row, "model_version": "theirs"} for row in merged], "mine")
    assert "nothing was segmented with this model: every result was already there" in summary.describe()


def test_a_round_whose_version_another_window_put_in_use_first_says_it_is_in_use():
    """Two windows' rounds on the same corrections made the same version; the one that ended second said "stored as X,
    not put in use: the model in use changed to X while the round trained ('Use this version' to choose it)"."""
    from types import SimpleNamespace

    from napari_unetv2.widgets._rounds import adopt

    used = []
    models = SimpleNamespace(version_id=lambda: "cf0f1d5685b0", label=lambda version=None: f"fine-tuned {version}",
                             use=used.append)
    outcome = SimpleNamespace(config=SimpleNamespace(version="cf0f1d5685b0", parent="7eaf33cc890a"))
    said = adopt(models, outcome)
    assert said is not None and "in use already" in said and "not put in use" not in said, said
    assert used == []


def test_an_image_renamed_after_it_was_read_ahead_is_not_shown_from_memory(make_napari_viewer, qtbot, tmp_path):
    """A colleague renamed image 5 while it was read ahead: the session showed it "correct the mask" from memory, with
    no word that the file was gone, and accepted it under a name no longer in the folder (trial of session 40)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path)
    second = session.session.path_at(1)
    qtbot.waitUntil(lambda: any(key[0] == str(second) for key in session._cache), timeout=60_000)  # read ahead
    second.rename(second.with_name("renamed.png"))
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert session.next_image()
    qtbot.waitUntil(lambda: session.failed_path == second, timeout=60_000)
    status = session.status.value.replace("\u200b", "")
    assert f"{second.name} could not be read" in status, status
    assert session.accept_and_next() is None


def test_the_reviewed_count_and_the_corrections_list_follow_another_window(make_napari_viewer, qtbot, tmp_path):
    """Another window's acceptance was counted ("2 / 8 reviewed") only when the user moved, and *Correct & retrain*
    listed neither its new correction nor, after a removal there, the entry's absence (trial of session 40)."""
    from test_gui_findings import dock
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.annotation import AnnotationSession
    from napari_unetv2.corrections import CorrectionSet

    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path, beside="Correct & retrain")
    rt = dock(viewer, "Correct & retrain")
    assert session.where.value.startswith("0 / 2 reviewed")
    second = session.session.path_at(1)
    other_window = AnnotationSession(Path(session.session_folder.value))
    stored, mask = stored_by_another_window(session, second, slice(5, 50), slice(5, 50))
    other_window.accept(second, mask, stored.entry.id, Path(session.corrections.value))
    qtbot.waitUntil(lambda: session.where.value.startswith("1 / 2 reviewed"), timeout=10_000)
    qtbot.waitUntil(lambda: len(rt.entries.choices) == 1, timeout=10_000)
    CorrectionSet(Path(session.corrections.value)).remove(stored.entry.id)
    qtbot.waitUntil(lambda: len(rt.entries.choices) == 0, timeout=10_000)


def test_a_second_window_on_an_open_session_says_so(make_napari_viewer, qtbot, tmp_path):
    """Both windows opened on the same image and painted it: the one draft file held the later painter's edits only,
    unsaid (trial of session 40). The second window says the session is open elsewhere; a window gone says nothing."""
    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.widgets.session import SessionWidget

    images = two_frames(tmp_path / "images")
    first = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path, images=images)
    assert "open in another napari window" not in first.status.value.replace("\u200b", "")
    viewer = make_napari_viewer()
    second = SessionWidget(viewer)
    viewer.window.add_dock_widget(second, name="Annotate a folder")
    second.images.value, second.session_folder.value = str(images), str(tmp_path / "session")
    assert second.open_session() is not None, second.status.value
    qtbot.waitUntil(lambda: second.shown_path == second.session.current, timeout=60_000)
    assert "open in another napari window" in second.status.value.replace("\u200b", "")
    first.session.close_mark()  # (as when its dock closes)
    assert second.session.mark_open() == 0


def test_a_round_says_how_many_of_its_corrections_came_from_versions_its_store_does_not_hold():
    """A round at workstation B trained on "3 correction(s) of its line", two made with workstation A's versions, which
    B's store does not hold: unsaid (trial of session 40)."""
    from types import SimpleNamespace

    from napari_unetv2.widgets._rounds import trained_on

    models = SimpleNamespace(lines=lambda: SimpleNamespace(parents={"1f0c5ac02cbc": None, "423cfa096546": None}))
    ours = [SimpleNamespace(model_version=v) for v in ("cf0f1d5685b0", "f74a7b36657d", "1f0c5ac02cbc", "given mask")]
    said = trained_on(models, ours, [])
    assert "trained on 4 correction(s) of its line (2 of them made with model versions this store does not hold" in said
    assert trained_on(models, ours[2:], []) == "trained on 2 correction(s) of its line"


def test_segment_stops_at_the_next_tile_when_napari_quits(make_napari_viewer, qtbot):
    """napari's Quit asks running workers to quit (``abort_requested``) and waits for them: Segment looked at Cancel
    only and went on to the last tile of a large image (stop note 39)."""
    from test_gui_findings import wait

    viewer = make_napari_viewer()
    _, seg = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    image = viewer.add_image(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8), rgb=True)
    seg.image.value, seg.mode.value, seg.tile_size.value, seg.attention.value = image, "tile", 128, False
    steps = []
    seg._signals.advanced.connect(lambda done, total, text: steps.append((done, total)))
    worker = seg.run()
    assert worker is not None, seg.status.value
    qtbot.waitUntil(lambda: any(done >= 2 for done, _ in steps), timeout=60_000)  # a first tile done
    worker.quit()  # what napari's Quit does to each running worker
    wait(qtbot, worker, timeout=60_000)
    tiles = max(total for _, total in steps) - 2
    assert tiles > 16 and max(done for done, _ in steps) - 1 < tiles  # stopped before its last tile


def test_the_sessions_read_ahead_stops_when_napari_quits(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The folder session's read-ahead passed no stop check to the model: napari's Quit waited for it (a large image in
    tile mode, to its last tile). Now it stops when its worker is asked to quit, and nothing is shown of it."""
    import time

    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.inference import PredictionCancelled, Predictor

    real, waited = Predictor.predict, []

    def slow_on_the_second(self, image, *args, should_stop=None, **kwargs):
        if image.shape[:2] == (160, 200):  # the first frame: as usual
            return real(self, image, *args, should_stop=should_stop, **kwargs)
        start = time.monotonic()
        while time.monotonic() - start < 60:  # a long image, its tiles checking should_stop
            if should_stop is not None and should_stop():
                waited.append(time.monotonic() - start)
                raise PredictionCancelled()
            time.sleep(0.01)
        return real(self, image, *args, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(Predictor, "predict", slow_on_the_second)
    images = two_frames(tmp_path / "images")
    iio.imwrite(images / "b.png", np.ascontiguousarray(iio.imread(images / "b.png")[:, :120]))  # another size
    viewer = make_napari_viewer()
    session = open_session_on_two_frames(viewer, qtbot, tmp_path, images=images)
    second = session.session.path_at(1)
    qtbot.waitUntil(lambda: any(key[0] == str(second) for key in session._loading), timeout=30_000)
    worker = next(w for key, w in session._loading.items() if key[0] == str(second))
    worker.quit()  # what napari's Quit does to each running worker
    qtbot.waitUntil(lambda: bool(waited), timeout=10_000)
    qtbot.waitUntil(lambda: not session._loading, timeout=10_000)
    assert not any(key[0] == str(second) for key in session._cache)


def test_a_draft_of_another_open_window_is_neither_shown_nor_dropped_here(tmp_path):
    """B's refused mask, kept as its draft, was shown in A's window as A's own edits "from before napari closed", and
    A's leaving them deleted it: B's painting was lost (verification of session 40). A window gone leaves its draft to
    whoever resumes."""
    from test_trial32 import two_frames

    from napari_unetv2.annotation import AnnotationSession

    images = two_frames(tmp_path / "images")
    a, b = (AnnotationSession(tmp_path / "session", images) for _ in range(2))
    a.mark_open(), b.mark_open()
    first = a.images[0]
    painted = np.zeros((160, 200), np.uint8)
    painted[10:40, 10:40] = 1
    b.keep_draft(first, painted)
    assert a.draft(first, (160, 200)) is None and a.draft_of_another_window(first)
    a.drop_draft(first)  # A accepts the image, or leaves its own edits: B's draft stays
    assert np.array_equal(b.draft(first, (160, 200)), painted)
    b.close_mark()  # B's window closed
    assert np.array_equal(a.draft(first, (160, 200)), painted)  # resumed by whoever opens it
    a.drop_draft(first)
    assert a.draft(first, (160, 200)) is None and not list((tmp_path / "session" / "drafts").iterdir())


def test_a_window_shows_the_model_mask_not_another_windows_draft_and_says_so(make_napari_viewer, qtbot, tmp_path):
    from test_trial32 import open_session_on_two_frames, two_frames

    from napari_unetv2.annotation import AnnotationSession

    images = two_frames(tmp_path / "images")
    other = AnnotationSession(tmp_path / "session", images)
    other.mark_open()
    painted = np.zeros((160, 200), np.uint8)
    painted[10:40, 10:40] = 1
    other.keep_draft(other.images[0], painted)
    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path, images=images)
    assert not np.array_equal(np.asarray(session.mask_layer.data) > 0, painted > 0)
    status = session.status.value.replace("\u200b", "")
    assert "another napari window on this session has edits of this image" in status, status
    other.close_mark()


def test_a_shard_that_gets_none_of_the_folder_says_so(tmp_path, capsys):
    """``predict --shard 0/3`` on 8 images segmented none, exit 0, and said only "0 segmented" (verification of session
    40): shares go by a hash of each file name, so a shard of a small folder may get none."""
    from napari_unetv2.cli import main
    from napari_unetv2.inference.shards import in_shard

    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "only.png", np.full((32, 32, 3), 120, np.uint8))
    empty = next(i for i in range(2) if not in_shard("only.png", (i, 2)))
    assert main(["predict", str(folder), str(tmp_path / "out"), "--shard", f"{empty}/2"]) == 0
    said = capsys.readouterr().out
    assert f"none of the folder's 1 file(s) falls to shard {empty}/2" in said, said


def test_an_accepted_image_whose_correction_another_window_replaced_says_so(make_napari_viewer, qtbot, tmp_path):
    """After B knowingly replaced A's correction, A's Previous showed B's mask as "your accepted mask", unsaid."""
    from test_trial32 import open_session_on_two_frames, paint_and_accept

    from napari_unetv2.annotation.accept import store_correction
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.files import read_image
    from napari_unetv2.widgets.session import ACCEPT_AFTER_S

    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path)
    first = session.session.current
    paint_and_accept(session, qtbot, 20)
    theirs = np.zeros((160, 200), np.uint8)
    theirs[60:120, 60:120] = 1
    store_correction(CorrectionSet(Path(session.corrections.value)), read_image(first), theirs, source=first.name)
    qtbot.wait(int(ACCEPT_AFTER_S * 1000) + 50)
    assert session.previous_image()
    qtbot.waitUntil(lambda: session.shown_path == first, timeout=30_000)
    assert np.array_equal(np.asarray(session.mask_layer.data) > 0, theirs > 0)
    status = session.status.value.replace("\u200b", "")
    assert "take the correction that replaced theirs" in status, status


def test_a_failed_open_keeps_the_open_sessions_mark(make_napari_viewer, qtbot, tmp_path):
    """Open on a folder that is refused closed the open session's mark first: its drafts became anyone's (cold review of
    session 40)."""
    from test_trial32 import open_session_on_two_frames

    from napari_unetv2.annotation.session import OPEN_MARK

    session = open_session_on_two_frames(make_napari_viewer(), qtbot, tmp_path)
    marks = sorted((tmp_path / "session").glob(f"{OPEN_MARK}*"))
    assert len(marks) == 1
    (tmp_path / "empty").mkdir()
    session.images.value, session.session_folder.value = str(tmp_path / "empty"), str(tmp_path / "other")
    assert session.open_session() is None  # refused: no images
    assert sorted((tmp_path / "session").glob(f"{OPEN_MARK}*")) == marks and session.session.window_mark == marks[0].name
