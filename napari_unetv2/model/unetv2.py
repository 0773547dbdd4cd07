"""U-Net v2 (Peng, Sonka, Chen 2023): encoder -> CBAM attention -> 1x1 reduction -> SDI -> light decoder."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ChannelAttention, SpatialAttention
from .encoders import TimmEncoder, canonical_encoder_name
from .sdi import SDI

STRIDES = (4, 8, 16, 32)
MIN_SIDE = 32


@dataclass
class LevelAttention:
    """What one encoder level attended to, from the same forward pass as the logits.

    channel: (B, C_i) channel-attention weights in [0, 1] (C_i = encoder channels of level i).
    spatial: (B, 1, ceil(H/s), ceil(W/s)) spatial-attention map in [0, 1], s = stride of the level.
    sdi:     (B, c, ceil(H/s), ceil(W/s)) SDI output of the level (the fused skip feature).
    Maps are cropped to the part that covers the input image (padding removed).
    """

    stride: int
    channel: torch.Tensor
    spatial: torch.Tensor
    sdi: torch.Tensor


@dataclass
class UNetV2Output:
    """Result of :meth:`UNetV2.forward`.

    logits: (B, n_classes, H, W) at the input's own size.
    deep_logits: logits of the deeper heads for deep supervision, ordered
        [(B, n, ceil(H/2), ceil(W/2)), (.., ceil(H/4), ..), (.., ceil(H/8), ..)].
    attention: one :class:`LevelAttention` per level (strides 4, 8, 16, 32), only when
        ``return_attention=True``; otherwise None.
    """

    logits: torch.Tensor
    deep_logits: tuple[torch.Tensor, ...]
    attention: Optional[list[LevelAttention]] = None

    @property
    def all_logits(self) -> tuple[torch.Tensor, ...]:
        """Every head, full resolution first: the order the deep-supervision weights refer to."""
        return (self.logits, *self.deep_logits)


def validate_input(x: torch.Tensor) -> torch.Tensor:
    """Return a (B, 3, H, W) float tensor or raise ValueError saying what is wrong."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"UNetV2 expects a torch.Tensor, got {type(x).__name__}.")
    if x.ndim != 4:
        raise ValueError(
            f"UNetV2 expects a 4-D tensor (batch, channels, height, width); got shape {tuple(x.shape)}."
        )
    channels, height, width = x.shape[1:]
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)  # grayscale: the same intensity on the three input channels
    elif channels != 3:
        raise ValueError(
            f"UNetV2 expects 3 channels (RGB) or 1 (grayscale); got {channels}. "
            "Drop an alpha channel or pick three channels before calling the model."
        )
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(f"Input is {height}x{width}; both sides must be at least {MIN_SIDE} pixels.")
    if not x.is_floating_point():
        raise ValueError(f"UNetV2 expects a floating-point tensor, got {x.dtype}; normalise it first.")
    # a finite sum means every value is finite (a NaN or an infinity carries into it). 0.02 ms where isfinite over
    # every value took 0.95 ms at 320x320 (2% of the bundled model's forward pass, 1 thread); only a sum that
    # overflowed is checked value by value
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError("Input contains NaN or infinite values.")
    return x


