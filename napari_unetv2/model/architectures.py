"""The networks a checkpoint or a recipe can name (``arch``), and how to build one from its config fields.

``channels`` is c, the decoder width at stride 4: U-Net v2's SDI/decoder width; for the U-Net and UNet++
baselines their decoder widths (c, 2c, 4c) at strides 4, 8, 16 (the paper's comparison uses c = 64).
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from .baselines import UNet, UNetPlusPlus
from .unetv2 import UNetV2

ARCHITECTURES = {"unetv2": UNetV2, "unet": UNet, "unetpp": UNetPlusPlus}
DEFAULT_ARCH = "unetv2"


def network_name(arch: str) -> str:
    """How the network an ``arch`` names is called to users: "U-Net v2", "U-Net", "UNet++"."""
    return getattr(ARCHITECTURES.get(arch), "architecture", "") or ("U-Net v2" if arch == DEFAULT_ARCH else arch)


def arch_of(model: nn.Module) -> str:
    """The ``arch`` name of a network built here (the most specific class wins)."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    for name, cls in ARCHITECTURES.items():
        if isinstance(model, cls):
            return name
    raise ValueError(f"{type(model).__name__} is not one of the known architectures ({', '.join(ARCHITECTURES)}).")


def build_network(arch: str = DEFAULT_ARCH, encoder: str = "pvt_v2_b2", channels: int = 32, num_classes: int = 1,
                  drop_path_rate: Optional[float] = None, attention_ratio: int = 16) -> nn.Module:
    """A randomly initialised network of architecture ``arch`` (weights are loaded by ``checkpoints``)."""
    if arch == "unetv2":
        return UNetV2(encoder, channels=channels, num_classes=num_classes, drop_path_rate=drop_path_rate,
                      attention_ratio=attention_ratio)
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch](encoder, num_classes=num_classes, decoder_channels=(channels, 2 * channels, 4 * channels),
                                   drop_path_rate=drop_path_rate)
    raise ValueError(f"Unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}.")
