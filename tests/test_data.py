import numpy as np
import pytest
from imageio.v3 import imwrite

from napari_unetv2.engine.data import NoUsablePairsError, PairDataset, find_pairs, split_pairs
from napari_unetv2.files import read_mask


def rgb(h=40, w=50):
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def mask(h=40, w=50, high=255):
    m = np.zeros((h, w), np.uint8)
    m[10:20, 10:30] = high
    return m


def test_images_masks_layout(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        imwrite(tmp_path / "images" / f"{name}.jpg", rgb())
        imwrite(tmp_path / "masks" / f"{name}.png", mask())
    report = find_pairs(tmp_path)
    assert [p.stem for p in report.pairs] == ["a", "b"] and not report.skipped


@pytest.mark.parametrize("suffix", ["_mask", "_segmentation", "_lesion"])
def test_suffix_layouts(tmp_path, suffix):
    imwrite(tmp_path / "x1.jpg", rgb())
    imwrite(tmp_path / f"x1{suffix}.png", mask())
    assert [p.stem for p in find_pairs(tmp_path).pairs] == ["x1"]


def test_isic_and_ph2_nested_layouts(tmp_path):
    (tmp_path / "ISIC-2017_Training_Data").mkdir()
    (tmp_path / "ISIC-2017_Training_Part1_GroundTruth").mkdir()
    imwrite(tmp_path / "ISIC-2017_Training_Data" / "ISIC_0000000.jpg", rgb())
    imwrite(tmp_path / "ISIC-2017_Training_Part1_GroundTruth" / "ISIC_0000000_segmentation.png", mask())
    ph2 = tmp_path / "IMD002"
    (ph2 / "IMD002_Dermoscopic_Image").mkdir(parents=True)
    (ph2 / "IMD002_lesion").mkdir()
    imwrite(ph2 / "IMD002_Dermoscopic_Image" / "IMD002.bmp", rgb())
    imwrite(ph2 / "IMD002_lesion" / "IMD002_lesion.bmp", mask())
    assert sorted(p.stem for p in find_pairs(tmp_path).pairs) == ["IMD002", "ISIC_0000000"]


def test_mask_encodings(tmp_path):
    imwrite(tmp_path / "m255.png", mask(high=255))
    imwrite(tmp_path / "m1.png", mask(high=1))
    imwrite(tmp_path / "mrgb.png", np.stack([mask(high=255)] * 3, axis=-1))
    for name in ("m255", "m1", "mrgb"):
        m = read_mask(tmp_path / f"{name}.png")
        assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1} and m.sum() == 200


def test_junk_missing_and_mismatched_are_reported(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    imwrite(tmp_path / "images" / "good.png", rgb())
    imwrite(tmp_path / "masks" / "good.png", mask())
    imwrite(tmp_path / "images" / "nomask.png", rgb())
    imwrite(tmp_path / "images" / "small.png", rgb(20, 20))
    imwrite(tmp_path / "masks" / "small.png", mask())
    imwrite(tmp_path / "masks" / "orphan.png", mask())
    (tmp_path / "images" / "notes.txt").write_text("hello")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    imwrite(tmp_path / "masks" / "broken.png", mask())
    report = find_pairs(tmp_path)
    assert [p.stem for p in report.pairs] == ["good"]
    reasons = {path.name: why for path, why in report.skipped}
    assert reasons["notes.txt"] == "not an image file"
    assert reasons["nomask.png"] == "no mask found"
    assert "differ in size" in reasons["small.png"]
    assert reasons["orphan.png"] == "no image found for this mask"
    assert reasons["broken.jpg"] == "unreadable image file"
    assert "5 files skipped" in report.summary()


def test_no_usable_pair_says_why(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    imwrite(tmp_path / "lonely.png", rgb())
    with pytest.raises(NoUsablePairsError, match="no mask found"):
        find_pairs(tmp_path)
    with pytest.raises(NoUsablePairsError, match="not a folder"):
        find_pairs(tmp_path / "missing")


def test_split_is_deterministic_by_seed(tmp_path):
    for i in range(10):
        imwrite(tmp_path / f"i{i}.png", rgb())
        imwrite(tmp_path / f"i{i}_mask.png", mask())
    pairs = find_pairs(tmp_path).pairs
    a = split_pairs(pairs, 0.3, seed=1)
    assert a == split_pairs(list(reversed(pairs)), 0.3, seed=1)
    assert a != split_pairs(pairs, 0.3, seed=2)
    assert len(a[1]) == 3 and not set(a[0]) & set(a[1])


def test_dataset_items(tmp_path):
    imwrite(tmp_path / "z.png", rgb())
    imwrite(tmp_path / "z_mask.png", mask())
    ds = PairDataset(find_pairs(tmp_path).pairs, (64, 64), {"mode": "zscore"})
    image, m = ds[0]
    assert image.shape == (3, 64, 64) and m.shape == (1, 64, 64)
    assert abs(float(image.mean())) < 1e-4 and set(m.unique().tolist()) == {0.0, 1.0}
