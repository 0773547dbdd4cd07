"""U-Net v2 network: nn.Modules only (no napari, files or training here)."""
from .architectures import ARCHITECTURES, DEFAULT_ARCH, arch_of, build_network, network_name
from .baselines import UNet, UNetPlusPlus
from .encoders import ALIASES, ENCODERS, TimmEncoder, canonical_encoder_name
from .unetv2 import MIN_SIDE, LevelAttention, UNetV2, UNetV2Output, validate_input

__all__ = [
    "ALIASES",
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "ENCODERS",
    "MIN_SIDE",
    "LevelAttention",
    "TimmEncoder",
    "UNet",
    "UNetPlusPlus",
    "UNetV2",
    "UNetV2Output",
    "arch_of",
    "network_name",
    "build_network",
    "canonical_encoder_name",
    "validate_input",
]
