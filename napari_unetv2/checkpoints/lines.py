"""Model lines: which versions belong together (one fine-tuned from another, or both from a third) and which bundled
model a version descends from. Qt-free; used by the widgets, the session, ``unetv2 finetune`` and the fine-tuning
routine alike, so that "the corrections of this model's line" means one thing everywhere.

A user's correction set may hold dermoscopy corrections made with the skin model and endoscopy ones made with the
polyp model; a round fine-tunes one model, and must train only on corrections of its own line.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from .checkpoint import bundled_models, read_config


@lru_cache(maxsize=None)
def _bundled_config(path: Path) -> tuple[str, Optional[str]]:
    config = read_config(path)
    return config.version, config.parent


def bundled_versions() -> dict[str, str]:
    """{version: bundled model name} of the installed bundled models."""
    return {_bundled_config(path)[0]: name for name, path in bundled_models().items()}


@dataclass(frozen=True)
class ModelLines:
    """Each known version's parent (the version it was fine-tuned from, None for a root)."""

    parents: dict

    @classmethod
    def known(cls, store=None, checkpoints: Iterable[Path] = ()) -> "ModelLines":
        """The parents of the bundled models, of every version in ``store`` (a ModelStore) and of ``checkpoints``."""
        parents: dict = {}
        for path in bundled_models().values():
            version, parent = _bundled_config(path)
            parents[version] = parent
        if store is not None:
            parents.update({c.version: c.parent for c in store.versions()})
        for path in checkpoints:
            try:
                config = read_config(path)
            except (FileNotFoundError, ValueError):
                continue
            parents.setdefault(config.version, config.parent)
        return cls(parents)

    def lineage(self, version: Optional[str]) -> set[str]:
        """``version`` and every version it was fine-tuned from, as far as the parents are known."""
        found: set[str] = set()
        while version and version not in found:
            found.add(version)
            version = self.parents.get(version)
        return found

    def related(self, a: Optional[str], b: Optional[str]) -> bool:
        """Whether two versions are of one line: they share an ancestor (one fine-tuned from the other, or both from a
        third). The bundled polyp and skin models share none."""
        return bool(a) and bool(b) and bool(self.lineage(a) & self.lineage(b))

    def of_another_line(self, version: Optional[str], in_use: Optional[str]) -> bool:
        """A known version of another line than ``in_use``'s. Unknown origins (a mask drawn from scratch, a given
        mask, a model loaded from a file) are not: nothing says they belong elsewhere."""
        return bool(version) and version in self.parents and not self.related(version, in_use)

    def split(self, entries: Iterable, in_use: Optional[str]) -> tuple[list, list]:
        """(corrections a round of ``in_use`` trains on, corrections it leaves out: made with another line)."""
        ours, others = [], []
        for entry in entries:
            (others if self.of_another_line(entry.model_version, in_use) else ours).append(entry)
        return ours, others

    def bundled_root(self, version: Optional[str]) -> Optional[str]:
        """The bundled model (``polyp``, ``skin``) ``version`` descends from, or is; None when not known."""
        roots = bundled_versions()
        return next((roots[v] for v in self.lineage(version) if v in roots), None)


def lines_around(checkpoint: Path) -> ModelLines:
    """What can be known of a checkpoint's line from where it lies: the bundled models, the checkpoint, and the other
    versions of the model store it is in (``versions/<version>/model.safetensors``), if it is in one."""
    checkpoint = Path(checkpoint)
    siblings = []
    if checkpoint.parent.parent.name == "versions":
        siblings = sorted(checkpoint.parent.parent.glob("*/model.safetensors"))
    return ModelLines.known(checkpoints=[checkpoint, *siblings])
