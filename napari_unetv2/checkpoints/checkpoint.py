"""Checkpoints: tensors in safetensors, everything else in a JSON config beside them.

``model.safetensors`` + ``model.json``. Pickles (.pt/.pth) are refused unless the caller says the file
is trusted, and even then only read with ``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..files import atomic_write_bytes, atomic_write_text, interrupts_deferred, read_json
from ..files.times import now_stamp
from ..model import ALIASES, ARCHITECTURES, DEFAULT_ARCH, ENCODERS, UNetV2, arch_of, build_network
from ..validation import CHANNELS, IMAGE_SIDE, ConfigError, between, each, one_of, problems, raise_if_problems
from .state_dicts import PICKLE_SUFFIXES, load_exact, read_tensors, untrusted_pickle

FORMAT_VERSION = 1
VERSION_KEY = "napari_unetv2_version"  # safetensors metadata: the version the JSON beside must name
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"
BUNDLED_NAME = "polyp_default.safetensors"
# Models shipped inside the package, by the name users give them (`--checkpoint skin`, the Segment widget).
BUNDLED_MODELS = {"polyp": BUNDLED_NAME, "skin": "skin_default.safetensors"}
DEFAULT_BUNDLED = "polyp"


@dataclass
class ModelConfig:
    """Everything needed to rebuild and use a model, stored as JSON beside its weights.

    normalization: {"mode": "fixed", "mean": [...], "std": [...]} on [0, 1] inputs, or
        {"mode": "zscore"} (per-image mean/std, the nnU-Net/ISIC setup).
    input_size: (height, width) the model was trained at; ``resize`` inference brings frames to it.
    inference_mode: "resize" (whole frame to input_size, the paper's protocol) or "tile" (native
        resolution, sliding window).
    arch: the network (``model/architectures.py``): "unetv2", or the paper's baselines "unet" / "unetpp"
        on the same encoder. Configs written before this field existed are U-Net v2.
    """

    arch: str = DEFAULT_ARCH
    encoder: str = "pvt_v2_b2"
    channels: int = 32
    num_classes: int = 1
    normalization: dict = field(default_factory=lambda: {"mode": "fixed", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    input_size: tuple[int, int] = (352, 352)
    inference_mode: str = "resize"
    threshold: float = 0.5
    recipe: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    encoder_weights: str = "random initialisation"
    version: str = ""
    parent: Optional[str] = None
    name: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """A validated config from JSON data (types and ranges: :meth:`validate`)."""
        if not isinstance(data, dict):
            raise ValueError(f"A model config is a JSON object, not {type(data).__name__}.")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown fields in model config: {sorted(unknown)}")
        data = dict(data)
        if isinstance(data.get("input_size"), list):
            data["input_size"] = tuple(data["input_size"])
        return cls(**data).validate()

    def validate(self) -> "ModelConfig":
        """Types and ranges of every field; raises one ConfigError (a ValueError) listing all problems.

        Checked on load and on save, so a config on which every prediction would fail (a threshold of 2,
        an input size of 0, a normalisation without its mean) is never written nor used.
        """
        found = problems(self, CONFIG_RULES)
        if not found:
            found = _normalization_problems(self.normalization)
        raise_if_problems(found, "Model config")
        return self

    @classmethod
    def for_model(cls, model: UNetV2, **overrides: Any) -> "ModelConfig":
        norm = {"mode": "fixed", **model.normalization}
        base = dict(
            arch=arch_of(model),
            encoder=model.encoder_name,
            channels=model.channels,
            num_classes=model.num_classes,
            normalization=norm,
            encoder_weights=model.encoder_weights,
        )
        base.update(overrides)
        return cls(**base)

    def build_model(self) -> UNetV2:
        return build_network(self.arch, self.encoder, channels=self.channels, num_classes=self.num_classes)


def _normalization_problems(norm: dict) -> list[str]:
    mode = norm.get("mode", "fixed")
    if mode == "zscore":
        return []
    if mode != "fixed":
        return [f"normalization mode must be 'fixed' or 'zscore', not {mode!r}"]
    found = []
    for key in ("mean", "std"):
        values = norm.get(key)
        if not (isinstance(values, (list, tuple)) and len(values) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            found.append(f"normalization {key} must be 3 finite numbers (R, G, B), not {values!r}")
        elif key == "std" and min(values) <= 0:
            found.append(f"normalization std must be positive, not {values!r}")
    return found


# Version ids are 12 hex digits (content hashes); anything used as a folder name must be a plain name.
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONFIG_RULES = {
    "arch": one_of(*ARCHITECTURES),
    "encoder": (lambda v: v in ENCODERS or v in ALIASES, f"one of {', '.join(ENCODERS)}"),
    "channels": CHANNELS,
    "num_classes": between(1, 1000),
    "input_size": each(IMAGE_SIDE, (2, 2)),
    "inference_mode": one_of("resize", "tile"),
    "threshold": between(0, 1, low_open=True, high_open=True),
    "version": (lambda v: v == "" or bool(VERSION_NAME.match(v)), "empty or a plain name of letters, digits, '.', '_', '-'"),
    "parent": (lambda v: v is None or v == "" or bool(VERSION_NAME.match(v)), "null or a version id"),
    "format_version": between(1, FORMAT_VERSION),
}


def config_path_for(weights_path: Union[str, Path]) -> Path:
    return Path(weights_path).with_suffix(".json")


def content_version(state: dict[str, torch.Tensor]) -> str:
    """A hash of names, dtypes, shapes and bytes (not of the file: safetensors' header order varies)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:12]


def save_checkpoint(
    model: UNetV2,
    path: Union[str, Path],
    config: Optional[ModelConfig] = None,
    half: bool = False,
) -> ModelConfig:
    """Write ``path`` (.safetensors) and its JSON config atomically; return the config as saved.

    The version id is a hash of the tensor bytes, so equal weights give equal versions. ``half`` stores
    floating tensors as float16 (they are cast back to float32 on load).
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"Checkpoints are written as .safetensors; got {path.name!r}.")
    config = (config or ModelConfig.for_model(model)).validate()
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        state[key] = tensor
    config.version = content_version(state)
    # The version in the weights too: the two files are written one after the other, and a failure between
    # them (a full disk) would otherwise leave a JSON describing other weights, unnoticed (load_checkpoint checks).
    blob = save(state, metadata={"format": "pt", "napari_unetv2_format": str(FORMAT_VERSION), VERSION_KEY: config.version})
    config.encoder_weights = config.encoder_weights or model.encoder_weights
    # when these weights were saved, with the UTC offset: a version's only date was its store folder's, which a copy
    # made later and which every reader showed in their own zone (clinician trial of session 42)
    config.training = {**config.training, "saved_at": now_stamp()}
    # Config first, weights last: a crash in between leaves no weight file without its config. Ctrl-C waits for both.
    with interrupts_deferred():
        atomic_write_text(config_path_for(path), json.dumps(asdict(config), indent=2, default=list) + "\n")
        atomic_write_bytes(path, blob)
    return config


def save_derived_checkpoint(model: UNetV2, path: Union[str, Path], config: ModelConfig, parent: str,
                            provenance: dict) -> ModelConfig:
    """Save weights made from other checkpoints without training (a weight average, recomputed BatchNorm
    statistics): ``parent`` is the source's version, the source's metrics are dropped (they describe other
    weights) and ``provenance`` (how it was made, the command) joins the config's training record."""
    config.parent = parent
    config.metrics = {}
    config.training = {**config.training, **provenance}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(model, path, config)


def read_config(path: Union[str, Path]) -> ModelConfig:
    cfg_path = config_path_for(path)
    if not cfg_path.is_file() and Path(path).suffix in PICKLE_SUFFIXES:
        raise untrusted_pickle(Path(path))  # what is wrong with it first (finetune read the config first)
    if not cfg_path.is_file():
        raise FileNotFoundError(f"Checkpoint config not found: {cfg_path} (expected beside {Path(path).name}).")
    try:
        return ModelConfig.from_dict(read_json(cfg_path))
    except ConfigError as err:
        raise ConfigError(f"Checkpoint config {cfg_path} is not valid: " + "; ".join(err.problems) + ".", err.problems) from err
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"Checkpoint config {cfg_path} is not valid: {err}") from err


