import torch
import torch.nn.functional as F

from napari_unetv2.engine.losses import boundary_weights, ce_dice_loss, deep_supervision_loss, structure_loss


def test_boundary_weight_map():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    w = boundary_weights(mask)
    assert w[0, 0, 0, 0] == 1.0 and w[0, 0, 32, 32] == 1.0  # far from the edge
    assert w[0, 0, 16, 32] > 3.0 and w.max() <= 6.0  # on the edge: up to 1 + 5 * 0.5 and more at corners
    manual = 1 + 5 * torch.abs(F.avg_pool2d(mask, 31, 1, 15) - mask)
    assert torch.equal(w, manual)


def test_structure_loss_is_weighted_bce_plus_weighted_iou():
    torch.manual_seed(0)
    mask = (torch.rand(2, 1, 40, 40) > 0.5).float()
    logits = torch.randn(2, 1, 40, 40)
    w = boundary_weights(mask)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    wbce = (w * bce).sum((2, 3)) / w.sum((2, 3))
    p = torch.sigmoid(logits)
    inter, union = (p * mask * w).sum((2, 3)), ((p + mask) * w).sum((2, 3))
    expected = (wbce + 1 - (inter + 1) / (union - inter + 1)).mean()
    assert torch.allclose(structure_loss(logits, mask), expected)


def test_losses_prefer_the_right_answer():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    good, bad = (mask * 2 - 1) * 8, -(mask * 2 - 1) * 8
    for fn in (structure_loss, ce_dice_loss):
        assert fn(good, mask) < 0.1 < fn(bad, mask)


def test_deep_supervision_upsamples_and_weights_heads():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    full = (mask * 2 - 1) * 8
    half = F.interpolate(full, size=(16, 16))
    zero_deep = deep_supervision_loss([full, torch.zeros(1, 1, 16, 16)], mask, (1, 0))
    assert torch.allclose(zero_deep, structure_loss(full, mask))
    mixed = deep_supervision_loss([full, half], mask, (8, 4))
    assert mixed.ndim == 0 and torch.isfinite(mixed)
