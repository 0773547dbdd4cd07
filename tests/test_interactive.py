"""Click corrections without Qt: the session's clicks, box and undo, the simulated user, the box's model pass."""
from types import SimpleNamespace

import numpy as np
import pytest

from napari_unetv2.corrections import CorrectionSet
from napari_unetv2.interactive import ClickSession, next_click
from napari_unetv2.interactive.box import box_probability, clip_box
from napari_unetv2.interactive.simulate import clicks_to_reach

SIZE = 200


def disk_mask(cy, cx, r, size=SIZE):
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_positive_click_adds_a_missed_blob_the_model_half_saw_and_nothing_else():
    probability = np.full((SIZE, SIZE), 0.01, np.float32)
    found, missed = disk_mask(50, 50, 15), disk_mask(140, 140, 12)
    probability[found] = 0.9
    probability[missed] = 0.35  # below the 0.5 threshold: not in the proposal
    mask = (probability >= 0.5).astype(np.uint8)
    session = ClickSession(mask, probability)
    edit = session.positive(140, 140)
    assert mask[missed].all()  # edited in place: the array handed in (a layer's data) changes
    assert np.array_equal(mask.astype(bool), found | missed)
    assert edit.pixels == missed.sum() and session.clicks == 1


def test_positive_click_where_the_model_saw_nothing_fills_the_gap_up_to_the_mask_only():
    probability = np.zeros((SIZE, SIZE), np.float32)
    mask = disk_mask(100, 100, 30).astype(np.uint8)
    probability[mask > 0] = 0.9
    before = mask.copy()
    session = ClickSession(mask, probability)
    session.positive(100, 140)  # 10 px outside the mask's edge
    added = (mask > 0) & (before == 0)
    assert 200 < added.sum() < np.pi * 11 ** 2
    yy, xx = np.nonzero(added)
    assert ((yy - 100) ** 2 + (xx - 140) ** 2).max() <= 10 ** 2


def test_a_positive_click_never_floods_the_frame():
    probability = np.full((SIZE, SIZE), 0.45, np.float32)  # one huge uncertain field
    mask = np.zeros((SIZE, SIZE), np.uint8)
    session = ClickSession(mask, probability)
    session.positive(100, 100)
    assert 0 < mask.sum() <= np.pi * (session.radius + 1) ** 2 < 0.2 * mask.size


def test_negative_click_removes_a_false_blob_and_keeps_the_true_object():
    probability = np.zeros((SIZE, SIZE), np.float32)
    true_object, false_blob = disk_mask(60, 60, 30), disk_mask(150, 150, 10)
    probability[true_object | false_blob] = 0.95
    mask = (true_object | false_blob).astype(np.uint8)
    ClickSession(mask, probability).negative(150, 150)
    assert np.array_equal(mask.astype(bool), true_object)


def test_negative_click_on_an_unsure_fringe_removes_the_fringe_near_it_not_the_confident_core():
    core = disk_mask(100, 100, 40)
    fringe = disk_mask(100, 100, 48) & ~core & (np.mgrid[:SIZE, :SIZE][1] > 100)  # right half only
    probability = np.zeros((SIZE, SIZE), np.float32)
    probability[core], probability[fringe] = 0.95, 0.6
    mask = (core | fringe).astype(np.uint8)
    ClickSession(mask, probability).negative(100, 144)
    assert mask[core].all()
    near = fringe & disk_mask(100, 144, 10)  # reach: 2.5 x the click's depth (4 px) in the mask
    assert not mask[near].any()
    assert mask[fringe & ~disk_mask(100, 144, 11)].all()  # and no further


def test_undo_restores_exactly_each_click_in_turn():
    rng = np.random.default_rng(0)
    probability = rng.random((SIZE, SIZE)).astype(np.float32)
    mask = (probability >= 0.5).astype(np.uint8)
    states = [mask.copy()]
    session = ClickSession(mask, probability)
    for y, x, positive in ((20, 20, True), (120, 80, False), (60, 160, True)):
        (session.positive if positive else session.negative)(y, x)
        states.append(mask.copy())
    assert session.clicks == 3
    for expected in reversed(states[:-1]):
        assert session.undo() is not None
        assert np.array_equal(mask, expected)
    assert session.undo() is None and session.clicks == 0


