import numpy as np
import pytest
import torch

from napari_unetv2._sample_data import load_sample
from napari_unetv2.checkpoints import ModelStore
from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.files import read_image, read_mask


def test_add_list_reopen_remove(tmp_path):
    image, gt, _ = load_sample("polyp")
    predicted = np.zeros_like(gt)
    cs = CorrectionSet(tmp_path / "set")
    entry = cs.add(image, gt, source="frame 1", model_version="abc", predicted_mask=predicted, seconds_spent=12.5)
    assert entry.pixels_changed == int(gt.sum()) and entry.model_version == "abc" and entry.seconds_spent == 12.5
    reopened = CorrectionSet(tmp_path / "set")  # e.g. after napari restarts
    [again] = reopened.entries()
    assert again == entry
    assert np.array_equal(read_image(reopened.root / entry.image_file), image)
    assert np.array_equal(read_mask(reopened.root / entry.mask_file), gt)
    [pair] = reopened.pairs()
    assert pair.image.is_file() and pair.mask.is_file()
    second = reopened.add(image, gt, source="frame 1")
    assert second.id != entry.id and len(reopened) == 2
    reopened.remove(entry.id)
    assert [e.id for e in reopened.entries()] == [second.id]
    assert not (reopened.root / entry.image_file).exists()
    with pytest.raises(ValueError, match="taken out of .* already"):
        reopened.remove(entry.id)


def test_float_images_keep_their_values(tmp_path):
    image = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    mask = np.zeros((40, 50), np.uint8)
    entry = CorrectionSet(tmp_path).add(image, mask, source="float")
    assert entry.image_file.endswith(".tif")
    assert np.array_equal(read_image(tmp_path / entry.image_file), image)


def test_bad_corrections_are_refused_and_change_nothing(tmp_path):
    cs = CorrectionSet(tmp_path)
    with pytest.raises(ValueError, match="do not match"):
        cs.add(np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10), np.uint8), source="x")
    with pytest.raises(ValueError, match="2-D"):
        cs.add(np.zeros((2, 10, 10), np.uint8), np.zeros((2, 10, 10), np.uint8), source="x")
    assert cs.entries() == [] and not any((tmp_path / "images").iterdir())


def test_orphan_files_from_a_crash_are_not_entries(tmp_path):
    cs = CorrectionSet(tmp_path)
    (tmp_path / "images" / "20260101-000000-x.png").write_bytes(b"partial")
    (tmp_path / "provenance" / ".20260101-000000-x.json.abc.tmp").write_text("{")
    assert cs.entries() == []


def test_model_store_versions_use_and_roll_back(tmp_path, small_checkpoint):
    store = ModelStore(tmp_path / "store")
    assert store.current is None  # the bundled model
    config = store.add(small_checkpoint)
    assert [c.version for c in store.versions()] == [config.version]
    store.use(config.version)
    assert store.current_checkpoint() == store.path_of(config.version)
    assert ModelStore(tmp_path / "store").current == config.version  # persists
    assert store.roll_back() is None and store.current is None
    with pytest.raises(ValueError, match="Nothing to roll back"):
        store.roll_back()
    with pytest.raises(ValueError, match="not in the model store"):
        store.use("nope")


def test_using_the_version_in_use_twice_does_not_make_roll_back_a_no_op(tmp_path, small_checkpoint):
    """'Use this version' pressed on the version already in use (the chooser shows it by default) added a history
    entry each time, so the next Roll back 'rolled back' to the same version; and hand-edited or removed history
    entries were put in use as they were."""
    import json
    import shutil

    store = ModelStore(tmp_path / "store")
    version = store.add(small_checkpoint).version
    store.use(version)
    store.use(version)
    assert store.roll_back() is None and store.current is None  # back to the bundled model at once
    store.use(version)
    state = json.loads((store.root / "store.json").read_text())
    state["history"] += [5, "0123456789ab", version]  # a hand edit, a version since removed, a duplicate
    (store.root / "store.json").write_text(json.dumps(state))
    assert store.roll_back() is None  # all three passed over
    shutil.rmtree(store.root / "versions" / version)
    with pytest.raises(ValueError, match="Nothing to roll back"):
        ModelStore(tmp_path / "store").roll_back()


