"""Encoders: timm backbones that give four feature levels at strides 4, 8, 16 and 32."""
from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF EfficientNet-Lite weights were trained on inputs scaled to [-1, 1].
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)
SYMMETRIC_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class EncoderSpec:
    timm_name: str
    feature_indices: tuple[int, ...]  # which of timm's feature levels have strides 4, 8, 16, 32
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    drop_path_rate: float = 0.0
    family: str = ""


def _pvt(name: str) -> EncoderSpec:
    # The paper's encoder: PVT-v2 with drop-path 0.1, all four stages after their LayerNorm.
    return EncoderSpec(name, (0, 1, 2, 3), IMAGENET_MEAN, IMAGENET_STD, 0.1, "pvt_v2")


def _lite(name: str) -> EncoderSpec:
    # timm's feature level 0 is stride 2; levels 1..4 are strides 4..32.
    return EncoderSpec(name, (1, 2, 3, 4), SYMMETRIC_MEAN, SYMMETRIC_STD, 0.0, "efficientnet_lite")


ENCODERS: dict[str, EncoderSpec] = {
    **{f"pvt_v2_b{i}": _pvt(f"pvt_v2_b{i}") for i in range(6)},
    **{f"tf_efficientnet_lite{i}": _lite(f"tf_efficientnet_lite{i}") for i in range(3)},
}
ALIASES = {f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
ALIASES.update({f"efficientnet-lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)})


def canonical_encoder_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in ENCODERS:
        raise ValueError(
            f"Unknown encoder {name!r}. Choose one of: {', '.join(ENCODERS)} "
            f"(aliases: {', '.join(ALIASES)})."
        )
    return name


class TimmEncoder(nn.Module):
    """A timm classification network pruned after its stride-32 stage.

    Built from the full model (not ``features_only``) so that its parameter names are exactly those of
    timm's ImageNet checkpoints, which makes loading verifiable key by key.
    """

    def __init__(self, name: str, pretrained_from_timm: bool = False, drop_path_rate: float | None = None):
        super().__init__()
        self.name = canonical_encoder_name(name)
        self.spec = ENCODERS[self.name]
        rate = self.spec.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.net = timm.create_model(
            self.spec.timm_name, pretrained=pretrained_from_timm, num_classes=0, drop_path_rate=rate
        )
        reductions = [info["reduction"] for info in self.net.feature_info]
        picked = [reductions[i] for i in self.spec.feature_indices]
        if picked != [4, 8, 16, 32]:
            raise RuntimeError(f"{self.name}: expected strides 4..32 at {self.spec.feature_indices}, got {picked}")
        self.net.prune_intermediate_layers(list(self.spec.feature_indices), prune_head=True, prune_norm=False)
        # timm before 1.0.31 keeps an EfficientNet's 1x1 head conv and its norm when the last stage is kept;
        # nothing reads them (forward_intermediates stops at the stages), and their tensors would make the
        # state dict, and so every checkpoint, depend on timm's version. Later timm removes them the same way.
        for head_part in ("conv_head", "bn2"):
            if self.spec.family == "efficientnet_lite" and not isinstance(getattr(self.net, head_part, None),
                                                                          (nn.Identity, type(None))):
                setattr(self.net, head_part, nn.Identity())
        self.channels = [self.net.feature_info[i]["num_chs"] for i in self.spec.feature_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(
            self.net.forward_intermediates(x, indices=list(self.spec.feature_indices), intermediates_only=True)
        )
