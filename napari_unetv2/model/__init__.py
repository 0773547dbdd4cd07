"""U-Net v2 network: nn.Modules only (no napari, files or training here)."""
from .baselines import UNet, UNetPlusPlus
from .encoders import ALIASES, ENCODERS, TimmEncoder, canonical_encoder_name
from .unetv2 import MIN_SIDE, LevelAttention, UNetV2, UNetV2Output, validate_input

__all__ = [
    "ALIASES",
    "ENCODERS",
    "MIN_SIDE",
    "LevelAttention",
    "TimmEncoder",
    "UNet",
    "UNetPlusPlus",
    "UNetV2",
    "UNetV2Output",
    "canonical_encoder_name",
    "validate_input",
]
