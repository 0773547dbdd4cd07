"""Paired augmentation in plain torch (flips, 90-degree turns, rotation/scale, colour jitter).

Plain torch keeps the dependency list short and runs the same on CPU and GPU; torchvision's v2
transforms would also do, but need tv_tensors wrapping for the mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .recipes import AugmentConfig


def _affine(image: torch.Tensor, mask: torch.Tensor, degrees: float, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)[None]
    grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
    mask = F.grid_sample(mask[None], grid, mode="nearest", padding_mode="reflection", align_corners=False)[0]
    return image, mask


def augment_pair(image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random augmentation of a (3, H, W) image in [0, 1] and its (1, H, W) mask, using torch's RNG."""
    if cfg.hflip and torch.rand(()) < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    if cfg.vflip and torch.rand(()) < 0.5:
        image, mask = image.flip(-2), mask.flip(-2)
    if cfg.rot90 and image.shape[-1] == image.shape[-2]:
        k = int(torch.randint(0, 4, ()))
        image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    low, high = cfg.scale_range
    if cfg.rotate_degrees > 0 or low != 1.0 or high != 1.0:
        degrees = float(torch.empty(()).uniform_(-cfg.rotate_degrees, cfg.rotate_degrees)) if cfg.rotate_degrees else 0.0
        scale = float(torch.empty(()).uniform_(low, high))
        image, mask = _affine(image, mask, degrees, scale)
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        brightness = 1 + float(torch.empty(()).uniform_(-j, j))
        contrast = 1 + float(torch.empty(()).uniform_(-j, j))
        saturation = 1 + float(torch.empty(()).uniform_(-j, j))
        image = image * brightness
        mean = image.mean()
        image = (image - mean) * contrast + mean
        gray = image.mean(dim=0, keepdim=True)
        image = (image - gray) * saturation + gray
        image = image.clamp(0, 1)
    return image.contiguous(), mask.contiguous()
