"""What a user names a model by, as a checkpoint path: a bundled model's name, ``in-use``, a stored version's id, or
a file (the CLI's ``--checkpoint`` and ``--init``, ``Predictor("skin")``)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

from ..storage import default_model_store_dir
from .checkpoint import BUNDLED_DIR, BUNDLED_MODELS, bundled_checkpoint, read_config
from .model_store import ModelStore

IN_USE_NAMES = ("in-use", "in use")
STORED_VERSION = re.compile(r"^[0-9a-f]{6,64}$")


def resolve_checkpoint(spec: Union[str, Path, None]) -> Optional[Path]:
    """A checkpoint path from what a user gives: None (the default bundled model), a bundled model's name
    (``polyp``, ``skin``), ``in-use`` (the model the napari widgets use), a version id of the model store
    (``$NAPARI_UNETV2_HOME/models``: the versions the widgets list) or a path. A name that is also an existing file
    is read as the file."""
    if spec is None:
        return bundled_checkpoint()
    if isinstance(spec, str) and spec in BUNDLED_MODELS and not Path(spec).exists():
        path = bundled_checkpoint(spec)
        if path is None:
            raise FileNotFoundError(f"The bundled {spec!r} model is not installed in {BUNDLED_DIR}.")
        return path
    if isinstance(spec, str) and not Path(spec).exists():
        stored = stored_checkpoint(spec)
        if stored is not None:
            return stored
        bundled = bundled_of_version(spec)
        if bundled is not None:  # (the id corrections and summary.csv record for a bundled model: verification of
            return bundled       # session 42, "versions go by their full 12-character id" for the id listed)
        if STORED_VERSION.match(spec):  # looked like a version: say where it was looked for
            raise FileNotFoundError(f"Checkpoint not found: {spec} is neither a file nor a version in the model store "
                                    f"{default_model_store_dir()} (versions go by their full 12-character id: "
                                    "unetv2 models lists them).")
    return Path(spec)


def existing_model_store() -> Optional[ModelStore]:
    """The widgets' model store, or None when none was ever made (reading about it must not create one)."""
    root = default_model_store_dir()
    return ModelStore(root) if (root / "versions").is_dir() else None


def stored_checkpoint(spec: str) -> Optional[Path]:
    """``in-use`` or a stored version's id in the widgets' model store, as a path (None when ``spec`` is neither).
    The CLI could not name a version the widgets made or used: only its full path inside the store worked (trial of
    session 28). Nothing is created when there is no store."""
    root = default_model_store_dir()
    if spec in IN_USE_NAMES:
        store = existing_model_store()
        if store is not None and store.missing_current:
            raise FileNotFoundError(missing_in_use(store))
        return store.current_checkpoint() if store is not None else bundled_checkpoint()
    if STORED_VERSION.match(spec) and (root / "versions" / spec / "model.safetensors").is_file():
        return ModelStore(root).path_of(spec)
    return None


def missing_in_use(store: ModelStore) -> str:
    """Why ``in-use`` names no model: the version in use is gone from the store."""
    note = store.missing_current_note()
    return (f"{note[:1].upper()}{note[1:]}: put the folder back, or put another model in use (`unetv2 models use VERSION`, "
            "or `bundled`); nothing was run.")


def bundled_of_version(spec: str) -> Optional[Path]:
    """A bundled model's checkpoint when ``spec`` is its version id, else None."""
    if not STORED_VERSION.match(spec):
        return None
    for name in BUNDLED_MODELS:
        path = bundled_checkpoint(name)
        if path is not None and read_config(path).version == spec:
            return path
    return None