@pytest.mark.parametrize("kind", ["positive", "negative", "box"])
def test_undoing_a_click_keeps_brush_work_done_after_it(kind):
    """Undo restored the click's whole bounding box: a brush stroke painted after the click, inside that box, went
    with it (493 of 493 pixels in the session-26 trial)."""
    probability = np.zeros((SIZE, SIZE), np.float32)
    probability[disk_mask(100, 100, 40)] = 0.9 if kind == "negative" else 0.35  # seen (to remove) or half seen
    mask = (probability >= 0.5).astype(np.uint8)
    session = ClickSession(mask, probability)
    if kind == "box":
        edit = session.box(50, 50, 150, 150, np.where(disk_mask(100, 100, 40), 0.9, 0.0)[50:150, 50:150])
    else:
        edit = (session.positive if kind == "positive" else session.negative)(100, 100)
    assert edit.pixels > 0
    window, before, after = edit.window, edit.previous_mask.copy(), mask[edit.window].copy()
    # the user then paints, inside the click's box, over pixels the click left as they were
    stroke = np.zeros(before.shape, bool)
    stroke[:, : before.shape[1] // 3] = True
    stroke &= before == after
    assert stroke.any()
    mask[window][stroke] = 1 - after[stroke]
    session.undo()
    assert (mask[window][stroke] == 1 - after[stroke]).all()  # the stroke stays
    assert np.array_equal(mask[window][~stroke], before[~stroke])  # the click itself is undone


def test_box_changes_only_the_box_and_undo_restores_mask_and_probability():
    probability = np.full((SIZE, SIZE), 0.2, np.float32)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:10] = 1
    session = ClickSession(mask, probability)
    before_mask, before_probability = mask.copy(), session.probability.copy()
    inside = np.zeros((60, 50), np.float32)
    inside[20:40, 15:35] = 0.9
    edit = session.box(100, 80, 160, 130, inside)
    outside = np.ones((SIZE, SIZE), bool)
    outside[100:160, 80:130] = False
    assert np.array_equal(mask[outside], before_mask[outside])
    assert mask[100:160, 80:130].sum() == 400 == edit.pixels
    assert np.array_equal(session.probability[100:160, 80:130], inside)
    session.undo()
    assert np.array_equal(mask, before_mask) and np.array_equal(session.probability, before_probability)


def test_bad_clicks_and_boxes_are_refused_and_change_nothing():
    probability = np.zeros((50, 60), np.float32)
    mask = np.zeros((50, 60), np.uint8)
    session = ClickSession(mask, probability)
    with pytest.raises(ValueError, match="outside"):
        session.positive(55, 10)
    with pytest.raises(ValueError, match="do not fit"):
        session.box(40, 10, 60, 30, np.zeros((20, 20)))
    with pytest.raises(ValueError, match="same shape"):
        ClickSession(mask, np.zeros((50, 61)))
    assert session.clicks == 0 and not mask.any()


def test_clip_box_orders_corners_clips_to_the_image_and_refuses_a_sliver():
    assert clip_box((100, 120), 90.4, 130, -5, 10) == (0, 10, 90, 120)
    with pytest.raises(ValueError, match="at least"):
        clip_box((100, 120), 10, 10, 14, 60)


def test_box_probability_runs_the_model_on_the_crop_with_context_and_returns_the_box_only():
    seen = {}

    def predict(crop, rgb=None):
        seen["shape"] = crop.shape
        probability = np.zeros(crop.shape[:2], np.float32)
        probability[crop[..., 0] > 0] = 1.0  # "finds" the bright square
        return SimpleNamespace(probability=probability)

    image = np.zeros((200, 300, 3), np.uint8)
    image[110:130, 160:180] = 255
    frame = np.zeros((200, 300), np.float32)
    result = box_probability(SimpleNamespace(predict=predict), image, (100, 150, 140, 190), frame)
    assert seen["shape"] == (80, 80, 3)  # half the box's size of context on each side
    assert result.shape == (40, 40)
    assert result[10:30, 10:30].min() == 1.0 and result.sum() == 400 * 1.0  # stretched to [0, 1]


def test_simulated_user_clicks_the_largest_error_at_its_deepest_point():
    truth = disk_mask(60, 60, 25) | disk_mask(150, 150, 8)
    mask = disk_mask(60, 60, 25) | disk_mask(150, 40, 4)  # misses the small blob; a tiny false blob
    click = next_click(mask, truth)
    assert click.positive and (click.y, click.x) == (150, 150)
    click = next_click(disk_mask(60, 60, 25) | disk_mask(150, 40, 12), truth | disk_mask(150, 40, 2))
    assert not click.positive and np.hypot(click.y - 150, click.x - 40) > 2
    assert next_click(truth, truth) is None


def test_noc_is_the_first_click_count_reaching_the_target_or_the_cap():
    assert clicks_to_reach([0.5, 0.8, 0.91, 0.95], 0.90) == 2
    assert clicks_to_reach([0.95], 0.90) == 0
    assert clicks_to_reach([0.5] * 21, 0.90, cap=20) == 20


def test_the_click_count_goes_into_the_correction_provenance(tmp_path):
    corrections = CorrectionSet(tmp_path / "set")
    image = np.zeros((32, 40, 3), np.uint8)
    mask = np.zeros((32, 40), np.uint8)
    mask[5:20, 5:20] = 1
    corrections.add(image, mask, source="frame", clicks=4)
    corrections.add(image, mask, source="painted")
    entries = {e.source: e for e in corrections.entries()}
    assert entries["frame"].clicks == 4 and entries["painted"].clicks is None