def test_moving_the_pointer_waits_for_another_writer_of_the_store(tmp_path, small_checkpoint):
    """use() and roll_back() read, change and write store.json: under the folder lock, as two windows (or a window
    and the CLI) would otherwise lose each other's moves (300 uses by two processes kept 156 history entries)."""
    import threading
    import time

    from napari_unetv2.files import locked

    store = ModelStore(tmp_path / "store")
    version = store.add(small_checkpoint).version
    done = threading.Event()
    with locked(store.root):
        worker = threading.Thread(target=lambda: (store.use(version), done.set()))
        worker.start()
        time.sleep(0.3)
        assert not done.is_set()  # waits for the other writer
    worker.join(10)
    assert done.is_set() and store.current == version


def test_a_live_rounds_scratch_folder_is_not_stale_because_the_folder_itself_is_old(tmp_path):
    """A round writes inside its scratch folder (run/, each epoch) and never touches the folder itself: a second
    window opened 6 h into a long round deleted it under the round."""
    import os
    import time

    store = ModelStore(tmp_path / "store")
    live, dead = (store.root / "runs" / name for name in ("round-live", "round-dead"))
    for folder in (live, dead):
        (folder / "run").mkdir(parents=True)
        (folder / "run" / "log.csv").write_text("epoch\n")
    old = time.time() - 7 * 3600
    for path in (live, live / "run", dead, dead / "run", dead / "run" / "log.csv"):
        os.utime(path, (old, old))
    assert store.remove_stale_runs() == 1
    assert live.is_dir() and not dead.exists()


def test_corrupt_store_json_is_kept_as_a_backup_and_reported(tmp_path):
    store = ModelStore(tmp_path / "models")
    (store.root / "store.json").write_text('{"current": "abc", "history": [nul')
    with pytest.warns(UserWarning, match="kept as store.json.corrupt-"):
        assert store.current is None
    backups = list(store.root.glob("store.json.corrupt-*"))
    assert len(backups) == 1 and "history" in backups[0].read_text()  # the damaged history is not lost
    assert "kept as" in store.warning


def test_two_writers_in_one_second_never_share_an_entry(tmp_path, monkeypatch):
    """Two windows (or the CLI beside the GUI) accept a layer of the same name within one second: the second
    writer runs its whole add() while the first is between writing its mask and its provenance."""
    import napari_unetv2.corrections.correction_set as correction_set

    monkeypatch.setattr(correction_set.time, "strftime", lambda fmt, *args: "20260101-120000")
    first, second = CorrectionSet(tmp_path), CorrectionSet(tmp_path)
    image = np.zeros((32, 32, 3), np.uint8)
    top, left = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    top[:16], left[:, :16] = 1, 1
    write_text = correction_set.atomic_write_text

    def second_writer_in_between(path, text):
        monkeypatch.setattr(correction_set, "atomic_write_text", write_text)
        second.add(image + 1, left, source="frame")
        write_text(path, text)

    monkeypatch.setattr(correction_set, "atomic_write_text", second_writer_in_between)
    first.add(image, top, source="frame")
    entries = CorrectionSet(tmp_path).entries()
    assert len(entries) == 2 and len({e.id for e in entries}) == 2
    for entry in entries:
        stored = read_mask(tmp_path / entry.mask_file) > 0
        assert stored.sum() == entry.foreground_pixels
        assert np.array_equal(stored, top > 0) != np.array_equal(stored, left > 0)
    assert not list((tmp_path / "provenance").glob("*.claim"))


