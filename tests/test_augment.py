import torch

from napari_unetv2.engine.augment import augment_pair
from napari_unetv2.engine.recipes import AugmentConfig


def test_geometric_augmentation_keeps_image_and_mask_aligned():
    torch.manual_seed(0)
    mask = torch.zeros(1, 64, 64)
    mask[:, 10:30, 5:20] = 1
    image = mask.repeat(3, 1, 1)  # the image is the mask: any misalignment would show
    cfg = AugmentConfig(hflip=True, vflip=True, rot90=True, rotate_degrees=30, scale_range=(0.8, 1.2))
    for _ in range(20):
        img, m = augment_pair(image, mask, cfg)
        assert img.shape == (3, 64, 64) and m.shape == (1, 64, 64)
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        agree = ((img[0] > 0.5).float() == m[0]).float().mean()
        assert agree > 0.97


def test_colour_jitter_leaves_mask_and_range():
    torch.manual_seed(1)
    image, mask = torch.rand(3, 32, 32), (torch.rand(1, 32, 32) > 0.5).float()
    img, m = augment_pair(image, mask, AugmentConfig(hflip=False, vflip=False, color_jitter=0.3))
    assert torch.equal(m, mask) and not torch.equal(img, image) and img.min() >= 0 and img.max() <= 1
