"""Names from data never reach outside their folder; no operation deletes or replaces a file the user did
not name as an output; outputs follow the umask; stale temporaries are cleaned, nothing else.

Model store versions, correction entries, the safe-path helper, atomic writes. Cases: docs/robustness.md.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import ellipse_mask, picture, tree_digest
from safetensors.torch import save_file

from napari_unetv2.checkpoints import ModelConfig, ModelStore
from napari_unetv2.checkpoints.checkpoint import content_version
from napari_unetv2.corrections import CorrectionSet

FAKE_WEIGHTS = {"w": torch.zeros(1)}
GOOD = content_version(FAKE_WEIGHTS)  # the version id those weights have (ModelStore.add checks the JSON names it)


def fake_checkpoint(folder: Path, version: object, name: str = "model") -> Path:
    """A checkpoint pair: one tiny tensor, and a JSON that says ``version`` (ModelStore.add copies the files; it reads
    the tensors only to check that the JSON names their version)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = asdict(ModelConfig(input_size=(64, 64)))
    config["version"] = version
    (folder / f"{name}.json").write_text(json.dumps(config))
    save_file(FAKE_WEIGHTS, str(folder / f"{name}.safetensors"))
    return folder / f"{name}.safetensors"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder of someone's files beside the store and the correction set."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "report.docx").write_bytes(b"important")
    (folder / "model.safetensors").write_bytes(b"someone else's model")
    return folder


# ---- model store (issue 12, item 1) -----------------------------------------------------------------

@pytest.mark.parametrize("version", ["../../victim", "../../../victim", "", ".", "..", "/abs/victim", "a/b", "a\\b",
                                     "x\x00y", 5, None])
def test_store_add_refuses_versions_that_are_not_plain_names(tmp_path, victim, version):
    store = ModelStore(tmp_path / "home" / "models")
    good = store.add(fake_checkpoint(tmp_path / "good", GOOD))
    before = tree_digest(tmp_path)
    with pytest.raises(ValueError):
        store.add(fake_checkpoint(tmp_path / "evil", version))
    assert tree_digest(tmp_path, exclude=tmp_path / "evil") == {
        k: v for k, v in before.items() if not bytes.fromhex(k).startswith(b"evil")}
    assert [v.version for v in store.versions()] == [good.version]


@pytest.mark.parametrize("version", ["../..", "..", "", "../victim", "/etc"])
def test_store_use_refuses_paths(tmp_path, victim, version):
    store = ModelStore(tmp_path / "home" / "models")
    with pytest.raises(ValueError):
        store.use(version)
    assert store.current is None


def test_store_version_folder_symlinked_outside_is_refused(tmp_path, victim):
    store = ModelStore(tmp_path / "home" / "models")
    (store.root / "versions" / GOOD).symlink_to(victim, target_is_directory=True)
    with pytest.raises(ValueError):
        store.use(GOOD)
    before = tree_digest(victim)
    with pytest.raises(ValueError):
        store.add(fake_checkpoint(tmp_path / "ck", GOOD))
    assert tree_digest(victim) == before


def test_store_json_holding_a_list_is_kept_as_backup(tmp_path):
    store = ModelStore(tmp_path / "models")
    (store.root / "store.json").write_text("[1, 2, 3]")
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.current is None
    assert [p.read_text() for p in store.root.glob("store.json.corrupt-*")] == ["[1, 2, 3]"]


@pytest.mark.parametrize("content", ['{"current": 5, "history": []}', '{"current": ["a"], "history": []}',
                                     b"\xff\xfe\x00garbage"])
def test_store_json_with_wrong_types_or_bytes_is_kept_as_backup(tmp_path, content):
    store = ModelStore(tmp_path / "models")
    path = store.root / "store.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(UserWarning):
        assert store.current is None
    assert len(list(store.root.glob("store.json.corrupt-*"))) == 1


def test_store_pointer_leaving_the_store_falls_back_to_bundled(tmp_path, victim):
    store = ModelStore(tmp_path / "home" / "models")
    (store.root / "store.json").write_text(json.dumps({"current": "../../../victim", "history": []}))
    assert store.current is None  # the bundled model, not a file outside the store