def load_checkpoint(
    path: Union[str, Path],
    trusted: bool = False,
    config: Optional[ModelConfig] = None,
) -> tuple[UNetV2, ModelConfig]:
    """Rebuild the model described by the JSON config and load every tensor, or raise naming the mismatch."""
    path = Path(path)
    tensors = read_tensors(path, trusted=trusted)
    if config is None:
        config = read_config(path)
        weights_version = stored_version(path)
        if weights_version is not None and weights_version != config.version:
            raise ValueError(f"Checkpoint {path.name}: its JSON describes version {config.version} but the weights are "
                             f"version {weights_version} (a save was interrupted between the two files?). "
                             "Use another checkpoint; nothing was loaded.")
    model = config.build_model()
    reference = model.state_dict()
    tensors = {
        k: (v.to(reference[k].dtype) if k in reference and v.is_floating_point() else v) for k, v in tensors.items()
    }
    load_exact(model, tensors, f"Checkpoint {path.name}")
    model.encoder_weights = config.encoder_weights
    model.eval()
    return model, config


def stored_version(path: Path) -> Optional[str]:
    """The version a .safetensors file's own metadata names (files saved before it was recorded: None)."""
    if Path(path).suffix != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get(VERSION_KEY)


def bundled_checkpoint(name: str = DEFAULT_BUNDLED) -> Optional[Path]:
    """A model shipped inside the package (default: the polyp model), or None when it is not installed."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"No bundled model is called {name!r}; the bundled models are: {', '.join(BUNDLED_MODELS)}.")
    path = BUNDLED_DIR / BUNDLED_MODELS[name]
    return path if path.is_file() and config_path_for(path).is_file() else None


def bundled_models() -> dict[str, Path]:
    """The bundled models installed here, by name."""
    return {name: path for name in BUNDLED_MODELS if (path := bundled_checkpoint(name)) is not None}

