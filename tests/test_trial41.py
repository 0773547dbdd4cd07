"""Session 41: a correction set that answers for its work — who stored each correction, and a history of those that
left it (replaced by a later correction of the image, or removed) instead of their deletion. Each test failed on the
code before its change."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

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


def test_an_id_retired_twice_keeps_both_history_entries(tmp_path, monkeypatch):
    """An id is free again once its entry left the set (a restored entry removed again, or the same name in the same
    second): the second retirement must not overwrite the first's folder."""
    from napari_unetv2.corrections import correction_set
    from napari_unetv2.corrections.history import retired_entries

    monkeypatch.setattr(correction_set.time, "strftime", lambda fmt, *args: "20260101-120000")
    root = tmp_path / "set"
    corrections = CorrectionSet(root)
    first = corrections.add(_image(0), _mask(slice(0, 5)), source="frame")
    corrections.remove(first.id)
    second = corrections.add(_image(1), _mask(slice(5, 9)), source="frame")
    assert second.id == first.id
    corrections.remove(second.id)
    names = sorted(item.name for item in retired_entries(root))
    assert names == [first.id, f"{first.id}~2"]
    assert all(item.missing == () for item in retired_entries(root))


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
    assert purge(root, entry.id).entry.id == entry.id
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
