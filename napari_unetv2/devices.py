"""Pick the compute device: auto -> CUDA, then Apple MPS, then CPU; explicit choices are checked."""
from __future__ import annotations

import torch


def available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] + names
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.insert(0, "mps")
    return names


def resolve_device(choice: str | torch.device | None = "auto") -> torch.device:
    """Return a usable torch.device or raise ValueError naming what is available."""
    if choice is None or str(choice) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"Unknown device {choice!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Device {choice!r} requested but CUDA is not available here. Available: {available_devices()}.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"Device {choice!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s).")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError(f"Device 'mps' requested but Apple MPS is not available here. Available: {available_devices()}.")
    elif device.type != "cpu":
        raise ValueError(f"Unsupported device {choice!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    return device