def test_a_provenance_field_of_the_wrong_type_is_not_an_entry(tmp_path):
    import json

    from napari_unetv2.corrections.prospective import version_scores

    corrections = CorrectionSet(tmp_path)
    mask = np.zeros((32, 32), np.uint8)
    mask[:10] = 1
    kept = corrections.add(np.zeros((32, 32, 3), np.uint8), mask, source="kept", predicted_mask=mask)
    edited = corrections.add(np.zeros((32, 32, 3), np.uint8), mask, source="edited", predicted_mask=mask)
    path = tmp_path / "provenance" / f"{edited.id}.json"
    for field, value in (("prospective_dice", "0.9"), ("height", "32"), ("pixels_changed", True)):
        data = json.loads(path.read_text())
        data[field] = value
        path.write_text(json.dumps(data))
        assert [e.id for e in corrections.entries()] == [kept.id], field
        version_scores(corrections)  # reads every entry's scores: no TypeError from the edited file
    with pytest.raises(ValueError, match="unreadable provenance"):
        corrections.remove(edited.id)


def test_remove_holds_the_id_so_a_writer_cannot_claim_it_midway(tmp_path, monkeypatch):
    """A writer adding an entry of the same id while remove() deletes its files must get another id."""
    import napari_unetv2.corrections.correction_set as correction_set

    monkeypatch.setattr(correction_set.time, "strftime", lambda fmt, *args: "20260101-120000")
    corrections = CorrectionSet(tmp_path)
    mask = np.zeros((32, 32), np.uint8)
    mask[:10] = 1
    old = corrections.add(np.zeros((32, 32, 3), np.uint8), mask, source="frame")
    unlink = type(tmp_path).unlink
    added = []

    def unlink_then_another_writer(path, missing_ok=False):
        unlink(path, missing_ok=missing_ok)
        if path.suffix == ".json" and not added:  # the JSON is gone, the image and mask not yet
            added.append(CorrectionSet(tmp_path).add(np.ones((32, 32, 3), np.uint8), 1 - mask, source="frame"))

    monkeypatch.setattr(type(tmp_path), "unlink", unlink_then_another_writer)
    corrections.remove(old.id)
    monkeypatch.undo()
    [entry] = CorrectionSet(tmp_path).entries()
    assert entry.id == added[0].id != old.id
    assert not list((tmp_path / "provenance").glob("*.claim"))


def test_an_unchanged_prediction_does_not_silently_replace_a_correction(tmp_path, monkeypatch):
    """The trial of session 25: edits undone back to the model's mask, then Accept: the earlier correction (2,448
    pixels changed) was replaced by the unchanged prediction with no question, and the model's prospective score
    read 1.000. With ``keep_edited`` (what the Accept button asks first) it is refused and nothing changes."""
    from napari_unetv2.annotation import WouldDiscardCorrection, store_correction

    image, gt, _ = load_sample("polyp")
    predicted = np.zeros_like(gt)
    cs = CorrectionSet(tmp_path / "set")
    first = store_correction(cs, image, gt, source="frame", model_version="v1", predicted_mask=predicted).entry
    with pytest.raises(WouldDiscardCorrection, match=f"{first.id}"):
        store_correction(cs, image, predicted, source="frame", model_version="v1", predicted_mask=predicted,
                         keep_edited=True)
    assert [e.id for e in cs.entries()] == [first.id]
    again = store_correction(cs, image, predicted, source="frame", model_version="v1", predicted_mask=predicted)
    assert again.replaced == [first.id] and [e.id for e in cs.entries()] == [again.entry.id]

    # the earlier entry removed meanwhile (another window) while this one is stored: stored, and said so, not an error
    image2 = image.copy()
    image2[0, 0] = 255 - image2[0, 0]
    earlier = store_correction(cs, image2, gt, source="other").entry
    remove = cs.remove
    monkeypatch.setattr(cs, "remove", lambda entry_id, **how: (remove(entry_id, **how), remove(entry_id, **how)))
    stored = store_correction(cs, image2, predicted, source="other")
    assert stored.replaced == [earlier.id] and stored.entry.id in {e.id for e in cs.entries()}


