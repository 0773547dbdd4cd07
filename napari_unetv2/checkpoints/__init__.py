"""Weights: checkpoints (safetensors + JSON), verified ImageNet encoder weights, the model builder and
the versioned model store. The bundled weight files themselves live in ``napari_unetv2/weights/``."""
from .builder import build_unetv2
from .checkpoint import (
    BUNDLED_DIR,
    BUNDLED_MODELS,
    BUNDLED_NAME,
    ModelConfig,
    bundled_checkpoint,
    bundled_models,
    config_path_for,
    content_version,
    load_checkpoint,
    read_config,
    save_checkpoint,
    save_derived_checkpoint,
)
from .model_store import ModelStore
from .names import resolve_checkpoint
from .pretrained import PretrainedWeightsUnavailable, load_pretrained_encoder
from .state_dicts import (
    PICKLE_SUFFIXES,
    UntrustedCheckpointError,
    WeightsMismatchError,
    load_exact,
    read_tensors,
)

__all__ = [
    "BUNDLED_DIR",
    "BUNDLED_MODELS",
    "BUNDLED_NAME",
    "PICKLE_SUFFIXES",
    "ModelConfig",
    "ModelStore",
    "PretrainedWeightsUnavailable",
    "UntrustedCheckpointError",
    "WeightsMismatchError",
    "build_unetv2",
    "bundled_checkpoint",
    "bundled_models",
    "config_path_for",
    "content_version",
    "load_checkpoint",
    "load_exact",
    "load_pretrained_encoder",
    "read_config",
    "read_tensors",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_derived_checkpoint",
]
