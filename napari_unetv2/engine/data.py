"""Training data: image/mask pairs resized, augmented and normalised for the network."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..files import read_image, read_mask
from ..inference.preprocess import normalize, to_rgb, to_unit_range
from .augment import augment_pair
from .pairs import NoUsablePairsError, Pair, PairReport, find_pairs, split_pairs
from .recipes import AugmentConfig

__all__ = ["NoUsablePairsError", "Pair", "PairDataset", "PairReport", "find_pairs", "load_pair_arrays",
           "resize_tensor", "resized_pair", "split_pairs"]


def load_pair_arrays(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float32 in [0, 1] and (H, W) uint8 0/1."""
    image = to_unit_range(to_rgb(read_image(pair.image)))
    mask = read_mask(pair.mask)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"{pair.image.name}: image {image.shape[:2]} and mask {mask.shape} differ in size.")
    return image, mask


def resize_tensor(image: torch.Tensor, size: Sequence[int], is_mask: bool = False) -> torch.Tensor:
    """(C, H, W) -> (C, h, w); antialiased bilinear for images, bilinear + 0.5 threshold for masks."""
    out = F.interpolate(image[None].float(), size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=not is_mask)[0]
    return (out >= 0.5).float() if is_mask else out


def resized_pair(pair: Pair, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair at the training input size as the network's data loader sees it: (3, h, w) uint8 image and
    (1, h, w) uint8 0/1 mask (what :class:`PairDataset` caches, and what scripts/pack_pairs.py writes)."""
    image, mask = load_pair_arrays(pair)
    img = resize_tensor(torch.from_numpy(image).permute(2, 0, 1), size)
    msk = resize_tensor(torch.from_numpy(mask)[None].float(), size, is_mask=True)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), msk.to(torch.uint8)


class PairDataset(Dataset):
    """Pairs resized to the recipe's input size (the paper's protocol), augmented, normalised.

    Decoded, resized pairs are cached in memory as uint8 so later epochs skip JPEG decoding.
    """

    def __init__(self, pairs: Sequence[Pair], input_size: Sequence[int], normalization: dict,
                 augment: Optional[AugmentConfig] = None, seed: int = 0):
        self.pairs = list(pairs)
        self.input_size = tuple(input_size)
        self.normalization = normalization
        self.augment = augment
        self.seed = seed
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def _resized(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in self._cache:
            self._cache[index] = resized_pair(self.pairs[index], self.input_size)
        img, msk = self._cache[index]
        return img.float() / 255.0, msk.float()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._resized(index)
        if self.augment is not None:
            image, mask = augment_pair(image, mask, self.augment)
        image = normalize(image[None], self.normalization)[0]
        return image, mask