def test_a_mask_accepted_unchanged_is_not_replaced_without_a_question(tmp_path):
    """Trial of session 35: a folder session's Accept of the model's mask as it was (0 pixels changed), then the same
    image segmented again in Segment, painted over (1,600 pixels) and accepted in Correct & retrain: the reviewed mask
    was replaced on the first press. Such an entry is asked about like one with pixels changed: painted over another
    prediction, and as another model's unchanged mask."""
    from napari_unetv2.annotation import WouldDiscardCorrection, WouldReplaceCorrection, store_correction

    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    reviewed = store_correction(cs, image, gt, source="frame.png", model_version="v1", predicted_mask=gt).entry
    assert reviewed.pixels_changed == 0
    other_model = np.roll(gt, 40, axis=1)
    painted = other_model.copy()
    painted[:40, :40] = 1
    with pytest.raises(WouldReplaceCorrection, match="accepted with no pixel changed"):
        store_correction(cs, image, painted, source="frame", model_version="v2", predicted_mask=other_model,
                         keep_edited=True, accepted_from_layer=[])
    with pytest.raises(WouldDiscardCorrection, match=reviewed.id):
        store_correction(cs, image, other_model, source="frame", model_version="v2", predicted_mask=other_model,
                         keep_edited=True, accepted_from_layer=[])
    assert [e.id for e in cs.entries()] == [reviewed.id]
    # painting on the reviewed mask itself (started from it) is how it is improved: not asked
    better = gt.copy()
    better[:8, :8] = 1 - better[:8, :8]
    stored = store_correction(cs, image, better, source="frame", model_version="v1", predicted_mask=gt,
                              keep_edited=True, accepted_from_layer=[])
    assert stored.replaced == [reviewed.id]


def test_a_provenance_file_naming_another_entry_is_not_an_entry(tmp_path):
    """A cold review of session 25: B's provenance edited (or merged from another set) to carry A's id: re-accepting
    B's image then removed A's correction (removal goes by the id in the file)."""
    import json

    from napari_unetv2.annotation import store_correction

    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    a = cs.add(image, gt, source="a")
    other = image.copy()
    other[0, 0] = 255 - other[0, 0]
    b = cs.add(other, gt, source="b")
    path = cs.root / "provenance" / f"{b.id}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "id": a.id}))
    assert [e.id for e in cs.entries()] == [a.id]  # the inconsistent file is not listed (and never acted on)
    data["mask_file"] = a.mask_file  # right id, another entry's files
    path.write_text(json.dumps(data))
    assert [e.id for e in cs.entries()] == [a.id]
    store_correction(cs, other, np.zeros_like(gt), source="b")
    assert a.id in {e.id for e in cs.entries()} and (cs.root / a.mask_file).is_file()


def test_json_nested_too_deeply_is_bad_input_everywhere(tmp_path, small_checkpoint):
    """A cold review of session 25: '[' * 100000 made every JSON reader raise RecursionError, which no error
    handling expected: one such provenance file broke the listing of the whole correction set."""
    import shutil

    from napari_unetv2.annotation import AnnotationSession
    from napari_unetv2.checkpoints import read_config

    deep = "[" * 100_000
    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    kept = cs.add(image, gt, source="a")
    (cs.root / "provenance" / "x.json").write_text(deep)
    assert [e.id for e in cs.entries()] == [kept.id]

    store = ModelStore(tmp_path / "store")
    (store.root / "store.json").write_text(deep)
    with pytest.warns(UserWarning, match="kept as store.json.corrupt-"):
        assert store.current is None

    copy = tmp_path / "model.safetensors"
    shutil.copy(small_checkpoint, copy)
    copy.with_suffix(".json").write_text(deep)
    with pytest.raises(ValueError, match="not valid"):
        read_config(copy)

    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "session").mkdir()
    (tmp_path / "session" / "session.json").write_text(deep)
    with pytest.raises(ValueError, match="unreadable"):
        AnnotationSession(tmp_path / "session", images)


