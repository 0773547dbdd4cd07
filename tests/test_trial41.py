"""Session 41: a correction set that answers for its work — who stored each correction, and a history of those that
left it (replaced by a later correction of the image, or removed) instead of their deletion. Each test failed on the
code before its change, but one guard named as such."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_unetv2.annotation import WouldReplaceCorrection, store_correction
from napari_unetv2.corrections import CorrectionSet


def _image(seed=0, shape=(40, 50)):
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


def _mask(rows, shape=(40, 50)):
    mask = np.zeros(shape, np.uint8)
    mask[rows] = 1
    return mask


def _stored_by(monkeypatch, who, corrections, image, mask, source="frame.png", **how):
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", who)
    return store_correction(corrections, image, mask, source, model_version="v1", predicted_mask=np.zeros_like(mask),
                            **how)


def test_a_correction_records_who_stored_it_and_a_refusal_names_them(tmp_path, monkeypatch):
    """Two annotators on one set could not tell their corrections apart, and the refusal to replace a colleague's
    correction said when it was stored, not by whom."""
    corrections = CorrectionSet(tmp_path / "set")
    image = _image()
    alice = _stored_by(monkeypatch, "alice", corrections, image, _mask(slice(5, 20))).entry
    assert alice.annotator == "alice"
    assert [entry.annotator for entry in CorrectionSet(tmp_path / "set").entries()] == ["alice"]  # (on disk)
    with pytest.raises(WouldReplaceCorrection, match="by alice"):
        _stored_by(monkeypatch, "bob", corrections, image, _mask(slice(10, 30)), keep_edited=True,
                   accepted_from_layer=set())
    monkeypatch.delenv("NAPARI_UNETV2_ANNOTATOR")
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "carol")  # without the variable: the login name
    other = store_correction(corrections, _image(1), _mask(slice(0, 3)), "other.png").entry
    assert other.annotator == "carol"


def test_a_replaced_correction_is_kept_in_the_history_with_who_and_why(tmp_path, monkeypatch):
    """A colleague's correction replaced by a second annotator's was deleted for good (session 40's two annotators):
    now it moves, files and record, to the set's history/, which training and evaluation never read."""
    from napari_unetv2.corrections.history import retired_entries
    from napari_unetv2.engine.pairs import find_pairs

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image, first_mask = _image(), _mask(slice(5, 20))
    alice = _stored_by(monkeypatch, "alice", corrections, image, first_mask).entry
    bob = _stored_by(monkeypatch, "bob", corrections, image, _mask(slice(10, 30)))
    assert bob.replaced == [alice.id] and [e.id for e in corrections.entries()] == [bob.entry.id]
    [kept] = retired_entries(root)
    assert kept.name == alice.id and kept.entry.annotator == "alice" and kept.by == "bob"
    assert kept.why == f"replaced by {bob.entry.id}" and kept.missing == ()
    from napari_unetv2.files import read_mask

    assert np.array_equal(read_mask(root / "history" / alice.id / alice.mask_file) > 0, first_mask > 0)
    assert not (root / alice.mask_file).exists() and not (root / alice.image_file).exists()
    assert len(corrections.pairs()) == 1
    assert [pair.mask.name for pair in find_pairs(root).pairs] == [Path(bob.entry.mask_file).name]


def test_restore_brings_a_removed_correction_back_but_never_beside_a_current_one(tmp_path, monkeypatch):
    from napari_unetv2.corrections.history import restore, retired_entries

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image = _image()
    alice = _stored_by(monkeypatch, "alice", corrections, image, _mask(slice(5, 20))).entry
    bob = _stored_by(monkeypatch, "bob", corrections, image, _mask(slice(10, 30))).entry
    with pytest.raises(ValueError, match=f"same image now \\({bob.id}\\)"):
        restore(corrections, alice.id)  # one image keeps one correction in the set
    assert [e.id for e in corrections.entries()] == [bob.id] and len(retired_entries(root)) == 1
    corrections.remove(bob.id)
    assert corrections.entries() == [] and {item.why for item in retired_entries(root)} == {
        "removed", f"replaced by {bob.id}"}
    back = restore(corrections, alice.id)
    [entry] = CorrectionSet(root).entries()
    assert entry.id == back.id == alice.id and entry.annotator == "alice"
    assert [item.name for item in retired_entries(root)] == [bob.id]
    assert not (root / "history" / alice.id).exists()
    with pytest.raises(ValueError, match="no entry"):
        restore(corrections, alice.id)


def test_an_id_in_the_history_is_not_given_to_a_new_entry(tmp_path, monkeypatch):
    """An id is free in the set once its entry left it: a new correction of the same name in the same second took it
    (cold review of session 41), and a restore, or a round's list of ids trained on, then named two entries."""
    from napari_unetv2.corrections import correction_set
    from napari_unetv2.corrections.history import restore, retired_entries

    monkeypatch.setattr(correction_set.time, "strftime", lambda fmt, *args: "20260101-120000")
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    first = corrections.add(_image(0), _mask(slice(0, 5)), source="frame")
    corrections.remove(first.id)
    second = corrections.add(_image(1), _mask(slice(5, 9)), source="frame")
    assert second.id != first.id
    corrections.remove(second.id)
    assert sorted(item.name for item in retired_entries(root)) == sorted([first.id, second.id])
    assert all(item.missing == () for item in retired_entries(root))
    assert restore(corrections, first.id).id == first.id  # (a different image: restored beside nothing)
    corrections.remove(first.id)  # out again: its history name is free again
    assert sorted(item.name for item in retired_entries(root)) == sorted([first.id, second.id])


def test_purge_deletes_only_a_history_entry(tmp_path, monkeypatch):
    from napari_unetv2.corrections.history import purge, retired_entries

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = corrections.add(_image(), _mask(slice(0, 5)), source="frame")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.png").write_bytes(b"x")
    corrections.remove(entry.id)
    (root / "history" / "link").symlink_to(outside, target_is_directory=True)
    for name in ("..", "../outside", "link", f"{entry.id}/..", ""):
        with pytest.raises(ValueError):
            purge(root, name)
    assert (outside / "precious.png").is_file() and len(retired_entries(root)) == 1
    with pytest.raises(ValueError):  # a current entry is no history entry
        other = corrections.add(_image(2), _mask(slice(0, 5)), source="other")
        purge(root, other.id)
    assert purge(root, entry.id) == "frame"
    assert retired_entries(root) == [] and not (root / "history" / entry.id).exists()
    assert [e.source for e in corrections.entries()] == ["other"]


def test_a_move_that_fails_midway_leaves_the_entry_in_the_set(tmp_path, monkeypatch):
    from napari_unetv2.corrections import history

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = corrections.add(_image(), _mask(slice(0, 5)), source="frame")
    replace = os.replace
    calls = []

    def full_disk_on_the_second_file(source, target):
        calls.append(source)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(history.os, "replace", full_disk_on_the_second_file)
    with pytest.raises(OSError, match="No space"):
        corrections.remove(entry.id)
    monkeypatch.undo()
    assert [e.id for e in CorrectionSet(root).entries()] == [entry.id]
    assert (root / entry.image_file).is_file() and (root / entry.mask_file).is_file()
    assert history.retired_entries(root) == [] and not list((root / "history").iterdir())
    assert not list((root / "provenance").glob("*.claim"))


def test_a_remove_under_way_in_another_window_is_not_done_twice(tmp_path):
    """Two windows removing one entry at once: the second saw its JSON still there and moved files the first was
    moving (two history records, one without files). A live claim refuses it; a claim left by a killed process (old)
    does not stop a remove."""
    from napari_unetv2.corrections.history import retired_entries

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = corrections.add(_image(), _mask(slice(0, 5)), source="frame")
    claim = root / "provenance" / f"{entry.id}.claim"
    claim.touch()
    with pytest.raises(ValueError, match="another window"):
        corrections.remove(entry.id)
    assert corrections.holds(entry.id) and retired_entries(root) == []
    old = time.time() - 3600
    os.utime(claim, (old, old))
    corrections.remove(entry.id)
    assert not corrections.holds(entry.id) and len(retired_entries(root)) == 1


def test_unetv2_corrections_lists_who_stored_what_and_the_history(tmp_path, monkeypatch, capsys, isolated_home):
    from napari_unetv2.cli import main

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image = _image()
    alice = _stored_by(monkeypatch, "alice", corrections, image, _mask(slice(5, 20))).entry
    bob = _stored_by(monkeypatch, "bob", corrections, image, _mask(slice(10, 30))).entry
    _stored_by(monkeypatch, "alice", corrections, _image(3), _mask(slice(0, 2)), source="b.png")
    assert main(["corrections", "--set", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{bob.id}  frame.png  stored" in out and "by bob; model v1; 1000 px changed" in out
    assert "2 correction(s) (1 by alice, 1 by bob); 1 in the history" in out
    assert main(["corrections", "history", "--set", str(root), "--csv"]) == 0
    import csv
    import io

    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["name"], row["annotator"], row["left_by"], row["why"]) == (alice.id, "alice", "bob",
                                                                          f"replaced by {bob.id}")
    assert main(["corrections", "restore", alice.id, "--set", str(root)]) == 2  # bob's is in the set
    assert "same image now" in capsys.readouterr().err
    assert main(["corrections", "--set", str(tmp_path)]) == 2  # not a set
    assert "not a correction set" in capsys.readouterr().err


def test_remove_selected_keeps_the_corrections_in_the_history(make_napari_viewer, isolated_home, monkeypatch):
    """*Correct & retrain*'s Remove selected deleted the image, the mask and the record for good."""
    from test_gui_findings import dock

    from napari_unetv2.cli import main
    from napari_unetv2.corrections.history import retired_entries

    root = isolated_home / "corrections"
    corrections = CorrectionSet(root)
    entry = _stored_by(monkeypatch, "alice", corrections, _image(), _mask(slice(5, 20))).entry
    rt = dock(make_napari_viewer(), "Correct & retrain")
    rt.folder.value = str(root)
    rt.refresh_entries()
    assert "by alice" in rt._entry_details[entry.id]
    rt.entries.value = [entry.id]
    assert rt.remove_selected() == []
    assert "history" in rt.status.value.replace("\u200b", "")
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    assert rt.remove_selected() == [entry.id]
    assert "kept in its history" in rt.status.value.replace("\u200b", "")
    [kept] = retired_entries(root)
    assert (kept.name, kept.by, kept.why) == (entry.id, "bob", "removed")
    assert main(["corrections", "restore", entry.id, "--set", str(root)]) == 0
    rt.refresh_entries()
    assert list(rt.entries.choices) == [entry.id]


# ---- the coordinator's trial of session 41 ---------------------------------------------------------------------------
def test_a_removed_correction_accepted_again_unchanged_comes_back_with_its_record(tmp_path, monkeypatch):
    """Trial of session 41: the folder session's "Accept again to store it" after a correction was removed stored a new
    entry with model version "accepted earlier", 0 pixels changed and a prospective Dice of 1.000 (a made-up version
    in the scores, and an entry of unknown line that trained the skin model). The entry comes back from the history."""
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image, model_mask, corrected = _image(), _mask(slice(0, 10)), _mask(slice(5, 20))
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    first = store_correction(corrections, image, corrected, "frame.png", model_version="v1",
                             predicted_mask=model_mask, seconds_spent=8.0).entry
    corrections.remove(first.id)
    again = store_correction(corrections, image, corrected, "frame.png", model_version="accepted earlier",
                             predicted_mask=corrected, seconds_spent=1.4, revisit=True)
    assert again.restored and "restored" in again.describe()
    [entry] = CorrectionSet(root).entries()
    assert entry == first  # the record as it was: v1, 750 px changed from the model's mask, its score, 8 s


def test_a_removed_correction_edited_and_accepted_again_keeps_its_model_and_baseline(tmp_path, monkeypatch):
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image, model_mask, corrected = _image(), _mask(slice(0, 10)), _mask(slice(5, 20))
    first = store_correction(corrections, image, corrected, "frame.png", model_version="v1",
                             predicted_mask=model_mask, seconds_spent=8.0).entry
    corrections.remove(first.id)
    better = _mask(slice(5, 22))
    again = store_correction(corrections, image, better, "frame.png", model_version="accepted earlier",
                             predicted_mask=corrected, seconds_spent=2.0, revisit=True)
    entry = again.entry
    assert not again.restored and entry.model_version == "v1"
    assert entry.pixels_changed == int(np.count_nonzero((better > 0) != (model_mask > 0)))  # from the model's mask
    assert entry.seconds_spent == 2.0  # this visit's (the first visit's 8 s are in its record, in the history)
    assert entry.prospective_dice is not None and entry.prospective_dice < 1.0


def test_a_revisited_image_without_any_record_is_no_models_correction(tmp_path):
    corrections = CorrectionSet(tmp_path / "set")
    entry = store_correction(corrections, _image(), _mask(slice(5, 20)), "frame.png", model_version="accepted earlier",
                             predicted_mask=_mask(slice(5, 20)), revisit=True).entry
    assert entry.model_version == "" and entry.prospective_dice is None


def test_a_second_annotators_revisit_counts_pixels_from_the_models_mask(tmp_path, monkeypatch):
    """Trial of session 41: Bob's touch-up of Alice's correction recorded 1,766 pixels changed (from her mask) beside the
    model version and Dice of the model's mask, 13,171 pixels away."""
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    image = _image()
    alice = _stored_by(monkeypatch, "alice", corrections, image, _mask(slice(5, 20)), seconds_spent=8.8).entry
    assert alice.model_version == "v1"
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    touched = _mask(slice(5, 24))
    bob = store_correction(corrections, image, touched, "frame.png", model_version="accepted earlier",
                           predicted_mask=_mask(slice(5, 20)), seconds_spent=6.7, revisit=True).entry
    assert bob.model_version == "v1" and bob.annotator == "bob"
    assert bob.pixels_changed == int(np.count_nonzero(touched > 0))  # the model's mask here (_stored_by) is empty
    assert bob.pixels_changed != int(np.count_nonzero((touched > 0) != (_mask(slice(5, 20)) > 0)))
    assert bob.seconds_spent == pytest.approx(6.7)  # his own time; hers is in her record, in the history


def test_a_correction_sets_tested_masks_are_not_reported_as_skipped_files(tmp_path):
    """Trial of session 41: `unetv2 evaluate --data <set>` said "6 usable pairs, 6 files skipped", each a model mask of
    tested/ ("duplicate name"): read as six corrections dropped."""
    from napari_unetv2.engine.pairs import find_pairs

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = store_correction(corrections, _image(), _mask(slice(5, 20)), "frame.png", model_version="v1",
                             predicted_mask=_mask(slice(0, 10))).entry
    assert entry.tested_mask_file and (root / entry.tested_mask_file).is_file()
    report = find_pairs(root)
    assert len(report.pairs) == 1 and report.skipped == []


def test_a_folder_sessions_correction_set_is_the_one_correct_and_retrain_shows(make_napari_viewer, qtbot, tmp_path,
                                                                                isolated_home):
    """Trial of session 41: the session stored into the set chosen in its dock while *Correct & retrain*, open beside
    it, listed (and would retrain on and remove from) the default set."""
    from test_gui_findings import dock
    from test_session import crops_folder, wait_shown

    from napari_unetv2.widgets.session import SessionWidget

    folder = crops_folder(tmp_path / "data", n=2)
    viewer = make_napari_viewer()
    rt = dock(viewer, "Correct & retrain")
    assert Path(rt.folder.value) == isolated_home / "corrections"
    session = SessionWidget(viewer)
    viewer.window.add_dock_widget(session, name="Annotate a folder")
    week = tmp_path / "week" / "corrections"
    session.corrections.value = str(week)  # a new folder: shared once it is a set (its first correction)
    assert not week.exists() and Path(rt.folder.value) == isolated_home / "corrections"
    session.images.value = str(folder / "images")
    session.session_folder.value = str(tmp_path / "session")
    assert session.open_session() is not None, session.status.value
    wait_shown(qtbot, session)
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    qtbot.waitUntil(lambda: len(rt.entries.choices) == 1, timeout=3_000)  # (not the 5 s beat)
    assert Path(rt.folder.value) == week
    assert list(rt.entries.choices) == [entry.id for entry in CorrectionSet(week).entries()]


def test_a_correction_set_path_typed_letter_by_letter_makes_no_folders(make_napari_viewer, qtbot, tmp_path,
                                                                       isolated_home):
    """Verification of session 41: typing a path into a correction set field made a correction set (images/, masks/,
    provenance/) of every prefix that did not exist, the parent folder included."""
    from test_gui_findings import dock

    viewer = make_napari_viewer(show=True)  # (a window that is shown takes the keyboard's focus)
    rt = dock(viewer, "Correct & retrain")
    session = dock(viewer, "Annotate a folder")
    viewer.window._qt_window.activateWindow()
    for field in (session.corrections, rt.folder):  # (leaving a field ends its typing: the set's field last)
        line = field.line_edit.native
        line.setFocus()
        qtbot.waitUntil(line.hasFocus, timeout=3000)
        line.clear()
        qtbot.keyClicks(line, str(tmp_path / "typed" / "week"))
        assert not (tmp_path / "typed").exists(), sorted(p.name for p in tmp_path.rglob("*"))
    qtbot.keyClick(rt.folder.line_edit.native, Qt.Key.Key_Return)  # typing ends: the set is made, remembered, shared
    assert (tmp_path / "typed" / "week" / "provenance").is_dir() and not (tmp_path / "typed" / "wee").exists()
    assert not (tmp_path / "typed" / "provenance").exists()
    assert Path(str(session.corrections.value)) == tmp_path / "typed" / "week"


def test_correct_and_retrain_never_lists_another_set_than_its_own(make_napari_viewer, isolated_home, tmp_path):
    """Trial of session 41: opened with the set used last in its field, the list showed the default set's entries
    (another patient's) until the 5 s beat read the right one."""
    from test_gui_findings import dock

    from napari_unetv2.remembered import remember

    CorrectionSet(isolated_home / "corrections").add(_image(1), _mask(slice(0, 5)), source="OTHER-PATIENT")
    week = CorrectionSet(tmp_path / "week")
    ours = week.add(_image(2), _mask(slice(0, 5)), source="ours")
    remember(corrections=str(week.root))
    rt = dock(make_napari_viewer(), "Correct & retrain")
    assert Path(rt.folder.value) == week.root
    assert list(rt.entries.choices) == [ours.id]


def test_a_session_accepting_again_an_image_whose_correction_was_removed_restores_it(make_napari_viewer, qtbot,
                                                                                    tmp_path, isolated_home):
    """Trial of session 41, end to end: accepted, removed in *Correct & retrain*, accepted again unchanged in the
    session ("Accept again to store it"): the entry came back as a new one of model "accepted earlier", 0 pixels
    changed, Dice 1.000. Now the entry itself comes back from the history."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    from napari_unetv2.corrections.prospective import version_scores

    folder = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    session.corrections.value = str(isolated_home / "corrections")
    layer = session.mask_layer
    painted = np.asarray(layer.data).copy()
    painted[10:60, 10:60] = 1 - painted[10:60, 10:60]
    layer.data = painted
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    rt = dock(viewer, "Correct & retrain")
    [first] = rt.correction_set.entries()
    assert first.pixels_changed > 0 and first.model_version not in ("", "accepted earlier")
    rt.entries.value = [first.id]
    assert rt.remove_selected(confirmed=True) == [first.id]
    assert session.previous_image()
    wait_shown(qtbot, session)
    assert "its correction was taken out" in session.status.value.replace("\u200b", "")
    # and beside the count, where it stays while other images are shown (it was said once, then replaced)
    assert "[1 accepted, no longer in the correction set]" in session.where.value
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    qtbot.waitUntil(lambda: "no longer in the correction set" not in session.where.value, timeout=5_000)
    [back] = CorrectionSet(isolated_home / "corrections").entries()
    assert back == first
    assert "accepted earlier" not in version_scores(CorrectionSet(isolated_home / "corrections"))


def test_an_export_carries_a_manifest_of_every_image(tmp_path, monkeypatch):
    """Trial of session 41: the export was bare <stem>.png files; what was skipped, empty or removed from the correction
    set, and whose correction from which model each mask is, was said once on screen and nowhere in the folder."""
    import csv

    from test_session import crops_folder

    from napari_unetv2.annotation.session import AnnotationSession

    folder = crops_folder(tmp_path / "data", n=4)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    corrections = CorrectionSet(tmp_path / "set")
    from napari_unetv2.files import read_image

    a, b, c, d = session.images
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    masks = {}
    for path, rows in ((a, slice(0, 40)), (b, slice(0, 0)), (d, slice(10, 20))):
        masks[path] = _mask(rows, (256, 256))
        entry = store_correction(corrections, read_image(path), masks[path], path.name, model_version="v1",
                                 predicted_mask=np.zeros((256, 256), np.uint8)).entry
        session.accept(path, masks[path], entry.id, corrections.root)
    session.skip(c)
    corrections.remove(session.entry_id(d))
    written = session.export(tmp_path / "out")
    assert len(written) == 3
    rows = {row["image"]: row for row in csv.DictReader((tmp_path / "out" / "manifest.csv").open())}
    assert list(rows) == [p.name for p in session.images]
    assert (rows[a.name]["mask"], rows[a.name]["mask_pixels"], rows[a.name]["annotator"],
            rows[a.name]["model_version"], rows[a.name]["correction"]) == (f"{a.stem}.png", "10240", "alice", "v1",
                                                                           "in the set")
    assert rows[b.name]["mask_pixels"] == "0"  # empty, said by its number
    assert (rows[c.name]["status"], rows[c.name]["mask"]) == ("skipped", "")
    assert rows[d.name]["correction"] == "left the set: removed" and rows[d.name]["annotator"] == "alice"
    with pytest.raises(ValueError, match="manifest.csv"):  # never overwritten
        for path in written:
            path.unlink()
        session.export(tmp_path / "out")


def test_a_colleagues_draft_is_named_as_theirs(make_napari_viewer, qtbot, tmp_path, isolated_home, monkeypatch):
    """Trial of session 41: Bob, resuming the session, was shown Alice's unaccepted painting as "the edits you painted
    on its mask before napari closed"."""
    from test_session import crops_folder, open_session

    from napari_unetv2.annotation.session import AnnotationSession

    folder = crops_folder(tmp_path / "data", n=2)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    session.keep_draft(session.current, _mask(slice(0, 50), (256, 256)))
    assert session.draft_painter(session.current) == "alice"
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    widget = open_session(make_napari_viewer(), qtbot, tmp_path / "s", folder / "images")
    status = widget.status.value.replace("\u200b", "")
    assert "the edits alice painted on its mask before napari closed" in status, status
    assert np.count_nonzero(widget.mask_layer.data) == 50 * 256


def test_unetv2_models_says_why_a_version_is_in_use_and_how_it_scored(small_checkpoint, tmp_path, capsys,
                                                                      isolated_home):
    """Trial of session 41: which version is in use and why could be answered from model.json only; `unetv2 models`
    said "trained on 6 corrections" and nothing of the round's decision, the missing original-domain check or the
    version's prospective score."""
    import json
    import shutil

    from napari_unetv2.checkpoints import config_path_for, read_config
    from napari_unetv2.cli import main

    ours = tmp_path / "round" / "best.safetensors"
    ours.parent.mkdir()
    shutil.copy2(small_checkpoint, ours)
    about = json.loads(config_path_for(small_checkpoint).read_text())
    about.setdefault("metrics", {}).update(
        adoption={"adopt": True, "reason": "new version in use (no held-out images to compare on)"},
        reference_note="no original-domain check: all 2 sample image(s) were among the corrections")
    config_path_for(ours).write_text(json.dumps(about))
    version = read_config(ours).version
    assert main(["models", "add", str(ours), "--use"]) == 0
    corrections = CorrectionSet(isolated_home / "corrections")
    for seed in range(2):
        store_correction(corrections, _image(seed), _mask(slice(5, 20)), f"f{seed}.png", model_version=version,
                         predicted_mask=_mask(slice(5, 18)))
    capsys.readouterr()
    assert main(["models"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"* {version}")]
    assert "round's decision: new version in use (no held-out images" in line, line
    assert "no original-domain check" in line and "prospective Dice 0.929" in line, line


def test_segment_beside_a_session_says_an_accepted_mask_is_no_models(make_napari_viewer, qtbot, tmp_path,
                                                                     isolated_home):
    """Trial of session 41: *Segment*, open beside a folder session, said "segmented with version accepted earlier" of
    an accepted image shown again: no model of that name exists."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    folder = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    seg = dock(viewer, "Segment")
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    assert seg.image.value is session.image_layer
    first, second = session.session.images[:2]
    qtbot.waitUntil(lambda: f"{first.stem}: segmented with version" in seg.status.value.replace("\u200b", ""),
                    timeout=5000)
    assert session.accept_and_next() is not None, session.status.value
    qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
    wait_shown(qtbot, session)
    # the next image in the same layers: said of it (the status went on naming the first image)
    qtbot.waitUntil(lambda: f"{second.stem}: segmented with version" in seg.status.value.replace("\u200b", ""),
                    timeout=5000)
    assert session.previous_image()
    wait_shown(qtbot, session)
    qtbot.waitUntil(lambda: f"{first.stem}: its mask" in seg.status.value.replace("\u200b", ""), timeout=5000)
    status = seg.status.value.replace("\u200b", "")
    assert "the mask accepted earlier in a folder session (no model made it)" in status, status
    assert "version accepted earlier" not in status


def test_kept_edits_export_writes_a_folder_sessions_drafts_too(tmp_path, isolated_home, capsys):
    """Trial of session 41: `unetv2 kept-edits` listed "1 draft(s) painted and not accepted", and `kept-edits export`
    wrote "0 of 0 kept masks" and no folder."""
    from test_session import crops_folder

    from napari_unetv2.annotation.session import AnnotationSession
    from napari_unetv2.cli import main
    from napari_unetv2.files import read_mask

    folder = crops_folder(tmp_path / "data", n=2)
    session = AnnotationSession(isolated_home / "sessions" / "week", folder / "images")
    painted = _mask(slice(0, 50), (256, 256))
    session.keep_draft(session.current, painted)
    out = tmp_path / "out"
    assert main(["kept-edits", "export", str(out)]) == 0
    written = out / f"{session.current.stem}_mask.png"
    assert np.array_equal(read_mask(written) > 0, painted > 0)
    assert "a folder session's draft" in capsys.readouterr().out
    assert main(["kept-edits", "export", str(out)]) == 0  # never overwritten
    assert "exists already" in capsys.readouterr().err


def _two_windows_painting_one_image(tmp_path):
    """Two open windows A and B on one session; A painted the first image (its draft), then B (B's own draft)."""
    from test_trial32 import two_frames

    from napari_unetv2.annotation import AnnotationSession

    images = two_frames(tmp_path / "images")
    a, b = (AnnotationSession(tmp_path / "session", images) for _ in range(2))
    a.mark_open(), b.mark_open()
    first = a.images[0]
    by_a, by_b = np.zeros((160, 200), np.uint8), np.zeros((160, 200), np.uint8)
    by_a[10:40, 10:40], by_b[100:150, 100:150] = 1, 1
    a.keep_draft(first, by_a)
    b.keep_draft(first, by_b)
    return images, a, b, first, by_a, by_b


def test_two_windows_painting_one_image_keep_two_drafts(tmp_path):
    """Session 40's list: with the image's draft another open window's, this window's edits of it overwrote it (one draft
    file per image): the first painter's work was lost. Now the second keeps its own, adopted once the first is gone."""
    import os as _os

    from napari_unetv2.annotation import AnnotationSession

    images, a, b, first, by_a, by_b = _two_windows_painting_one_image(tmp_path)  # A's window holds the image's draft
    assert np.array_equal(a.draft(first, (160, 200)), by_a)
    assert np.array_equal(b.draft(first, (160, 200)), by_b)
    b.keep_draft(first, by_b * 0 + by_a)  # painted on (still its own)
    assert np.array_equal(a.draft(first, (160, 200)), by_a)
    b.keep_draft(first, by_b)
    b.drop_draft(first)  # B leaves its edits: its own go, A's stay
    assert b.draft(first, (160, 200)) is None and np.array_equal(a.draft(first, (160, 200)), by_a)
    b.keep_draft(first, by_b)
    later = _os.path.getmtime(b._own_draft_path(first)) + 5
    _os.utime(b._own_draft_path(first), (later, later))  # (B's edits the later ones)
    b.close_mark()  # B's window closed: its edits wait for the next window to open
    assert np.array_equal(a.draft(first, (160, 200)), by_a)
    c = AnnotationSession(tmp_path / "session", images)
    c.mark_open()  # a window opens while A is open: B's edits stay apart, never over A's draft, and are said
    assert c.draft(first, (160, 200)) is None and np.array_equal(a.draft(first, (160, 200)), by_a)
    [(apart, painter)] = c.drafts_set_apart(first)
    from napari_unetv2.files import read_mask

    assert np.array_equal(read_mask(apart) > 0, by_b > 0)
    a.drop_draft(first)  # A accepted: the image has no draft now
    a.close_mark(), c.close_mark()
    d = AnnotationSession(tmp_path / "session", images)
    d.mark_open()  # B's edits are the image's draft now
    assert np.array_equal(d.draft(first, (160, 200)), by_b) and d.drafts_set_apart(first) == []
    d.drop_draft(first)
    d.close_mark()
    drafts = tmp_path / "session" / "drafts"
    assert not [p for p in drafts.rglob("*.png")], list(drafts.rglob("*"))


def test_windows_closed_with_two_drafts_of_one_image_lose_neither(tmp_path, monkeypatch, capsys, isolated_home):
    """Cold review of session 41: both windows closed, the next to open took B's (newer) draft over A's: A's edits were
    gone from the disk, and the draft named no painter."""
    from napari_unetv2.annotation import AnnotationSession
    from napari_unetv2.cli import main
    from napari_unetv2.files import read_mask
    from napari_unetv2.remembered import remember

    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    images, a, b, first, by_a, by_b = _two_windows_painting_one_image(tmp_path)
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    by_b = by_b.copy()
    by_b[0, :20] = 1
    b.keep_draft(first, by_b)  # (bob paints on his own: noted as his)
    b.close_mark(), a.close_mark()
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "carol")
    c = AnnotationSession(tmp_path / "session", images)
    c.mark_open()
    assert np.array_equal(c.draft(first, (160, 200)), by_a) and c.draft_painter(first) == "alice"
    [(apart, painter)] = c.drafts_set_apart(first)
    assert painter == "bob" and np.array_equal(read_mask(apart) > 0, by_b > 0)
    remember(session__folder=str(tmp_path / "session"))
    out = tmp_path / "out"
    assert main(["kept-edits", "export", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 and f"{first.stem}_mask.png" in written, written  # both, the image's under its name
    assert np.array_equal(read_mask(out / f"{first.stem}_mask.png") > 0, by_a > 0)


def test_a_closed_windows_own_draft_becomes_the_images_draft(tmp_path):
    """The adoption of a window's own drafts (it passes on the code before too, where B's edits overwrote the image's
    one draft: it guards that keeping them apart loses nothing once both windows are closed)."""
    from napari_unetv2.annotation import AnnotationSession

    images, a, b, first, by_a, by_b = _two_windows_painting_one_image(tmp_path)
    a.drop_draft(first)  # A accepted (or left) the image; B's own draft waits
    b.close_mark()
    a.close_mark()
    again = AnnotationSession(tmp_path / "session", images)
    again.mark_open()
    assert np.array_equal(again.draft(first, (160, 200)), by_b)  # the image's draft now, resumed
    assert not list((tmp_path / "session" / "drafts").glob(".open-*"))


_KILLED_AT = r"""
import os, sys
import numpy as np
from pathlib import Path
from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.corrections.history import restore

root, action, target, kill_at = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
corrections = CorrectionSet(root)
calls = [0]
real = {"replace": os.replace, "rename": os.rename}

def counted(kind):
    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(9)  # killed here: no cleanup runs
        return real[kind](*args, **kwargs)
    return step

os.replace, os.rename = counted("replace"), counted("rename")
if action == "remove":
    corrections.remove(target)
else:
    restore(corrections, target)
os._exit(0)
"""


def _state_after_a_kill(root, entry, action, kill_at):
    """Run ``action`` on the entry in a process killed at its ``kill_at``-th rename; then (a minute later, as far as the
    staging folders know) open the set: where the entry is, and whether it is whole."""
    import subprocess
    import sys

    from napari_unetv2.corrections.history import retired_entries

    done = subprocess.run([sys.executable, "-c", _KILLED_AT, str(root), action, entry.id, str(kill_at)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 9), done.stderr
    old = time.time() - 120
    for staged in (root / "history").glob(".*"):
        os.utime(staged, (old, old))
    for claim in (root / "provenance").glob("*.claim"):
        os.utime(claim, (old, old))
    corrections = CorrectionSet(root)  # finishes or undoes what the killed process left
    in_set = [e for e in corrections.entries() if e.id == entry.id]
    in_history = [item for item in retired_entries(root) if item.entry.id == entry.id]
    leftovers = [p.name for p in (root / "history").glob(".*")]
    return done.returncode, in_set, in_history, leftovers


@pytest.mark.parametrize("kill_at", range(1, 9))
def test_a_remove_killed_at_any_step_leaves_the_entry_whole_in_the_set_or_the_history(tmp_path, kill_at):
    """Cold review of session 41: a remove killed midway left an entry hidden from the set (its files gone) and in the
    history without them: neither restorable nor removable. Now its provenance leaving the set is the one step that
    counts, and what a killed process left is finished when the set is next opened."""
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = store_correction(corrections, _image(), _mask(slice(5, 20)), "frame.png", model_version="v1",
                             predicted_mask=_mask(slice(0, 10))).entry
    assert entry.tested_mask_file
    code, in_set, in_history, leftovers = _state_after_a_kill(root, entry, "remove", kill_at)
    assert leftovers == []
    assert len(in_set) + len(in_history) == 1, (code, in_set, in_history)
    if in_history:
        assert in_history[0].missing == () and in_history[0].entry == entry
        assert not (root / entry.image_file).exists() and not (root / entry.mask_file).exists()
    else:
        assert in_set[0] == entry and (root / entry.tested_mask_file).is_file()
    assert not list((root / "provenance").glob("*.claim")) or code == 9


@pytest.mark.parametrize("kill_at", range(1, 8))
def test_a_restore_killed_at_any_step_leaves_the_entry_whole_in_the_history_or_the_set(tmp_path, kill_at):
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = store_correction(corrections, _image(), _mask(slice(5, 20)), "frame.png", model_version="v1",
                             predicted_mask=_mask(slice(0, 10))).entry
    corrections.remove(entry.id)
    code, in_set, in_history, leftovers = _state_after_a_kill(root, entry, "restore", kill_at)
    assert leftovers == []
    assert len(in_set) + len(in_history) == 1, (code, in_set, in_history)
    if in_set:
        assert in_set[0] == entry and (root / entry.tested_mask_file).is_file()
    else:
        assert in_history[0].missing == () and not (root / entry.image_file).exists()


def test_a_restored_older_correction_does_not_replace_a_sessions_later_mask(tmp_path):
    """Cold review of session 41: accepted X, improved to Y on a revisit, Y removed, X restored from the history: the
    session's finished mask became X's older one, "the correction that replaced theirs (another session or window)"."""
    from test_session import crops_folder

    from napari_unetv2.annotation.session import AnnotationSession
    from napari_unetv2.corrections.history import restore
    from napari_unetv2.files import read_image, read_mask

    folder = crops_folder(tmp_path / "data", n=2)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    corrections = CorrectionSet(tmp_path / "set")
    path = session.current
    image, x_mask, y_mask = read_image(path), _mask(slice(0, 40), (256, 256)), _mask(slice(0, 60), (256, 256))
    x = store_correction(corrections, image, x_mask, path.name, model_version="v1",
                         predicted_mask=np.zeros((256, 256), np.uint8)).entry
    session.accept(path, x_mask, x.id, corrections.root)
    time.sleep(1.1)  # (times are kept to the second)
    y = store_correction(corrections, image, y_mask, path.name, model_version="accepted earlier",
                         predicted_mask=x_mask, revisit=True).entry
    session.accept(path, y_mask, y.id, corrections.root)
    corrections.remove(y.id)
    restore(corrections, x.id)
    assert session.follow_corrections(corrections.root) == []
    assert np.array_equal(read_mask(session.finished_path(path)) > 0, y_mask > 0)
    assert path.name in session.corrections_removed  # (the mask accepted here is not in the set)


def test_csv_for_people_never_carries_a_formula(tmp_path, monkeypatch, capsys):
    """Cold review of session 41: a file or annotator name such as "=HYPERLINK(...)" went into manifest.csv and
    `unetv2 corrections --csv` as it was, a formula in the statistician's spreadsheet."""
    import csv
    import io

    from napari_unetv2.cli import main

    root = tmp_path / "set"
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "=HYPERLINK(\"http://x\")")
    store_correction(CorrectionSet(root), _image(), _mask(slice(0, 5)), "@frame.png")
    assert main(["corrections", "--set", str(root), "--csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["annotator"] == "'=HYPERLINK(\"http://x\")" and row["source"] == "'@frame.png"


def test_the_history_keeps_every_leaving_return_and_purge(tmp_path, capsys):
    """Verification of session 41: a restore deleted the entry's record, so an id retired twice kept only its last
    leaving (the first removal, and the restore, recorded nowhere); a damaged record was invisible and could not be
    purged; `corrections restore` of an id in the set said only "no entry in the history"."""
    from napari_unetv2.cli import main
    from napari_unetv2.corrections.history import events

    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    entry = corrections.add(_image(), _mask(slice(0, 5)), source="frame")
    assert main(["corrections", "remove", entry.id, "--set", str(root)]) == 0
    assert main(["corrections", "restore", entry.id, "--set", str(root)]) == 0
    assert main(["corrections", "restore", entry.id, "--set", str(root)]) == 2
    assert "it is in the set" in capsys.readouterr().err
    corrections.remove(entry.id, why="removed again")
    assert [(e["event"], e.get("why")) for e in events(root)] == [("left", "removed"), ("restored", None),
                                                                  ("left", "removed again")]
    damaged = root / "history" / "20260101-000000-x"
    damaged.mkdir()
    (damaged / "retired.json").write_text("{not json")
    capsys.readouterr()
    assert main(["corrections", "history", "--set", str(root)]) == 0
    out = capsys.readouterr().out
    assert "20260101-000000-x" in out and "cannot be read" in out and f"restored {entry.id}" in out
    assert main(["corrections", "purge", "20260101-000000-x", "--set", str(root)]) == 0
    assert not damaged.exists() and events(root)[-1]["event"] == "purged"


def test_a_sessions_count_line_follows_a_removal_of_any_accepted_image(make_napari_viewer, qtbot, tmp_path,
                                                                       isolated_home, monkeypatch):
    """Verification of session 41: "[N accepted, no longer in the correction set]" appeared only once the image was
    shown again, and a colleague's accepted correction, shown again, was "your accepted mask"."""
    from test_gui_findings import dock
    from test_session import crops_folder, open_session, wait_shown

    folder = crops_folder(tmp_path / "data", n=3)
    viewer = make_napari_viewer()
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "alice")
    session = open_session(viewer, qtbot, tmp_path / "session", folder / "images")
    session.corrections.value = str(isolated_home / "corrections")
    for _ in range(2):
        assert session.accept_and_next() is not None, session.status.value
        qtbot.waitUntil(lambda: session.pending_writes == 0, timeout=30_000)
        wait_shown(qtbot, session)
    rt = dock(viewer, "Correct & retrain")
    first = [e for e in rt.correction_set.entries() if e.source == session.session.images[0].name][0]
    rt.entries.value = [first.id]
    assert rt.remove_selected(confirmed=True) == [first.id]  # image 1's, while image 3 is shown
    qtbot.waitUntil(lambda: "[1 accepted, no longer in the correction set]" in session.where.value, timeout=3000)
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    assert session.previous_image()  # image 2: alice's correction, seen by bob
    wait_shown(qtbot, session)
    status = session.status.value.replace("\u200b", "")
    assert "the accepted mask (" in status and "by alice" in status and "your accepted mask" not in status, status


def test_the_second_remover_of_one_entry_is_told_it_is_in_the_history(tmp_path):
    """Verification of session 41: the second of two windows removing one entry was told only "No correction ..."."""
    corrections = CorrectionSet(tmp_path / "set")
    entry = corrections.add(_image(), _mask(slice(0, 5)), source="frame")
    corrections.remove(entry.id)
    with pytest.raises(ValueError, match="taken out of .* already .*in its history"):
        CorrectionSet(tmp_path / "set").remove(entry.id)


def test_a_manifest_finds_corrections_of_acceptances_recorded_without_their_set(tmp_path):
    """Acceptances recorded before session 39 name no set: the manifest said "not found in the set" of every one."""
    import csv

    from test_session import crops_folder

    from napari_unetv2.annotation.session import AnnotationSession
    from napari_unetv2.files import read_image

    folder = crops_folder(tmp_path / "data", n=2)
    session = AnnotationSession(tmp_path / "s", folder / "images")
    corrections = CorrectionSet(tmp_path / "set")
    path, mask = session.current, _mask(slice(0, 40), (256, 256))
    entry = store_correction(corrections, read_image(path), mask, path.name, model_version="v1").entry
    session.accept(path, mask, entry.id)  # (no set recorded)
    session.export(tmp_path / "out", corrections.root)
    [row, _] = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert (row["correction"], row["model_version"]) == ("in the set", "v1")


def test_a_gone_windows_draft_older_than_the_images_acceptance_is_not_shown_over_it(tmp_path, monkeypatch):
    """Verification of session 41: bob's draft (kept apart while alice's was the image's) waited; carol accepted the
    image; the next window took bob's older draft as the image's draft, shown "over its accepted mask; Accept & next
    replaces the accepted correction with them". And a draft merely shown, then kept again unchanged, named the viewer
    as its painter."""
    import os as _os

    from napari_unetv2.annotation import AnnotationSession

    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "bob")
    images, a, b, first, by_a, by_b = _two_windows_painting_one_image(tmp_path)
    old = time.time() - 600
    _os.utime(b._own_draft_path(first), (old, old))  # (bob painted ten minutes ago)
    a.close_mark(), b.close_mark()
    monkeypatch.setenv("NAPARI_UNETV2_ANNOTATOR", "carol")
    c = AnnotationSession(tmp_path / "session", images)
    c.mark_open()
    assert np.array_equal(c.draft(first, (160, 200)), by_a) and len(c.drafts_set_apart(first)) == 1
    c.keep_draft(first, c.draft(first, (160, 200)))  # shown, nothing painted: still the painter's
    assert c.draft_painter(first) == "bob"  # (both were painted under bob's name in this test)
    c.accept(first, by_a, "entry-1")
    c.close_mark()
    e = AnnotationSession(tmp_path / "session", images)
    e.mark_open()
    assert e.draft(first, (160, 200)) is None  # the accepted mask is shown, not bob's older edits
    [(apart, _)] = e.drafts_set_apart(first)  # (still on disk, said, exported)
    assert apart.is_file()


def test_typing_a_path_does_not_switch_the_other_dock_to_a_set_it_begins_with(make_napari_viewer, qtbot, tmp_path,
                                                                               isolated_home):
    """Verification of session 41: while ".../week2" was typed, the other dock switched to the set ".../week" (any
    existing set named by the start of the path) and stayed there."""
    from test_gui_findings import dock

    CorrectionSet(tmp_path / "w")
    viewer = make_napari_viewer(show=True)
    rt = dock(viewer, "Correct & retrain")
    session = dock(viewer, "Annotate a folder")
    viewer.window._qt_window.activateWindow()
    for field, other in ((session.corrections, rt.folder), (rt.folder, session.corrections)):
        before = str(other.value)
        line = field.line_edit.native
        line.setFocus()
        qtbot.waitUntil(line.hasFocus, timeout=3000)
        line.clear()
        qtbot.keyClicks(line, str(tmp_path / "week"))
        assert str(other.value) == before, (field.label, other.value)
