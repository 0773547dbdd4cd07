"""Where the plugin keeps user data: $NAPARI_UNETV2_HOME, else the platform's user data folder."""
from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    override = os.environ.get("NAPARI_UNETV2_HOME")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-unetv2", appauthor=False))


def default_corrections_dir() -> Path:
    return data_home() / "corrections"


def default_model_store_dir() -> Path:
    return data_home() / "models"


def default_kept_edits_dir() -> Path:
    return data_home() / "kept-edits"