def test_a_checkpoint_file_replaced_in_place_is_loaded_again(tmp_path, small_checkpoint):
    """A cold review of session 25: the predictor cache was keyed by the path, so a "from file..." checkpoint
    overwritten by a new training run kept running its old weights."""
    import shutil

    from napari_unetv2.checkpoints import load_checkpoint, save_checkpoint
    from napari_unetv2.widgets._state import PREDICTORS

    path = tmp_path / "best.safetensors"
    shutil.copy(small_checkpoint, path)
    shutil.copy(small_checkpoint.with_suffix(".json"), path.with_suffix(".json"))
    first = PREDICTORS.get(path, "cpu").config.version
    model, config = load_checkpoint(small_checkpoint)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # other weights: another version (versions hash the tensors)
    save_checkpoint(model, path, config)
    second = PREDICTORS.get(path, "cpu").config.version
    assert second != first and second == load_checkpoint(path)[1].version


def test_a_versions_training_record_of_the_wrong_type_is_read_as_unknown(tmp_path, small_checkpoint):
    import json
    import shutil

    from napari_unetv2.corrections.auto_retrain import seen_by

    path = tmp_path / "model.safetensors"
    shutil.copy(small_checkpoint, path)
    config = json.loads(small_checkpoint.with_suffix(".json").read_text())
    for trained_on, expected in ((5, set()), (None, set()), ("ab", set()), (["x", 3], {"x"})):
        path.with_suffix(".json").write_text(json.dumps({**config, "training": {"trained_on": trained_on}}))
        assert seen_by(path) == expected


def test_one_image_has_one_correction_whatever_name_it_came_by(tmp_path):
    """A cold review of session 25: the folder session stores 'frame.png', Correct & retrain the layer 'frame' (napari
    names a second copy 'frame [1]'; a user renames a layer): both masks of one image were kept, and trained together."""
    from napari_unetv2.annotation import store_correction

    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    store_correction(cs, image, gt, source="frame.png")
    for n, name in enumerate(("frame", "frame [1]", "patient 4, back lesion")):  # the last: the layer renamed
        mask = gt.copy()
        mask[:10, : 10 + n] = 1
        assert store_correction(cs, image, mask, source=name).replaced
    assert len(cs.entries()) == 1
    other = image.copy()
    other[0, 0] = 255 - other[0, 0]  # the same name, other pixels: another image
    assert not store_correction(cs, other, gt, source="frame").replaced and len(cs.entries()) == 2


