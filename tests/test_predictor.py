import numpy as np
import pytest
import torch
from conftest import shared_data

from napari_unetv2._sample_data import load_sample
from napari_unetv2.files import read_image
from napari_unetv2.inference import PredictionCancelled, Predictor
from napari_unetv2.inference.preprocess import to_unit_range

# Tiled vs whole-image agreement on a 288x288 crop with 256 tiles (just above the tile size; README,
# "Tiling", gives the measured figures). Where the object fills the crop, each window sees only part of it
# and the probabilities differ more (Kvasir sample); elsewhere they agree closely (PolypGen sample).
TILE_AGREEMENT = {  # sample: (max abs, mean abs, fraction of mask pixels that differ)
    "polyp": (0.05, 0.002, 0.001),
    "kvasir": (0.6, 0.05, 0.07),
}


@pytest.fixture(scope="module")
def predictor():
    return Predictor(device="cpu")  # the bundled model (or the labelled untrained one)


def test_resize_mode_returns_image_grid(predictor):
    image, _, _ = load_sample("kvasir")
    pred = predictor.predict(image, return_attention=True)
    assert pred.probability.shape == image.shape[:2] and pred.probability.dtype == np.float32
    assert set(np.unique(pred.mask)) <= {0, 1}
    assert len(pred.attention) == 4
    for data in pred.attention.values():
        assert data.shape == image.shape[:2] and data.min() >= 0 and data.max() <= 1


def test_image_smaller_than_tile_equals_single_forward_pass(predictor):
    image = load_sample("polyp")[0][:200, :280]
    tiled = predictor.predict(image, mode="tile", tile_size=512).probability
    x = torch.from_numpy(to_unit_range(image)).permute(2, 0, 1)[None]
    from napari_unetv2.inference.preprocess import normalize

    with torch.no_grad():
        direct = torch.sigmoid(predictor.model(normalize(x, predictor.config.normalization)).logits)[0, 0].numpy()
    assert np.abs(tiled - direct).max() < 1e-5


def test_tiled_agrees_with_untiled_just_above_tile_size(predictor):
    for key, (max_abs, mean_abs, mask_diff) in TILE_AGREEMENT.items():
        image = load_sample(key)[0][:288, :288]  # tile 256 + 32: two windows per axis
        whole = predictor.predict(image, mode="tile", tile_size=512).probability
        tiled = predictor.predict(image, mode="tile", tile_size=256).probability
        diff = np.abs(whole - tiled)
        assert diff.max() < max_abs, key
        assert diff.mean() < mean_abs, key
        assert np.mean((whole >= 0.5) != (tiled >= 0.5)) < mask_diff, key


def test_full_resolution_frame(predictor):
    folder = shared_data("polypgen_fullres", "images")
    image = read_image(folder / "14_endocv2021_positive_782.jpg")
    assert image.shape == (1080, 1920, 3)
    for mode in ("resize", "tile"):
        pred = predictor.predict(image, mode=mode, tile_size=512)
        assert pred.probability.shape == image.shape[:2]


def test_uint16_and_float_inputs(predictor):
    image = load_sample("polyp")[0]
    as_float = image.astype(np.float32) / 255.0
    a = predictor.predict(image).probability
    b = predictor.predict(as_float).probability
    assert np.abs(a - b).max() < 1e-5  # [0, 1] floats are taken as they are: the same as uint8 / 255
    twelve_bit = (image.astype(np.uint16) * 16)  # 12-bit data in uint16 -> min-max rule
    c = predictor.predict(twelve_bit)
    assert c.probability.shape == image.shape[:2]
    assert to_unit_range(twelve_bit).max() == pytest.approx(1.0)


def test_scaling_rule():
    assert to_unit_range(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert to_unit_range(np.array([[0.0, 0.5]])).tolist() == [[0.0, 0.5]]
    assert to_unit_range(np.array([[0.0, 200.0]])) == pytest.approx(np.array([[0.0, 200 / 255]]))
    assert to_unit_range(np.array([[-5.0, 5.0]])).tolist() == [[0.0, 1.0]]
    assert to_unit_range(np.full((2, 2), 1000, np.uint16)).max() == 0.0


def test_stack_slice_by_slice_with_progress(predictor):
    image = load_sample("polyp")[0][..., 1]
    stack = np.stack([image] * 5)
    calls = []
    pred = predictor.predict(stack, progress=lambda d, t: calls.append((d, t)))
    assert pred.probability.shape == stack.shape and pred.mask.shape == stack.shape
    assert calls == [(i, 5) for i in range(1, 6)]
    assert np.allclose(pred.probability[0], pred.probability[4])


def test_rgba_alpha_dropped(predictor):
    image = load_sample("polyp")[0]
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert np.array_equal(predictor.predict(rgba).probability, predictor.predict(image).probability)


def test_cancel_between_tiles(predictor):
    image = np.zeros((512, 512, 3), np.uint8)
    seen = []
    with pytest.raises(PredictionCancelled):
        predictor.predict(image, mode="tile", tile_size=64, progress=lambda d, t: seen.append(d),
                          should_stop=lambda: len(seen) >= 2)
    assert len(seen) == 2


@pytest.mark.parametrize(
    "image, words",
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((2, 2, 40, 40, 3), np.uint8), "5-D"),
        (np.zeros((40, 40, 2), np.uint8), "2 channels"),
        (np.zeros((3, 40, 40, 5), np.uint8), "C in 1/3/4"),
        (np.full((40, 40), np.nan, np.float32), "NaN"),
        (np.zeros((4, 40), np.uint8), "at least"),
    ],
)
def test_bad_inputs(predictor, image, words):
    with pytest.raises(ValueError, match=words):
        predictor.predict(image)


def test_precision_is_float32_by_default_and_float16_only_on_cuda():
    import contextlib

    from napari_unetv2.inference import Predictor

    predictor = Predictor(device="cpu")
    assert predictor.precision == "float32"
    assert isinstance(predictor._autocast(), contextlib.nullcontext)
    with pytest.raises(ValueError, match="for CUDA devices"):
        Predictor(device="cpu", precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        Predictor(device="cpu", precision="bfloat16")


def test_a_small_colour_image_read_as_a_stack_gets_a_message_that_says_so():
    from napari_unetv2.inference.predictor import check_image_shape

    with pytest.raises(ValueError, match="open it as RGB.*the Batch folder widget and `unetv2 predict` read it as colour"):
        check_image_shape((20, 20, 3), rgb=False)  # how napari opens a 20x20 RGB file
    assert check_image_shape((20, 20, 3), rgb=True) is False  # as RGB it is a fine image