def pad_to_stride(x: torch.Tensor, stride: int = 32) -> torch.Tensor:
    """Reflect-pad the bottom and right to a multiple of ``stride`` (pads are < 32 <= side, so valid)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if pad_h or pad_w:
        # Reflection keeps image statistics at the border.
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def head_logits(heads: nn.ModuleList, decoded: list[torch.Tensor], height: int, width: int) -> list[torch.Tensor]:
    """One 1x1 head per decoder level (strides 4..32), upsampled x4 and cropped to the unpadded input:
    full resolution, then ceil(H/2), ceil(H/4), ceil(H/8) (deep supervision's order)."""
    outputs = []
    for level, (head, d) in enumerate(zip(heads, decoded)):
        logits = F.interpolate(head(d), scale_factor=4, mode="bilinear", align_corners=False)
        scale = 2**level
        outputs.append(logits[..., : math.ceil(height / scale), : math.ceil(width / scale)])
    return outputs


class UNetV2(nn.Module):
    """U-Net v2 for binary or multi-class 2-D segmentation.

    Args:
        encoder: a timm PVT-v2 (``pvt_v2_b0`` .. ``pvt_v2_b5``, the paper's family) or EfficientNet-Lite
            (``tf_efficientnet_lite0`` .. ``2``) name.
        channels: c, the width of the SDI and decoder (paper: 32).
        num_classes: output channels (1 for a binary mask with a sigmoid).
        pretrained: kept so that ``UNetV2(..., pretrained=False)`` still works; the network loads no
            weights itself: ``napari_unetv2.checkpoints.build_unetv2(..., pretrained=...)`` does.
        drop_path_rate: overrides the encoder default (0.1 for PVT-v2, as in the paper).
        attention_ratio: channel-attention MLP reduction (CBAM: 16).
    """

    def __init__(
        self,
        encoder: str = "pvt_v2_b2",
        channels: int = 32,
        num_classes: int = 1,
        pretrained: bool = False,
        drop_path_rate: Optional[float] = None,
        attention_ratio: int = 16,
    ):
        super().__init__()
        if pretrained:
            raise ValueError(
                "UNetV2 takes architecture arguments only and loads no weights; build it with "
                "napari_unetv2.checkpoints.build_unetv2(encoder, channels, num_classes, pretrained=...)."
            )
        self.encoder_name = canonical_encoder_name(encoder)
        self.channels = channels
        self.num_classes = num_classes
        self.encoder = TimmEncoder(self.encoder_name, drop_path_rate=drop_path_rate)
        # What the encoder's weights are; set by whoever loads them (checkpoints.build_unetv2, load_checkpoint).
        self.encoder_weights = "random initialisation"

        enc_channels = self.encoder.channels
        self.channel_attention = nn.ModuleList(ChannelAttention(ch, attention_ratio) for ch in enc_channels)
        self.spatial_attention = nn.ModuleList(SpatialAttention() for _ in enc_channels)
        self.reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch, channels, 1, bias=False), nn.BatchNorm2d(channels)) for ch in enc_channels
        )
        self.sdi = nn.ModuleList(SDI(channels, len(enc_channels)) for _ in enc_channels)
        # up[k] lifts decoder level k+1 to level k (three transposed convs: 32->16->8->4).
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False)
            for _ in range(len(enc_channels) - 1)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in enc_channels)

    @property
    def normalization(self) -> dict:
        spec = self.encoder.spec
        return {"mean": list(spec.mean), "std": list(spec.std)}

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> UNetV2Output:
        x = validate_input(x)
        height, width = x.shape[-2:]
        features = self.encoder(pad_to_stride(x))
        channel_weights, spatial_maps, reduced = [], [], []
        for f, ca, sa, red in zip(features, self.channel_attention, self.spatial_attention, self.reduce):
            cw = ca(f)
            f = cw * f
            sm = sa(f)
            reduced.append(red(sm * f))
            if return_attention:  # otherwise let the maps go now (less memory on large inputs)
                channel_weights.append(cw)
                spatial_maps.append(sm)

        fused = [sdi(reduced, anchor) for sdi, anchor in zip(self.sdi, reduced)]

        decoded = [fused[-1]]
        for level in range(len(fused) - 2, -1, -1):
            decoded.insert(0, self.up[level](decoded[0]) + fused[level])

        outputs = head_logits(self.heads, decoded, height, width)

        attention = None
        if return_attention:
            attention = []
            for stride, cw, sm, s in zip(STRIDES, channel_weights, spatial_maps, fused):
                h, w = math.ceil(height / stride), math.ceil(width / stride)
                attention.append(LevelAttention(stride, cw.flatten(1), sm[..., :h, :w], s[..., :h, :w]))
        return UNetV2Output(outputs[0], tuple(outputs[1:]), attention)