def test_re_accepting_a_revisited_image_keeps_the_models_test_of_it(tmp_path):
    """A cold review of session 25: revisiting an accepted image shows the accepted mask (no model made it);
    accepting it again replaced the entry holding the real model's prospective test by one of 'accepted earlier'
    (v1: Dice 0.320 became 'accepted earlier': Dice 0.970)."""
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections.prospective import version_scores

    image, gt, _ = load_sample("polyp")
    shown = np.zeros_like(gt)
    shown[: gt.shape[0] // 2] = gt[: gt.shape[0] // 2]
    cs = CorrectionSet(tmp_path / "set")
    first = store_correction(cs, image, gt, source="frame.png", model_version="v1", predicted_mask=shown).entry
    again = gt.copy()
    again[:5, :5] = 1
    stored = store_correction(cs, image, again, source="frame.png", model_version="accepted earlier",
                              predicted_mask=gt, revisit=True).entry
    assert stored.model_version == "v1"
    assert list(version_scores(cs)) == ["v1"]
    # v1's mask, kept with the entry, scored against the better correction (trial of session 32: an image accepted
    # unchanged, Dice 1.0, then corrected by 24,082 pixels on a revisit, kept its 1.0)
    from napari_unetv2.engine.metrics import dice_iou_mae

    assert np.array_equal(cs.tested_mask(stored) > 0, shown > 0)
    assert stored.prospective_dice == pytest.approx(dice_iou_mae(shown > 0, again > 0)[0])
    assert stored.prospective_dice != pytest.approx(first.prospective_dice)


def test_an_image_accepted_unchanged_then_corrected_on_a_revisit_is_scored_against_the_correction(tmp_path):
    """Trial of session 32: accepted unchanged (the model's mask: Dice 1.0), revisited and corrected; the version's
    prospective score kept the 1.0 ("Dice 0.919 [0.660, 1.000] on 4 images"). Its file goes with the entry."""
    from napari_unetv2.annotation import store_correction

    image, gt, _ = load_sample("polyp")
    model_mask = np.zeros_like(gt)
    model_mask[: gt.shape[0] // 2] = gt[: gt.shape[0] // 2]
    cs = CorrectionSet(tmp_path / "set")
    first = store_correction(cs, image, model_mask, source="frame.png", model_version="v1",
                             predicted_mask=model_mask).entry
    assert first.prospective_dice == 1.0
    second = store_correction(cs, image, gt, source="frame.png", model_version="accepted earlier",
                              predicted_mask=model_mask, revisit=True).entry
    assert second.model_version == "v1" and second.prospective_dice < 0.9
    better = gt.copy()
    better[:6, :6] = 1
    third = store_correction(cs, image, better, source="frame.png",
                             model_version="accepted earlier", predicted_mask=gt, revisit=True)
    assert third.entry.prospective_dice == pytest.approx(second.prospective_dice, abs=0.05)  # still v1's mask
    kept = sorted(p.name for p in (cs.root / "tested").iterdir())
    assert kept == [f"{third.entry.id}.png"]  # the replaced entries took theirs with them


def test_a_version_with_a_damaged_json_is_named_and_cannot_be_put_in_use(tmp_path, small_checkpoint):
    """A cold review of session 25: a stored version whose model.json was damaged vanished from the list without a
    word, yet use() put it in use (it checked the weights only) and the model line read 'missing version ...'."""
    store = ModelStore(tmp_path / "store")
    version = store.add(small_checkpoint).version
    (store.root / "versions" / version / "model.json").write_text("{ damaged")
    assert store.versions() == [] and store.damaged == [version]
    with pytest.raises(ValueError, match="cannot be used"):
        store.use(version)
    assert store.current is None


def test_roll_back_passes_over_a_version_with_a_damaged_json(tmp_path, small_checkpoint):
    """A cold review of session 25: use() refused such a version, but Roll back put it back in use, after which every
    current_checkpoint() raised."""
    store = ModelStore(tmp_path / "store")
    version = store.add(small_checkpoint).version
    store.use(version)
    store.use(None)
    store.use(version)  # history: bundled, version, bundled
    (store.root / "versions" / version / "model.json").write_text("{ damaged")
    assert store.roll_back() is None and store.current_checkpoint() is not None
    with pytest.raises(ValueError, match="Nothing to roll back"):
        store.roll_back()  # the damaged version is passed over, not put in use


def test_a_mask_of_an_image_the_model_trained_on_is_no_prospective_test(tmp_path):
    """Session 27's trial: a fine-tuned version's prospective score counted an image it had been trained on (its
    correction accepted again with that version's mask). What a version trained on is read from its JSON: the
    corrections' ids and their images' pixel hashes, so the image is known also once its entry was replaced."""
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.corrections.correction_set import image_hash
    from napari_unetv2.corrections.prospective import version_scores

    image, gt, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    shown = np.zeros_like(gt)
    shown[: gt.shape[0] // 2] = 1
    first = store_correction(cs, image, gt, source="frame", model_version="v1", predicted_mask=shown).entry
    assert first.prospective_dice is not None
    # the pixels as a round reads them back from the set (what finetune records)
    assert image_hash(read_image(cs.root / first.image_file)) == image_hash(image) == first.image_hash
    painted = gt.copy()
    painted[:8, :8] = 1 - painted[:8, :8]
    second = store_correction(cs, image, painted, source="frame", model_version="v2", predicted_mask=gt,
                              seen_by_model={first.id}).entry  # v2 fine-tuned on the first correction (a JSON of before)
    assert second.prospective_dice is None
    third = store_correction(cs, image, gt, source="frame", model_version="v2", predicted_mask=painted,
                             seen_by_model={first.id, image_hash(image)}).entry  # the first entry is gone: by pixels
    assert third.prospective_dice is None
    assert "v2" not in version_scores(cs)
    other = store_correction(cs, image, painted, source="frame", model_version="v3", predicted_mask=gt,
                             seen_by_model={"some-other-correction", "0" * 32}).entry
    assert other.prospective_dice is not None  # a version that never saw the image: a real test


def test_a_round_records_the_pixels_of_what_it_trained_on(tmp_path, small_checkpoint):
    """The hashes that trained_on_by_version reads: one per trained correction, equal to the set's own."""
    from napari_unetv2.checkpoints import ModelStore, read_config
    from napari_unetv2.corrections.auto_retrain import trained_on_by_version
    from napari_unetv2.engine.finetune import finetune_events
    from napari_unetv2.engine.pairs import find_pairs

    cs = CorrectionSet(tmp_path / "set")
    entries = [cs.add(*load_sample(key)[:2], source=key) for key in ("polyp", "kvasir")]
    pairs = find_pairs(cs.root).pairs
    gen = finetune_events(small_checkpoint, pairs, tmp_path / "round", epochs=1, device="cpu")
    try:
        while True:
            next(gen)
    except StopIteration as done:
        result = done.value
    training = read_config(result.checkpoint).training
    assert sorted(training["trained_images"]) == sorted(e.image_hash for e in entries)
    store = ModelStore(tmp_path / "models")
    version = store.add(result.checkpoint).version
    assert trained_on_by_version(store, version) == {e.id for e in entries} | {e.image_hash for e in entries}
    assert trained_on_by_version(store, None) == set() and trained_on_by_version(store, "no-such-version") == set()


def test_what_a_version_learned_includes_the_versions_it_came_from(tmp_path, small_checkpoint):
    """Review of session 30: the widgets counted an image a version's parent had trained on as a prospective test of the
    version (only its own JSON was read), while `evaluate` followed the ancestors. One function now, ancestors included;
    a loop of parents ends."""
    import torch

    from napari_unetv2.checkpoints import ModelStore, load_checkpoint, save_checkpoint
    from napari_unetv2.corrections.auto_retrain import trained_on_by_version

    model, config = load_checkpoint(small_checkpoint)
    store = ModelStore(tmp_path / "models")
    config.training = {"trained_on": ["c1"], "trained_images": ["h1"]}
    save_checkpoint(model, tmp_path / "p.safetensors", config)
    parent = store.add(tmp_path / "p.safetensors").version
    with torch.no_grad():
        next(model.parameters()).add_(0.001)
    config.training, config.parent = {"trained_on": ["c2"], "trained_images": ["h2"]}, parent
    save_checkpoint(model, tmp_path / "c.safetensors", config)
    child = store.add(tmp_path / "c.safetensors").version
    assert trained_on_by_version(store, child) == {"c1", "h1", "c2", "h2"}
    assert trained_on_by_version(store, parent) == {"c1", "h1"}


def test_a_model_mask_with_nothing_in_common_with_the_correction_scores_zero(tmp_path):
    """Verification of session 32: provenance stored prospective_dice 7.06e-11 (the metric's smoothing) for a model
    mask that missed the lesion entirely."""
    image, gt, _ = load_sample("polyp")
    entry = CorrectionSet(tmp_path / "set").add(image, gt, source="frame", predicted_mask=np.zeros_like(gt))
    assert entry.prospective_dice == 0.0 and entry.prospective_iou == 0.0
