"""The paper's comparison networks on the same encoder: U-Net and UNet++ decoders over PVT-v2 (or any
encoder of ``encoders.py``), returning :class:`UNetV2Output` so the training engine, the losses and the
predictor take them as they take U-Net v2.

Both use the standard decoder block (as in segmentation_models_pytorch, which the U-Net v2 authors'
comparisons follow): upsample x2, concatenate the skip features, two 3x3 conv + BN + ReLU. Decoder widths
(64, 128, 256) at strides 4, 8, 16; the stride-32 encoder level is the bottleneck. Heads, one per stride
(4, 8, 16, 32), upsampled x4 as in U-Net v2, give the same deep-supervision outputs. UNet++ (Zhou et al.
2018) adds the nested dense skip pathways X[i][j]; its heads read the last node of each level.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import TimmEncoder, canonical_encoder_name
from .unetv2 import UNetV2Output, head_logits, pad_to_stride, validate_input

DECODER_CHANNELS = (64, 128, 256)


class ConvBlock(nn.Sequential):
    """Two 3x3 conv + BatchNorm + ReLU: the U-Net decoder block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def up2(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class _EncoderDecoder(nn.Module):
    """What both baselines share with UNetV2: encoder, input checks, padding, heads, config fields."""

    architecture = ""

    def __init__(self, encoder: str, num_classes: int, decoder_channels: Sequence[int],
                 drop_path_rate: Optional[float]):
        super().__init__()
        self.encoder_name = canonical_encoder_name(encoder)
        self.num_classes = num_classes
        self.decoder_channels = tuple(decoder_channels)
        self.channels = self.decoder_channels[0]
        self.encoder = TimmEncoder(self.encoder_name, drop_path_rate=drop_path_rate)
        self.encoder_weights = "random initialisation"
        level_channels = [*self.decoder_channels, self.encoder.channels[-1]]
        self.heads = nn.ModuleList(nn.Conv2d(ch, num_classes, 1) for ch in level_channels)

    @property
    def normalization(self) -> dict:
        spec = self.encoder.spec
        return {"mean": list(spec.mean), "std": list(spec.std)}

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> UNetV2Output:
        if return_attention:
            raise ValueError(f"{self.architecture} has no attention maps; call it with return_attention=False.")
        x = validate_input(x)
        height, width = x.shape[-2:]
        decoded = self.decode(self.encoder(pad_to_stride(x)))
        outputs = head_logits(self.heads, decoded, height, width)
        return UNetV2Output(outputs[0], tuple(outputs[1:]))


class UNet(_EncoderDecoder):
    """U-Net decoder over a four-level encoder (paper's comparison: U-Net (PVT-v2-b2))."""

    architecture = "U-Net"

    def __init__(self, encoder: str = "pvt_v2_b2", num_classes: int = 1,
                 decoder_channels: Sequence[int] = DECODER_CHANNELS, drop_path_rate: Optional[float] = None):
        super().__init__(encoder, num_classes, decoder_channels, drop_path_rate)
        enc = self.encoder.channels
        below = [*self.decoder_channels[1:], enc[-1]]  # what arrives from the level below
        self.blocks = nn.ModuleList(ConvBlock(below[i] + enc[i], self.decoder_channels[i]) for i in range(3))

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        decoded = [features[-1]]
        for level in (2, 1, 0):
            skip = features[level]
            decoded.insert(0, self.blocks[level](torch.cat([up2(decoded[0], skip), skip], dim=1)))
        return decoded


class UNetPlusPlus(_EncoderDecoder):
    """UNet++ decoder (nested dense skips) over a four-level encoder (paper's comparison: UNet++ (PVT-v2-b2)).

    Node X[i][j] (level i, column j >= 1) = block(cat(X[i][0..j-1], up(X[i+1][j-1]))), for i + j <= 3;
    X[i][0] are the encoder features.
    """

    architecture = "UNet++"

    def __init__(self, encoder: str = "pvt_v2_b2", num_classes: int = 1,
                 decoder_channels: Sequence[int] = DECODER_CHANNELS, drop_path_rate: Optional[float] = None):
        super().__init__(encoder, num_classes, decoder_channels, drop_path_rate)
        enc = self.encoder.channels
        width = [*self.decoder_channels, enc[-1]]  # channels of X[i][j >= 1] per level (level 3: encoder only)

        def node_in(i: int, j: int) -> int:
            same_level = enc[i] + width[i] * (j - 1)
            below = enc[i + 1] if j == 1 else width[i + 1]
            return same_level + below

        self.nodes = nn.ModuleDict({
            f"{i}_{j}": ConvBlock(node_in(i, j), width[i]) for j in range(1, 4) for i in range(0, 4 - j)
        })

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        grid = {(i, 0): f for i, f in enumerate(features)}
        for j in range(1, 4):
            for i in range(0, 4 - j):
                same = [grid[(i, k)] for k in range(j)]
                grid[(i, j)] = self.nodes[f"{i}_{j}"](torch.cat([*same, up2(grid[(i + 1, j - 1)], same[0])], dim=1))
        return [grid[(i, 3 - i)] for i in range(4)]
