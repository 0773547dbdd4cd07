"""Reading tensors from weight files and loading them strictly: never a silent partial load, never an unpickled object."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Union

import torch
from torch import nn

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl"}


class UntrustedCheckpointError(ValueError):
    """A pickle-based checkpoint was given without saying it is trusted."""


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


def load_weights_only(path: Path):
    """torch.load restricted to tensors and plain containers; anything else is refused with a clear error."""
    import pickle

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{Path(path).name} holds objects other than tensors; refused ({err}).") from err
    except (RuntimeError, EOFError, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        # torch reports a truncated or damaged archive as RuntimeError ("PytorchStreamReader failed ...").
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{Path(path).name} is not a readable PyTorch file (truncated or damaged?): {first_line}") from err


def untrusted_pickle(path: Path) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"{path.name} is a pickle-based file; unpickling an untrusted file can run arbitrary code, so it "
        "is not read. Ask for the model as .safetensors with its .json (what this program writes); a file you "
        "made yourself can be read in Python with trusted=True (then with weights_only=True).")


def read_tensors(path: Union[str, Path], trusted: bool = False) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if path.suffix in PICKLE_SUFFIXES:
        if not trusted:
            raise untrusted_pickle(path)
        state = load_weights_only(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path.name} does not hold a state dict.")
        return dict(state)
    if path.suffix != ".safetensors":
        raise ValueError(f"Unsupported checkpoint type {path.suffix!r}; expected .safetensors.")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path.name} is not a readable safetensors file: {err}") from err
