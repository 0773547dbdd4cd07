"""The model store: every fine-tuned version kept side by side, with a pointer to the one in use.

``versions/<version>/model.safetensors + model.json`` (config with parent, recipe, scores) and
``store.json`` = {"current": version or null (= the bundled model), "history": [...]}. Versions are
never overwritten; switching and rolling back only move the pointer (written atomically).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Optional

from ..files import (
    UnsafePathError,
    atomic_directory,
    atomic_write_text,
    child_path,
    is_held,
    locked,
    read_json,
    remove_stale_temporaries,
)
from .checkpoint import ModelConfig, bundled_checkpoint, config_path_for, content_version, read_config
from .state_dicts import read_tensors

RUN_ALIVE = ".alive"  # in a round's scratch folder: locked while the round's process lives (files.hold)


class ModelStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.warning = ""  # set when store.json had to be recovered; widgets show it
        self.passed_over: list[str] = []  # see roll_back
        self.damaged: list[str] = []  # versions whose JSON is missing or damaged (not listed), as last listed
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.root / "versions"):
            remove_stale_temporaries(folder)  # leftovers of writes killed mid-way

    def _version_dir(self, version: object) -> Path:
        """The folder of ``version``: a plain name inside ``versions/`` (never "", "..", a path)."""
        return child_path(self.root / "versions", version, "model version")

    def _state(self) -> dict:
        path = self.root / "store.json"
        if not path.is_file():
            return {"current": None, "history": []}
        try:
            state = read_json(path)
            if not isinstance(state, dict) or not isinstance(state.get("history", []), list):
                raise ValueError(f"a JSON {type(state).__name__}, not a {{current, history}} object")
            if state.get("current") is not None and not isinstance(state["current"], str):
                raise ValueError(f"current is {state['current']!r}, not a version name")
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
            # Atomic writes make this unreachable short of hand edits or disk faults. Never drop the
            # history silently: keep the damaged file beside the store and say so.
            backup = self.root / f"store.json.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.copy2(path, backup)
            path.unlink()
            self.warning = (f"{path} was unreadable ({err}); it was kept as {backup.name} and the store "
                            "restarted from the bundled model (stored versions are all still there).")
            warnings.warn(self.warning, stacklevel=2)
            return {"current": None, "history": []}
        state.setdefault("history", [])
        return state

    def _write_state(self, state: dict) -> None:
        atomic_write_text(self.root / "store.json", json.dumps(state, indent=1) + "\n")

    def versions(self) -> list[ModelConfig]:
        """Every stored version that can be used; those whose JSON is missing or damaged are named in ``damaged``."""
        found, damaged = [], []
        for folder in sorted((self.root / "versions").iterdir()):
            path = folder / "model.safetensors"
            if folder.name.startswith(".") or not path.is_file():
                continue
            try:
                found.append(read_config(path))
            except (FileNotFoundError, ValueError):
                damaged.append(folder.name)
        self.damaged = damaged
        return found

    def path_of(self, version: str) -> Path:
        try:
            path = self._version_dir(version) / "model.safetensors"
        except UnsafePathError as err:
            raise ValueError(f"Version {version!r} is not in the model store {self.root}: {err}") from err
        if not path.is_file():
            raise ValueError(f"Version {version!r} is not in the model store {self.root}.")
        try:
            read_config(path)  # a version whose JSON is damaged is not listed: it must not be put in use either
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"Version {version!r} in the model store cannot be used: {err}") from err
        return path

    def added_time(self, version: str) -> float:
        """When ``version`` joined the store (seconds since the epoch; 0.0 unknown): its folder's date, as the folder
        is made by the atomic move that adds it (a copied checkpoint keeps its own file date)."""
        try:
            return self.path_of(version).parent.stat().st_mtime
        except (OSError, ValueError):
            return 0.0

    def add(self, checkpoint: Path) -> ModelConfig:
        """Copy a checkpoint (and its JSON) into the store; returns its config. The store keeps its own copy."""
        config = read_config(checkpoint)
        if not config.version:
            raise ValueError(f"{checkpoint} has no version id in its config; save it with save_checkpoint first.")
        # The id is a hash of the weights (save_checkpoint): checked here, not taken from the JSON on trust. A JSON
        # naming a stored version (copied beside other weights, edited) was "already in the store", and --use then put
        # that other model in use (stop note 39).
        weights_version = content_version(read_tensors(checkpoint))
        if weights_version != config.version:
            raise ValueError(f"{checkpoint.name}: its JSON names version {config.version}, but its weights are version "
                             f"{weights_version} (the JSON belongs to other weights, or was edited); nothing was added.")
        target = self._version_dir(config.version)
        if not (target / "model.safetensors").is_file():
            with atomic_directory(target) as tmp:
                shutil.copy2(checkpoint, tmp / "model.safetensors")
                shutil.copy2(config_path_for(checkpoint), tmp / "model.json")
        return config

    def pointer(self) -> tuple[Optional[str], Optional[str]]:
        """(the version in use, None for the bundled model; the version ``store.json`` puts in use when its files are
        gone, else None), from one read of ``store.json``. A version gone (its folder moved or deleted by hand, a share
        unplugged): the bundled model runs meanwhile, and every reader of the store says so: ``predict --checkpoint
        in-use`` ran the bundled model without a word and ``models`` listed nothing of it (clinician trial of session
        42)."""
        version = self._state().get("current")
        if not version:
            return None, None
        try:
            present = (self._version_dir(version) / "model.safetensors").is_file()
        except UnsafePathError:
            present = False  # a hand-edited pointer that leaves the store: the bundled model is used
        return (version, None) if present else (None, version)

    @property
    def current(self) -> Optional[str]:
        return self.pointer()[0]

    @property
    def missing_current(self) -> Optional[str]:
        return self.pointer()[1]

    def missing_current_note(self) -> str:
        """What is wrong with the pointer to the version in use ("" when nothing): the one wording of the CLI's refusal,
        ``unetv2 models`` and the widgets."""
        version = self.missing_current
        if not version:
            return ""
        try:
            self._version_dir(version)
        except UnsafePathError:  # (a hand edit: "../x", "bundled")
            return f"store.json names {version!r} as the version in use, which is no version of the model store {self.root}"
        return (f"the version in use, {version}, is missing from the model store {self.root} (its folder versions/{version} "
                "is gone)")

    def current_checkpoint(self) -> Optional[Path]:
        """The checkpoint in use: a stored version, else the bundled model (None when none is installed)."""
        version = self.current  # read once: another window may move the pointer between two reads
        return self.path_of(version) if version else bundled_checkpoint()

    def use(self, version: Optional[str]) -> None:
        """Put ``version`` in use (None: the bundled model). Using the version already in use changes nothing
        (a history entry per press would make the next Roll back a no-op that says it rolled back)."""
        if version is not None:
            self.path_of(version)  # must exist
        with locked(self.root):  # two windows (or a window and the CLI) moving the pointer: no lost update
            state = self._state()
            if state.get("current") == version:
                return
            state["history"].append(state.get("current"))
            state["current"] = version
            self._write_state(state)

    def roll_back(self) -> Optional[str]:
        """Return to the version used before the current one; returns it (None = bundled). History entries that
        name no stored version (removed, hand-edited) or the one in use are passed over."""
        self.passed_over = []  # versions of the history missing from the store, passed over by the last roll back
        with locked(self.root):
            state = self._state()
            current = state.get("current")
            while state["history"]:
                before = state["history"].pop()
                if before != current and (before is None or self._is_stored(before)):
                    state["current"] = before
                    self._write_state(state)
                    return before
                if before != current and isinstance(before, str) and before not in self.passed_over:
                    # (said by the widget: the skin line left behind unsaid, the polyp model in use on dermoscopy
                    # images: verification of session 43)
                    self.passed_over.append(before)
            self.passed_over = []
            raise ValueError("Nothing to roll back to: this is the first model in use.")

    def _is_stored(self, version: object) -> bool:
        """Whether ``version`` can be put in use (its weights and a readable JSON are here)."""
        if not isinstance(version, str):
            return False
        try:
            self.path_of(version)  # raises unless the weights and a readable JSON are there
        except ValueError:
            return False
        return True

    def remove_stale_runs(self, max_age_s: float = 6 * 3600) -> int:
        """Delete scratch folders of rounds that were killed (a finished or cancelled round removes its own). A live
        round holds a lock on its folder's ``RUN_ALIVE`` file: a folder whose lock is free is a killed round's, removed
        at once (it stayed six hours with copies of the corrections: clinician trial of session 39). Where that cannot
        be known (no lock file, no ``fcntl``), a folder's age decides: that of the newest file in it (a live round
        writes inside ``run/`` each epoch and never touches the folder itself)."""
        removed = 0
        for folder in (self.root / "runs").glob("round-*") if (self.root / "runs").is_dir() else []:
            held = is_held(folder / RUN_ALIVE)
            if held is False or (held is None and time.time() - newest_change(folder) > max_age_s):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def newest_change(folder: Path) -> float:
    """The latest modification time of ``folder`` or anything under it (0 when it vanished meanwhile)."""
    newest = 0.0
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files, "."]:
            try:
                newest = max(newest, os.stat(os.path.join(root, name), follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return newest
