import numpy as np
import pytest

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
    with pytest.raises(ValueError, match="No correction"):
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


def test_corrupt_store_json_is_kept_as_a_backup_and_reported(tmp_path):
    store = ModelStore(tmp_path / "models")
    (store.root / "store.json").write_text('{"current": "abc", "history": [nul')
    with pytest.warns(UserWarning, match="kept as store.json.corrupt-"):
        assert store.current is None
    backups = list(store.root.glob("store.json.corrupt-*"))
    assert len(backups) == 1 and "history" in backups[0].read_text()  # the damaged history is not lost
    assert "kept as" in store.warning
