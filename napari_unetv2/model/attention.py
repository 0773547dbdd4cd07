"""CBAM-style attention applied to each encoder level before channel reduction (channel, then spatial)."""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Sigmoid(MLP(avgpool(f)) + MLP(maxpool(f))) with a shared 1x1-conv MLP C -> C/ratio -> C."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(torch.mean(x, dim=(2, 3), keepdim=True))
        mx = self.mlp(torch.amax(x, dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)  # (B, C, 1, 1)


class SpatialAttention(nn.Module):
    """Sigmoid(conv7x7([mean_c(f), max_c(f)])) -> one map in [0, 1] per pixel."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))  # (B, 1, H, W)
