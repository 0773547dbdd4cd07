"""Strict, explained state-dict loading: never a silent partial load."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class WeightsMismatchError(ValueError):
    """The weights do not fit the network; the message lists what differs."""


def describe_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], limit: int = 8) -> str:
    """Human-readable list of missing keys, unexpected keys and shape differences ('' when they fit)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {tuple(given[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape differences", shapes)):
        if items:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {title}: " + ", ".join(items[:limit]) + more)
    return "; ".join(parts)


def load_exact(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` only if every key and shape matches; otherwise raise and change nothing."""
    expected = module.state_dict()
    problem = describe_mismatch(expected, state)
    if problem:
        raise WeightsMismatchError(f"{what} does not fit this network: {problem}.")
    module.load_state_dict(state, strict=True)
