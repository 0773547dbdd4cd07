import math

import numpy as np
import pytest

from napari_unetv2.engine.metrics import MetricAccumulator, binarize, dice_iou_mae, hd95


def test_dice_iou_mae_hand_computed():
    gt = np.zeros((4, 4), bool)
    gt[0, :] = True  # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[0, :2] = True
    pred[1, 0] = True  # 3 pixels, 2 overlap
    dice, iou, mae = dice_iou_mae(pred, gt)
    assert dice == pytest.approx((2 * 2 + 1e-5) / (4 + 3 + 1e-5))
    assert iou == pytest.approx((2 + 1e-5) / (4 + 3 - 2 + 1e-5))
    assert mae == pytest.approx(3 / 16)  # 2 missed + 1 false positive


def test_empty_mask_conventions():
    empty = np.zeros((8, 8), bool)
    assert dice_iou_mae(empty, empty) == (1.0, 1.0, 0.0)  # both empty: a perfect frame
    one = empty.copy()
    one[3, 3] = True
    dice, iou, mae = dice_iou_mae(one, empty)  # a false detection on a frame without a polyp
    assert dice < 1e-4 and iou < 1e-4 and mae == pytest.approx(1 / 64)
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(one, empty))


def test_hd95_hand_computed():
    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    b = np.zeros((20, 20), bool)
    b[5:10, 8:13] = True  # the same square moved 3 pixels right
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, a) == 0.0


def test_minmax_normalisation_forces_a_detection():
    prob = np.full((4, 4), 0.1)
    prob[0, 0] = 0.2
    assert not binarize(prob).any()
    assert binarize(prob, minmax=True).sum() == 1


def test_accumulator_means_and_pooled_counts():
    acc = MetricAccumulator()
    gt = np.zeros((2, 2), bool)
    gt[0] = True
    acc.add("a", gt, gt)  # perfect
    acc.add("b", np.zeros((2, 2), bool), gt)  # missed entirely
    s = acc.summary()
    assert s["n"] == 2 and s["dice"] == pytest.approx((1.0 + 1e-5 / (2 + 1e-5)) / 2)
    assert s["mae"] == pytest.approx((0 + 0.5) / 2)
    assert s["hd95_undefined"] == 1
    pooled = acc.pooled()
    assert (acc.tp, acc.fp, acc.fn) == (2, 0, 2)
    assert pooled["dsc"] == pytest.approx(4 / 6) and pooled["iou"] == pytest.approx(2 / 4)


def test_the_evaluation_table_says_how_many_images_hd95_left_out():
    """Trial of session 28: a group of three with two polyps missed printed "HD95 0.00" (the one empty/empty image's),
    the two left out said only in the JSON."""
    from napari_unetv2.engine.evaluate import format_table

    group = {"n": 3, "dice": 0.33, "iou": 0.33, "mae": 0.1, "hd95": 0.0, "hd95_undefined": 2}
    table = format_table({**group, "domains": {"endocv2021-seq": group}})
    rows = [line for line in table.splitlines() if line.startswith(("all", "endocv2021-seq"))]
    assert len(rows) == 2 and all(row.endswith("2 (one mask empty)") for row in rows)
    assert "left out" in table.splitlines()[0]
