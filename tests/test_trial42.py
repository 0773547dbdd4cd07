"""Session 42: what a reviewer a month later needs of every record — times that name one instant (their UTC offset),
compared as instants, never as text. Each test failed on the code before its change, but guards named as such."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_trial41 import _image, _mask  # (a random image and a mask of some rows, as session 41's tests make them)

from napari_unetv2.annotation.kept_edits import KeptEdit
from napari_unetv2.annotation.session import ACCEPTED, SKIPPED, merge_items
from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.corrections.correction_set import entries_by_image
from napari_unetv2.corrections.records import stored_when_by
from napari_unetv2.files.times import instant, shown

OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def test_a_correction_and_its_history_record_their_time_zone(tmp_path):
    """A correction's time was local time without its offset: read abroad, or in the autumn hour that happens twice,
    it named two instants."""
    corrections = CorrectionSet(tmp_path / "set")
    entry = corrections.add(_image(), _mask(slice(5, 20)), "frame.png", model_version="v1")
    assert OFFSET.match(entry.created), entry.created
    corrections.remove(entry.id, why="test")
    logged = [json.loads(line) for line in (tmp_path / "set" / "history" / "events.jsonl").read_text().splitlines()]
    assert logged and all(OFFSET.match(event["when"]) for event in logged), logged
    retired = json.loads(next((tmp_path / "set" / "history").glob("*/retired.json")).read_text())
    assert any(isinstance(value, str) and OFFSET.match(value) for value in retired.values()), retired


def test_two_windows_decisions_are_merged_by_instant_not_by_text():
    """Two windows on one session (a colleague's laptop set to another zone): the later decision was chosen by
    comparing the texts, so 09:30 UTC lost to 10:00 at UTC+1, half an hour earlier."""
    on_disk = {"a.png": {"status": ACCEPTED, "entry": "old", "at": "2026-03-01T10:00:00+01:00"}}
    ours = {"a.png": {"status": ACCEPTED, "entry": "new", "at": "2026-03-01T09:30:00+00:00"}}
    assert merge_items(on_disk, ours)["a.png"]["entry"] == "new"
    later_skip = {"b.png": {"status": SKIPPED, "entry": None, "at": "2026-03-01T09:30:00+00:00"}}
    earlier = {"b.png": {"status": SKIPPED, "entry": None, "at": "2026-03-01T10:00:00+01:00"}}
    assert merge_items(earlier, later_skip)["b.png"] is later_skip["b.png"]
    assert merge_items(later_skip, earlier)["b.png"] is later_skip["b.png"]


def test_kept_edits_and_corrections_compare_as_instants_old_records_as_local_time():
    """Kept edits wrote "YYYY-MM-DD HH:MM:SS" and corrections "YYYY-MM-DDTHH:MM:SS"; both are read as local time (guard:
    records written before this session), and a record with an offset is compared as the instant it names."""
    old_kept = KeptEdit("k", None, None, {"kept_at": "2026-03-01 10:00:00"})
    assert old_kept.newer_than("2026-03-01T10:00:00") and not old_kept.newer_than("2026-03-01T10:00:01")
    kept_abroad = KeptEdit("k", None, None, {"kept_at": "2026-03-01T10:00:00+01:00"})
    assert not kept_abroad.newer_than("2026-03-01T09:30:00+00:00")  # (text: "10:00" >= "09:30")
    assert kept_abroad.newer_than("2026-03-01T08:59:59+00:00")


def test_a_sets_entries_of_one_image_are_ordered_by_instant(tmp_path):
    """The latest correction of an image is the set's answer for it: ordered by text, an entry stored at 10:00 UTC+1
    came after one stored at 09:30 UTC, half an hour later."""
    corrections = CorrectionSet(tmp_path / "set")
    image = _image()
    first = corrections.add(image, _mask(slice(5, 20)), "frame.png", model_version="v1")
    second = corrections.add(image, _mask(slice(6, 21)), "frame.png", model_version="v1")
    for entry, when in ((first, "2026-03-01T10:00:00+01:00"), (second, "2026-03-01T09:30:00+00:00")):
        path = tmp_path / "set" / "provenance" / f"{entry.id}.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "created": when}))
    ordered = next(iter(entries_by_image(CorrectionSet(tmp_path / "set").entries()).values()))
    assert [entry.id for entry in ordered] == [first.id, second.id]


def test_times_are_shown_with_their_offset_and_unreadable_ones_are_unknown(monkeypatch):
    """Lines show a record's time in the reader's zone with its offset set apart (records written in Los Angeles read
    "05:03:23 -08:00" beside Berlin's "14:02:57 +01:00": verification of session 42); a hand-edited or missing time is
    unknown, never an error (records are data)."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert shown("2026-03-01T10:00:00+01:00") == "2026-03-01 10:00:00 +01:00"
        assert shown("2026-03-01T01:00:00-08:00") == "2026-03-01 10:00:00 +01:00"
        assert shown("2026-03-01T10:00:00") == "2026-03-01 10:00:00"
        assert shown("yesterday") == "yesterday" and shown(None) == "?"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert instant("yesterday") == instant(None) == float("-inf") < instant("2026-03-01T10:00:00")
    from napari_unetv2.corrections.records import Correction

    entry = Correction("x", "images/x.png", "masks/x.png", "x.png", "v1", "2026-03-01T09:00:00+00:00", 0, 0, None, 1,
                       1, annotator="alice")
    assert stored_when_by(entry) == f"stored {shown(entry.created)} by alice" and "+" in stored_when_by(entry)


def test_correct_and_retrain_shows_the_last_rounds_scores_after_a_restart(make_napari_viewer, small_checkpoint,
                                                                         isolated_home):
    """*Correct & retrain*'s "last round" line said "-" in every new napari, though the round's version JSON keeps
    its held-out scores and its decision (stop note 41's list)."""
    from test_gui_findings import dock

    from napari_unetv2.checkpoints import ModelStore
    from napari_unetv2.engine.finetune import record_metrics
    from napari_unetv2.storage import default_model_store_dir

    record_metrics(small_checkpoint, {"held_out_before": {"dice": 0.61, "n": 12}, "held_out_after": {"dice": 0.74, "n": 12},
                                      "adoption": {"adopt": True, "reason": "new version in use"}})
    store = ModelStore(default_model_store_dir())
    version = store.add(small_checkpoint).version
    line = dock(make_napari_viewer(), "Correct & retrain").scores.value
    assert version in line and "0.610 (parent) -> 0.740 on 12 held-out images" in line, line
    assert "round's decision: new version in use" in line, line


# ---- batch folders: which file exactly each mask is of ------------------------------------------------------------

def _frames(folder, sizes, seed=0):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(folder / f"IMG_{index:04d}.png")
    return folder


def _rows(out):
    import csv

    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def test_a_summary_row_names_the_files_folder_sha256_who_and_when(predictor, tmp_path, monkeypatch):
    """summary.csv named an image by its file name alone, with no time nor who ran it: two sites' IMG_0001.png, or a
    file edited since, could not be told from the one segmented (a reviewer's question, clinician trial of session
    42)."""
    import hashlib

    from napari_unetv2.inference.batch import predict_folder

    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "carol")
    site = _frames(tmp_path / "siteA", [(40, 50), (30, 40)])
    predict_folder(predictor, site, tmp_path / "out")
    for name, row in _rows(tmp_path / "out").items():
        assert row["input_sha256"] == hashlib.sha256((site / name).read_bytes()).hexdigest()
        assert row["input_folder"] == str(site.resolve()) and row["run_by"] == "carol"
        assert OFFSET.match(row["finished_at"]), row


def test_continue_refuses_masks_of_another_sites_images_of_the_same_names(predictor, tmp_path):
    """`predict siteB out --continue` after `predict siteA out`: "0 segmented, 2 already done", siteA's masks kept
    for siteB's images and summary.csv naming them (the trial's worst finding). Now refused, nothing written."""
    from napari_unetv2.inference.batch import predict_folder

    site_a = _frames(tmp_path / "siteA", [(40, 50), (30, 40)])
    site_b = _frames(tmp_path / "siteB", [(40, 50), (30, 40), (20, 30)], seed=1)
    out = tmp_path / "out"
    predict_folder(predictor, site_a, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(ValueError, match=r"Nothing was written: .* holds masks of other images.*"
                                         r"IMG_0000.png: its mask was made from .*siteA.IMG_0000.png"):
        predict_folder(predictor, site_b, out, resume=True)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert predict_folder(predictor, site_a, out, resume=True).count("skipped-done") == 2  # (the same images: carried on)


def test_continue_refuses_a_mask_whose_image_changed_since(predictor, tmp_path):
    """An image edited (flipped) after its mask was made: --continue kept the old mask as done (24,061 px from a fresh
    run's, in the trial)."""
    from PIL import Image

    from napari_unetv2.inference.batch import predict_folder

    site = _frames(tmp_path / "site", [(40, 50), (30, 40)])
    out = tmp_path / "out"
    predict_folder(predictor, site, out)
    edited = site / "IMG_0001.png"
    Image.fromarray(np.asarray(Image.open(edited))[:, ::-1]).save(edited)
    with pytest.raises(ValueError, match="IMG_0001.png: the file changed since its mask was made"):
        predict_folder(predictor, site, out, resume=True)
    (out / "IMG_0001.png").unlink()  # (as the message says: moved away, the image is segmented again)
    summary = predict_folder(predictor, site, out, resume=True)
    assert summary.count("done") == 1 and summary.count("skipped-done") == 1


def test_continue_over_a_summary_without_hashes_refuses_a_mask_of_another_size(predictor, tmp_path):
    """Rows written before the SHA-256 was recorded (or a mask with no row): a mask of another size than the image is
    another image's; one of the same size is kept as before (guard)."""
    from napari_unetv2.inference.batch import predict_folder
    from napari_unetv2.inference.summary import write_summary

    site_a = _frames(tmp_path / "siteA", [(40, 50), (30, 40)])
    site_b = _frames(tmp_path / "siteB", [(40, 50), (20, 30)], seed=1)
    out = tmp_path / "out"
    predict_folder(predictor, site_a, out)
    old_rows = [{k: v for k, v in row.items() if k not in ("input_sha256", "input_folder", "finished_at")}
                for row in _rows(out).values()]
    write_summary(out, old_rows)
    with pytest.raises(ValueError, match="IMG_0001.png: its mask is 40x30 pixels, the image 30x20"):
        predict_folder(predictor, site_b, out, resume=True)
    (out / "IMG_0001.png").unlink()
    summary = predict_folder(predictor, site_b, out, resume=True)  # (IMG_0000: same size, no hash: kept, as before)
    assert summary.count("done") == 1 and summary.count("skipped-done") == 1


# ---- a version in use whose files are gone ------------------------------------------------------------------------

def test_a_version_in_use_missing_from_the_store_is_said_not_replaced_silently(small_checkpoint, capsys,
                                                                               make_napari_viewer):
    """The version in use moved out of the store: `predict --checkpoint in-use` ran the bundled model without a word,
    `unetv2 models` dropped the version that summary.csv rows named, and the widgets' model line said the bundled
    model as if chosen (clinician trial of session 42)."""
    import shutil

    from test_gui_findings import dock

    from napari_unetv2.checkpoints import ModelStore
    from napari_unetv2.checkpoints.names import resolve_checkpoint
    from napari_unetv2.cli import main
    from napari_unetv2.storage import default_model_store_dir

    store = ModelStore(default_model_store_dir())
    version = store.add(small_checkpoint).version
    store.use(version)
    assert resolve_checkpoint("in-use") == store.path_of(version)  # (guard: there, it runs)
    shutil.move(store.root / "versions" / version, store.root.parent / "moved-away")
    assert store.missing_current == version and store.current is None
    with pytest.raises(FileNotFoundError, match=f"version in use, {version}, is missing from the model store"):
        resolve_checkpoint("in-use")
    frames = _frames(store.root.parent / "frames", [(40, 50)])
    assert main(["predict", str(frames), str(store.root.parent / "out"), "--checkpoint", "in-use"]) != 0
    assert f"version in use, {version}, is missing" in capsys.readouterr().err
    assert not (store.root.parent / "out").exists()
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert f"! {version}  the version in use, {version}, is missing from the model store" in listed, listed
    retrain = dock(make_napari_viewer(), "Correct & retrain")
    assert f"in place of version {version}" in retrain.models.label()
    assert f"the version in use, {version}, is missing from the model store" in retrain.status.value


# ---- corrections: how the model's mask was made, which folder the image came from ----------------------------------

def test_a_correction_records_the_settings_and_folder_of_the_mask_segment_made(make_napari_viewer, qtbot, tmp_path,
                                                                               isolated_home, capsys):
    """Segmented at threshold 0.2 with flip TTA and accepted unchanged: the correction recorded its model only, and
    the recorded model at its defaults gave a mask 35,344 pixels off; nor did it say which folder's IMG_0001.png it
    was (clinician trial of session 42)."""
    from test_gui_findings import dock, segment

    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.cli import main
    from napari_unetv2.files import write_png_atomic

    site = tmp_path / "siteA"
    site.mkdir()
    image, _, _ = load_sample("polyp")
    write_png_atomic(site / "IMG_0001.png", image[:256, :256])
    viewer = make_napari_viewer()
    seg, rt = dock(viewer, "Segment"), dock(viewer, "Correct & retrain")
    viewer.open(str(site / "IMG_0001.png"))
    seg.threshold.value, seg.tta.value = 0.2, True
    segment(qtbot, seg)
    entry = rt.accept_correction()
    assert entry is not None, rt.status.value
    assert entry.model_settings == "resize, threshold 0.2, flip TTA", entry
    assert entry.source == "IMG_0001.png" and entry.source_folder == str(site.resolve())
    stored = CorrectionSet(isolated_home / "corrections").entries()[0]
    assert (stored.model_settings, stored.source_folder) == (entry.model_settings, entry.source_folder)
    capsys.readouterr()
    assert main(["corrections", "list", "--csv"]) == 0
    listed = capsys.readouterr().out
    assert "resize, threshold 0.2, flip TTA" in listed and str(site.resolve()) in listed and stored.image_hash in listed


def test_a_sessions_manifest_says_what_a_purged_correction_was(tmp_path, monkeypatch):
    """A correction removed and then purged from the history: the session's manifest row read "not found in the set"
    with annotator, time and model blank, though the history's events recorded the purge (the same trial)."""
    import csv
    import io

    from napari_unetv2.annotation.session import AnnotationSession
    from napari_unetv2.corrections.history import purge
    from napari_unetv2.files import write_png_atomic

    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    images = tmp_path / "images"
    images.mkdir()
    write_png_atomic(images / "a.png", _image())
    corrections = CorrectionSet(tmp_path / "set")
    entry = corrections.add(_image(), _mask(slice(5, 20)), "a.png", model_version="v1", model_settings="resize, threshold 0.5")
    session = AnnotationSession(tmp_path / "session", images)
    session.accept(images / "a.png", _mask(slice(5, 20)), entry.id, corrections.root)
    corrections.remove(entry.id, why="test")
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    purge(corrections.root, next((corrections.root / "history").glob(f"{entry.id}*")).name)
    session.export(tmp_path / "out", corrections.root)
    row = next(csv.DictReader(io.StringIO((tmp_path / "out" / "manifest.csv").read_text())))
    assert row["correction"].startswith("deleted from the set's history") and row["correction"].endswith("by bob"), row
    assert (row["annotator"], row["stored"], row["model_version"]) == ("alice", entry.created, "v1"), row


def test_a_saved_checkpoint_records_when_and_models_shows_it(small_checkpoint, capsys):
    """A version's only date was its store folder's: restored from a backup with `cp -r` it was "added" after the
    corrections it trained on, and in another time zone before them (the same trial)."""
    from napari_unetv2.checkpoints import ModelStore, read_config
    from napari_unetv2.cli import main
    from napari_unetv2.storage import default_model_store_dir

    saved = read_config(small_checkpoint).training["saved_at"]
    assert OFFSET.match(saved), saved
    ModelStore(default_model_store_dir()).add(small_checkpoint)
    capsys.readouterr()
    assert main(["models"]) == 0
    assert f"made {shown(saved)}" in capsys.readouterr().out


def _polyp_segmented_at_0_3(make_napari_viewer, qtbot):
    """A viewer with the polyp sample segmented by *Segment* at threshold 0.3: (viewer, its mask layer)."""
    from test_gui_findings import dock, segment

    viewer = make_napari_viewer()
    viewer.open_sample("napari-unetv2", "polyp")
    seg = dock(viewer, "Segment")
    seg.threshold.value = 0.3
    segment(qtbot, seg)
    return viewer, next(layer for layer in viewer.layers if layer.name.endswith(" mask"))


# ---- napari's own "Save Selected Layer(s)" of a mask as .png ---------------------------------------------------------

def test_a_mask_saved_as_png_from_napari_is_written_with_its_record(make_napari_viewer, qtbot, tmp_path):
    """napari's File → Save Selected Layer(s) of a mask as .png wrote nothing ("No data written!"), and as .tif it
    carried no model or settings (clinician trial of session 42): the plugin's writer writes the 0/255 PNG and a record
    beside it, and never replaces someone's own JSON of that name."""

    from napari_unetv2._writer import MaskNotWritten
    from napari_unetv2.files import read_image
    from napari_unetv2.files.times import instant

    viewer, mask = _polyp_segmented_at_0_3(make_napari_viewer, qtbot)
    painted = np.asarray(mask.data).copy()
    painted[:10, :10] = 1 - painted[:10, :10]
    mask.data = painted
    viewer.layers.selection.active = mask
    written = viewer.layers.save(str(tmp_path / "frame_mask.png"), selected=True)
    assert sorted(Path(p).name for p in written) == ["frame_mask.json", "frame_mask.png"], written
    assert np.array_equal(read_image(tmp_path / "frame_mask.png"), painted.astype(np.uint8) * 255)
    record = json.loads((tmp_path / "frame_mask.json").read_text())
    assert record["model_version"] == mask.metadata["model_version"] and record["pixels_painted"] == 100
    assert record["model_settings"] == "resize, threshold 0.3" and instant(record["saved_at"]) > 0
    (tmp_path / "other.json").write_text('{"patient": "notes of my own"}')
    with pytest.raises(MaskNotWritten, match="is not a mask record of this plugin"):
        viewer.layers.save(str(tmp_path / "other.png"), selected=True)
    assert not (tmp_path / "other.png").exists() and "notes of my own" in (tmp_path / "other.json").read_text()
    stack = viewer.add_labels(np.zeros((2, 20, 30), np.uint8), name="stack mask")
    viewer.layers.selection.active = stack
    with pytest.raises(MaskNotWritten, match="a PNG holds one 2-D mask"):
        viewer.layers.save(str(tmp_path / "stack.png"), selected=True)
    assert not list(tmp_path.glob("stack*"))


# ---- cold review of session 42 ---------------------------------------------------------------------------------------

def test_file_sha256_reads_in_chunks_as_sha256sum_does(tmp_path, monkeypatch):
    """``hashlib.file_digest`` is Python 3.11's: on 3.10 (the README's floor) every batch run stopped at its first
    image. Chunked reading gives sha256sum's digest across chunk boundaries."""
    import hashlib

    from napari_unetv2.files import digest

    monkeypatch.delattr(hashlib, "file_digest", raising=False)  # (as on Python 3.10)
    data = np.random.default_rng(0).integers(0, 255, digest.CHUNK * 2 + 17, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    assert digest.file_sha256(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()


def test_continue_checks_masks_whose_probability_map_is_missing_and_masks_of_another_suffix(predictor, tmp_path):
    """Only finished images were checked: with --save-probabilities and a missing _prob.tif, siteB's run wrote its
    probability maps beside siteA's masks; and rows were looked up by the whole name, so siteA's IMG_0000.jpg mask was
    kept for siteB's IMG_0000.png of the same size (cold review of session 42)."""
    from PIL import Image

    from napari_unetv2.inference.batch import predict_folder

    site_a = _frames(tmp_path / "siteA", [(40, 50)])
    site_b = _frames(tmp_path / "siteB", [(40, 50)], seed=1)
    out = tmp_path / "out"
    predict_folder(predictor, site_a, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(ValueError, match="IMG_0000.png: its mask was made from"):
        predict_folder(predictor, site_b, out, resume=True, save_probabilities=True)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # (no _prob.tif beside siteA's mask)
    site_c = tmp_path / "siteC"
    site_c.mkdir()
    Image.open(site_a / "IMG_0000.png").convert("RGB").save(site_c / "IMG_0000.jpg")
    out_c = tmp_path / "out_c"
    predict_folder(predictor, site_c, out_c)
    with pytest.raises(ValueError, match="IMG_0000.png: its mask was made from IMG_0000.jpg"):
        predict_folder(predictor, site_a, out_c, resume=True)


def test_a_batch_over_a_folder_whose_name_is_not_utf8_writes_its_summary(predictor, tmp_path):
    """The input folder's path went into summary.csv as it was: a name that is not UTF-8 made the write fail, leaving
    masks without summary.csv and every later --continue failing alike (cold review of session 42)."""
    import os

    from napari_unetv2.inference.batch import predict_folder

    odd = tmp_path / os.fsdecode(b"site \xff")
    _frames(odd, [(40, 50)])
    out = tmp_path / "out"
    assert predict_folder(predictor, odd, out).count("done") == 1
    row = _rows(out)["IMG_0000.png"]
    assert row["input_folder"].endswith("site \\xff"), row
    assert predict_folder(predictor, odd, out, resume=True).count("skipped-done") == 1


def test_the_sha256_is_taken_as_the_file_is_read_and_a_file_changed_meanwhile_is_a_row(predictor, tmp_path):
    """The hash read the file again after its prediction, outside the per-file error handling: a file moved away
    meanwhile stopped the whole run. Now it is taken by the reader, and a file written to while it is read is that
    image's error row; the run goes on (cold review of session 42)."""
    from napari_unetv2.files import digest, read_image
    from napari_unetv2.inference.batch import predict_folder

    site = _frames(tmp_path / "site", [(40, 50), (30, 40)])

    def read_while_written(path):
        image = read_image(path)
        if path.name == "IMG_0000.png":
            with open(path, "ab") as fh:
                fh.write(b"\0")
        return image

    original = digest.DigestingReader.__init__

    def with_writer(self, read):
        original(self, read_while_written)

    import unittest.mock

    with unittest.mock.patch.object(digest.DigestingReader, "__init__", with_writer):
        summary = predict_folder(predictor, site, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert rows["IMG_0000.png"]["status"] == "error" and "changed while it was read" in rows["IMG_0000.png"]["note"]
    assert rows["IMG_0001.png"]["status"] == "done" and summary.count("done") == 1


def test_a_record_with_a_later_versions_key_or_a_wrong_typed_note_keeps_its_correction(tmp_path):
    """A record with a key this version does not know (written by a later install sharing the set) was dropped whole,
    and a hand-edited model_settings of the wrong type made the correction vanish from the list and from training;
    a record without settings is written without those keys, as the versions before them read it (cold review of
    session 42)."""
    corrections = CorrectionSet(tmp_path / "set")
    plain = corrections.add(_image(), _mask(slice(5, 20)), "a.png", model_version="v1")
    noted = corrections.add(_image(1), _mask(slice(6, 21)), "b.png", model_version="v1", model_settings="resize, threshold 0.5")
    plain_record = json.loads((tmp_path / "set" / "provenance" / f"{plain.id}.json").read_text())
    assert "model_settings" not in plain_record and "source_folder" not in plain_record
    path = tmp_path / "set" / "provenance" / f"{noted.id}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model_settings": ["resize"], "reviewed_by": "dana"}))
    entries = {entry.id: entry for entry in CorrectionSet(tmp_path / "set").entries()}
    assert set(entries) == {plain.id, noted.id} and entries[noted.id].model_settings is None


def test_a_manifest_row_of_a_purged_correction_keeps_its_settings_and_folder(tmp_path):
    """The purge's event kept the entry's annotator, time and model, not its settings and folder: blank in the
    manifest (cold review of session 42)."""
    import csv
    import io

    from napari_unetv2.annotation.session import AnnotationSession
    from napari_unetv2.corrections.history import purge
    from napari_unetv2.files import write_png_atomic

    images = tmp_path / "images"
    images.mkdir()
    write_png_atomic(images / "a.png", _image())
    corrections = CorrectionSet(tmp_path / "set")
    entry = corrections.add(_image(), _mask(slice(5, 20)), "a.png", model_version="v1", model_settings="tile 256, "
                            "threshold 0.3", source_folder=str(images))
    session = AnnotationSession(tmp_path / "session", images)
    session.accept(images / "a.png", _mask(slice(5, 20)), entry.id, corrections.root)
    corrections.remove(entry.id, why="test")
    purge(corrections.root, next((corrections.root / "history").glob(f"{entry.id}*")).name)
    session.export(tmp_path / "out", corrections.root)
    row = next(csv.DictReader(io.StringIO((tmp_path / "out" / "manifest.csv").read_text())))
    assert (row["model_settings"], row["source_folder"]) == ("tile 256, threshold 0.3", str(images)), row


def test_the_folder_recorded_with_an_image_is_the_one_its_name_is_in(tmp_path):
    """For an image opened through a symlink, the recorded folder was the target's while the name was the link's:
    together they named no file (cold review of session 42)."""
    from types import SimpleNamespace

    from napari_unetv2.widgets._layers import folder_of

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "x123.png").write_bytes(b"")
    (tmp_path / "siteA").mkdir()
    (tmp_path / "siteA" / "IMG_0001.png").symlink_to(tmp_path / "store" / "x123.png")
    layer = SimpleNamespace(source=SimpleNamespace(path=str(tmp_path / "siteA" / "IMG_0001.png")))
    assert folder_of(layer) == str((tmp_path / "siteA").resolve())


def test_edits_kept_across_napari_keep_the_settings_of_the_mask_they_were_painted_on(make_napari_viewer, qtbot,
                                                                                       isolated_home):
    """Segment's kept edits given back in a new napari started from the kept model mask with no settings: a correction
    of them recorded none, though the mask they were painted on was made at threshold 0.3 (cold review of session
    42)."""
    from test_gui_findings import dock, segment
    from test_kept_edits import _flip, _settle

    from napari_unetv2.widgets._kept_edits import painted_mask_keeper

    viewer, mask = _polyp_segmented_at_0_3(make_napari_viewer, qtbot)
    _flip(mask, slice(100, 140), slice(100, 140))
    _settle(viewer, qtbot)
    viewer.close()
    painted_mask_keeper(viewer).wait()
    again = make_napari_viewer()
    again.open_sample("napari-unetv2", "polyp")
    seg, rt = dock(again, "Segment"), dock(again, "Correct & retrain")  # (the next day: default threshold 0.5)
    segment(qtbot, seg)
    assert "painted on this image before" in seg.status.value.replace("\u200b", "")
    entry = rt.accept_correction()
    assert entry is not None, rt.status.value
    assert entry.model_settings == "resize, threshold 0.3", entry


# ---- verification of session 42 --------------------------------------------------------------------------------------

def test_batch_folder_says_the_whole_refusal_and_its_results_record_their_file(make_napari_viewer, qtbot, tmp_path,
                                                                               isolated_home):
    """The Batch folder widget cut the refusal at 300 characters: "...move those masks away to segment th...", the
    instruction and "Nothing was written" lost; and a correction accepted from a result it opened recorded neither the
    file's folder nor its suffix ("IMG_0001", its layer added from an array: verification of session 42)."""
    from test_gui_findings import dock

    deep = tmp_path / "clinic_data_2026" / "endoscopy_study" / "site_exports" / "november"
    site_a = _frames(deep / "siteA", [(40, 50), (30, 40), (20, 30), (24, 32)])
    site_b = _frames(deep / "siteB", [(40, 50), (30, 40), (20, 30), (24, 32)], seed=1)
    viewer = make_napari_viewer()
    batch, rt = dock(viewer, "Batch folder"), dock(viewer, "Correct & retrain")
    batch.open_results.value = True
    batch.input.value, batch.output.value = str(site_a), str(deep / "masks_out")
    assert batch.run() is not None
    qtbot.waitUntil(lambda: batch.worker is None and "segmented" in batch.status.value, timeout=120_000)
    qtbot.waitUntil(lambda: any(layer.name == "IMG_0000" for layer in viewer.layers), timeout=30_000)
    image = viewer.layers["IMG_0000"]
    viewer.layers.selection.active = image
    rt.image.value = image
    entry = rt.accept_correction()
    assert entry is not None, rt.status.value
    assert (entry.source, entry.source_folder) == ("IMG_0000.png", str(site_a.resolve())), entry
    batch.input.value = str(site_b)
    assert batch.run() is not None
    qtbot.waitUntil(lambda: batch.worker is None and batch.status.value.startswith("error"), timeout=120_000)
    status = batch.status.value.replace("\u200b", "")
    assert "Nothing was written" in status and "choose another output folder" in status, status
    assert "'continue' carries on" in status and "IMG_0003.png" in status and not status.endswith("..."), status


def test_corrections_list_is_in_the_order_stored_and_a_bundled_models_id_runs_it(tmp_path, capsys, isolated_home):
    """`corrections list` went by id, which carries the writer's local clock: Los Angeles' 05:01 before Berlin's
    13:59, the earlier. And `--checkpoint <the bundled model's id>`, the id corrections and summary.csv record, was
    refused as "neither a file nor a version in the model store" (verification of session 42)."""
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config
    from napari_unetv2.checkpoints.names import resolve_checkpoint
    from napari_unetv2.cli import main

    corrections = CorrectionSet(isolated_home / "corrections")
    los_angeles = corrections.add(_image(1), _mask(slice(6, 21)), "a-los-angeles.png", model_version="v1")
    berlin = corrections.add(_image(), _mask(slice(5, 20)), "b-berlin.png", model_version="v1")  # (the later id)
    for entry, when in ((los_angeles, "2026-03-01T05:01:00-08:00"), (berlin, "2026-03-01T13:59:00+01:00")):
        path = isolated_home / "corrections" / "provenance" / f"{entry.id}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "created": when}))
    capsys.readouterr()
    assert main(["corrections", "list", "--set", str(isolated_home / "corrections")]) == 0
    listed = capsys.readouterr().out
    assert listed.index("b-berlin.png") < listed.index("a-los-angeles.png"), listed  # 12:59 UTC before 13:01 UTC
    skin = bundled_checkpoint("skin")
    assert resolve_checkpoint(read_config(skin).version) == skin