# ---- correction set (issue 12, item 1) --------------------------------------------------------------------

def forged_entry(cs: CorrectionSet, entry_id: str, image_file: str, mask_file: str) -> Path:
    entry = {"id": entry_id, "image_file": image_file, "mask_file": mask_file, "source": "x", "model_version": "",
             "created": "", "pixels_changed": 0, "foreground_pixels": 0, "seconds_spent": None, "height": 8, "width": 8}
    path = cs.root / "provenance" / f"{entry_id}.json"
    path.write_text(json.dumps(entry))
    return path


@pytest.mark.parametrize("image_file", ["../../victim/report.docx", "images/../../victim/report.docx",
                                        "{victim}/report.docx", "masks/real.png", "images/sub/x.png", "", "images/"])
def test_remove_never_deletes_outside_the_set(tmp_path, victim, image_file):
    cs = CorrectionSet(tmp_path / "set")
    real = cs.add(picture(), ellipse_mask(), source="real")
    forged_entry(cs, "forged", image_file.format(victim=victim), "../../victim/model.safetensors")
    before = tree_digest(tmp_path)
    assert [e.id for e in cs.entries()] == [real.id]  # the forged entry is not listed for training
    with pytest.raises(ValueError):
        cs.remove("forged")
    assert tree_digest(tmp_path) == before


def test_correction_symlinked_outside_is_not_listed_nor_followed_by_remove(tmp_path, victim):
    cs = CorrectionSet(tmp_path / "set")
    entry = cs.add(picture(), ellipse_mask(), source="real")
    image = cs.root / entry.image_file
    image.unlink()
    image.symlink_to(victim / "report.docx")
    assert cs.entries() == [] and cs.pairs() == []
    with pytest.raises(ValueError):
        cs.remove(entry.id)
    assert (victim / "report.docx").read_bytes() == b"important"


@pytest.mark.parametrize("entry_id", ["../victim/x", "../../provenance", "", "/etc/passwd", 7])
def test_remove_refuses_ids_that_are_paths(tmp_path, victim, entry_id):
    cs = CorrectionSet(tmp_path / "set")
    before = tree_digest(tmp_path)
    with pytest.raises(ValueError):
        cs.remove(entry_id)
    assert tree_digest(tmp_path) == before


def test_provenance_that_is_not_an_object_is_ignored_and_not_removable(tmp_path):
    cs = CorrectionSet(tmp_path / "set")
    (cs.root / "provenance" / "list.json").write_text("[1, 2]")
    (cs.root / "provenance" / "binary.json").write_bytes(b"\xff\x00\xfe")
    assert cs.entries() == []
    with pytest.raises(ValueError, match="nothing was deleted"):
        cs.remove("list")
    assert (cs.root / "provenance" / "list.json").exists()


def test_source_name_with_separators_stays_inside_the_set(tmp_path):
    cs = CorrectionSet(tmp_path / "set")
    entry = cs.add(picture(), ellipse_mask(), source="../../../etc/passwd\n..\\evil")
    assert (cs.root / entry.image_file).resolve().parent == (cs.root / "images").resolve()
    assert [e.id for e in cs.entries()] == [entry.id]


@pytest.mark.parametrize("image, why", [
    (np.zeros((64, 80, 5), np.uint8), "channels"),                      # issue: 5-channel accepted
    (np.full((64, 80, 3), np.nan, np.float32), "NaN"),                 # issue: all-NaN accepted
    (np.full((64, 80), np.inf, np.float32), "NaN or infinite"),
    (np.zeros((64, 80), dtype=object), "pixel type"),
    (np.zeros((4, 4), np.uint8), "at least 8"),
])
def test_correction_set_refuses_untrainable_images(tmp_path, image, why):
    cs = CorrectionSet(tmp_path / "set")
    mask = np.zeros(image.shape[:2], np.uint8)
    with pytest.raises(ValueError, match=why):
        cs.add(image, mask, source="bad")
    assert not any(p.is_file() for p in cs.root.rglob("*"))


def test_correction_set_refuses_nan_mask(tmp_path):
    mask = ellipse_mask().astype(np.float32)
    mask[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CorrectionSet(tmp_path / "set").add(picture(), mask, source="bad")


# ---- the safe path helper ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/abs", "C:\\x", "a\x00b", None, 3])
def test_child_path_refuses_everything_but_plain_names(tmp_path, name):
    from napari_unetv2.files import UnsafePathError, child_path

    with pytest.raises(UnsafePathError):
        child_path(tmp_path, name)


def test_child_path_accepts_unicode_and_spaces(tmp_path):
    from napari_unetv2.files import child_path

    assert child_path(tmp_path, "Bild 1 – Patientin é.png") == tmp_path / "Bild 1 – Patientin é.png"


# ---- atomic writes: umask and stale temporaries (issue 12, item 6) ------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    from napari_unetv2.files import atomic_directory, atomic_write_text, write_png_atomic

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_png_atomic(tmp_path / "m.png", ellipse_mask() * 255)
        with atomic_directory(tmp_path / "run") as folder:
            (folder / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == mode
    assert (tmp_path / "run").stat().st_mode & 0o777 == mode | ((mode & 0o444) >> 2)  # + x where r


def test_stale_temporaries_are_cleaned_and_nothing_else(tmp_path):
    from napari_unetv2.files import remove_stale_temporaries

    old_time = time.time() - 2 * 3600
    stale_file = tmp_path / ".summary.csv.k2j4h5g6.tmp"
    stale_dir = tmp_path / ".last.abcd_123.tmp"
    fresh = tmp_path / ".a.png.zzzzzzzz.tmp"
    users_own = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / ".x.toolong123.tmp", tmp_path / "a.png"]
    stale_file.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_text("half")
    fresh.write_text("being written now")
    for path in users_own:
        path.write_text("mine")
    link = tmp_path / ".link.abcdefgh.tmp"
    link.symlink_to(tmp_path / "a.png")
    for path in [stale_file, stale_dir, *users_own]:
        os.utime(path, (old_time, old_time))
    os.utime(link, (old_time, old_time), follow_symlinks=False)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert fresh.exists() and link.is_symlink() and all(p.exists() for p in users_own)


def test_opening_a_correction_set_cleans_a_killed_write(tmp_path):
    cs = CorrectionSet(tmp_path / "set")
    leftover = cs.root / "images" / ".x.png.abcdefgh.tmp"
    leftover.write_bytes(b"half a png")
    os.utime(leftover, (time.time() - 7200,) * 2)
    CorrectionSet(tmp_path / "set")
    assert not leftover.exists()


def test_opening_a_model_store_cleans_a_killed_write(tmp_path):
    store = ModelStore(tmp_path / "models")
    leftover = store.root / ".store.json.abcdefgh.tmp"
    leftover.write_text("{")
    os.utime(leftover, (time.time() - 7200,) * 2)
    ModelStore(tmp_path / "models")
    assert not leftover.exists()


@pytest.mark.parametrize("tested", ["../../victim/forged.png", "tested/../../victim/forged.png", "{victim}/forged.png"])
def test_a_tested_model_mask_named_outside_the_set_is_neither_read_nor_deleted(tmp_path, victim, tested):
    """Session 32's tested model masks (``tested/<id>.png``): the file an entry names is data. One naming a file outside
    the set is not read as the model's mask, and removing the entry deletes nothing."""
    cs = CorrectionSet(tmp_path / "set")
    real = cs.add(picture(), ellipse_mask(), source="real", predicted_mask=ellipse_mask())
    provenance = cs.root / "provenance" / f"{real.id}.json"
    entry = json.loads(provenance.read_text())
    entry["tested_mask_file"] = tested.format(victim=victim).replace("forged", real.id)
    (victim / f"{real.id}.png").write_bytes((cs.root / real.tested_mask_file).read_bytes())
    provenance.write_text(json.dumps(entry))
    before = tree_digest(tmp_path)
    with pytest.raises(ValueError):
        cs.tested_mask(cs.entries()[0])
    with pytest.raises(ValueError):
        cs.remove(real.id)
    assert tree_digest(tmp_path) == before
