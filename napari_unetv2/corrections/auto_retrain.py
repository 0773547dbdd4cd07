"""When an automatic retrain round is due: every N corrections accepted since the last round.

"Since the last round" is read from disk, not counted in memory: a version's JSON lists the
corrections it trained on (``training.trained_on`` and ``training.held_out``), so the count survives restarts, and after a
roll-back the corrections the restored version never saw count again. Qt-free: the widget asks
:meth:`AutoRetrainPolicy.due` after each accepted correction and starts a round in its worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .correction_set import CorrectionSet

if TYPE_CHECKING:  # the checkpoints package imports torch; this module is read without it
    from ..checkpoints.lines import ModelLines


def _listed(checkpoint: Path, keys: tuple[str, ...]) -> set[str]:
    """The strings listed under ``keys`` in the checkpoint's ``training`` record (a round's, in its JSON)."""
    from ..checkpoints import read_config  # reads JSON only, but the checkpoints package imports torch

    return _strings_under(read_config(checkpoint).training, keys)


def _strings_under(training: object, keys: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for key in keys:
        values = training.get(key, []) if isinstance(training, dict) else []
        # a list of strings, or nothing known: a hand-edited "trained_on": 5 raised in the session's writer thread, and
        # a string "ab" was read as the ids {"a", "b"}
        if isinstance(values, list):
            found |= {v for v in values if isinstance(v, str)}
    return found


def seen_by(checkpoint: Optional[Path]) -> set[str]:
    """The correction ids (file stems) the checkpoint's round used: trained on or held out (a held-out
    correction is not new to the next round either). Empty for the bundled model."""
    return set() if checkpoint is None else _listed(checkpoint, ("trained_on", "held_out"))


def trained_on_by_version(store, version: Optional[str]) -> set[str]:
    """What a version of the model store ``store`` was fine-tuned on, the versions it was fine-tuned from included
    (:func:`learned_by`). Empty for the bundled model, a model from a file, or an unknown id."""
    if not version:
        return set()
    versions = versions_of(store)
    return learned_by(versions.get(version), versions)


def versions_of(store) -> dict:
    """The model store's versions by id (``{}`` when there is no store, or it cannot be read)."""
    try:
        return {config.version: config for config in store.versions()} if store is not None else {}
    except (OSError, ValueError):
        return {}


def learned_by(config, versions: dict) -> set[str]:
    """What the model of ``config`` learned from corrections: the correction ids (``training.trained_on``) and the pixel
    hashes of their images (``training.trained_images``, recorded since 2026-11-27; a correction replaced since keeps
    its image's hash), its own and those of the versions it was fine-tuned from, found by ``parent`` in ``versions``
    (version id -> config): their weights are its starting point, so it saw their images too. Held-out corrections
    are not in it: no version learned them. The CLI's ``evaluate`` and the widgets' prospective scores both ask this
    (review of session 30: one followed the ancestors, the other did not)."""
    learned: set[str] = set()
    seen: set[str] = set()
    while config is not None and config.version not in seen:
        seen.add(config.version)
        learned |= _strings_under(config.training, ("trained_on", "trained_images"))
        config = versions.get(config.parent) if isinstance(config.parent, str) else None
    return learned


@dataclass(frozen=True)
class LearnedAlready:
    """Corrections about to leave the set that a version learned already (their effect stays in its weights)."""
    learned: list  # the entries the version (or one it was fine-tuned from) trained on
    # the newest version of its line that learned none of them: itself fine-tuned from it, or its bundled root
    # (None: the line's root, a bundled model); ``found`` False when none is known
    before: Optional[str]
    found: bool


def learned_already(store, version: Optional[str], entries) -> Optional[LearnedAlready]:
    """Which of ``entries`` (corrections being removed) ``version`` learned (itself or the versions it was fine-tuned
    from), and the newest of its ancestors that learned none of them; None when it learned none. Removing a correction
    accepted by mistake said "no round trains on them" while the version in use had trained on it, and every later round
    started from that version (clinician trial of session 43)."""
    versions = versions_of(store)
    config = versions.get(version) if version else None
    if config is None:
        return None
    keys = lambda e: {e.id, e.image_hash} - {None}  # noqa: E731 (a replaced correction's image: by its pixels)
    learned = [e for e in entries if keys(e) & learned_by(config, versions)]
    if not learned:
        return None
    taken = set().union(*(keys(e) for e in learned))
    seen = {config.version}
    parent = config.parent if isinstance(config.parent, str) else None
    while parent is not None and parent in versions and parent not in seen:
        seen.add(parent)
        if not taken & learned_by(versions[parent], versions):
            return LearnedAlready(learned, parent, True)
        parent = versions[parent].parent if isinstance(versions[parent].parent, str) else None
    # out of the store: a bundled model (none of them trained on a user's corrections); another version missing from
    # the store (deleted, its JSON damaged) is no version to go back to (it was offered: cold review of session 43)
    from ..checkpoints.lines import bundled_versions

    outside = parent if parent not in versions else None  # (a cycle of parents ends the walk inside the store)
    return LearnedAlready(learned, outside, outside is not None and outside in bundled_versions())


@dataclass(frozen=True)
class AutoRetrainPolicy:
    every_n: int

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ValueError(f"Retrain every N corrections needs N >= 1, not {self.every_n}.")

    def pending(self, correction_set: CorrectionSet, seen: set[str], lines: Optional[ModelLines] = None,
                in_use: Optional[str] = None) -> int:
        """Corrections accepted since the round that made the model in use (those it has not seen). With ``lines``,
        only those a round of ``in_use`` would train on: corrections of another model's line, which no round of this
        one takes, would otherwise stay pending for ever and start a round at every accept."""
        entries = correction_set.entries()
        if lines is not None:
            entries = lines.split(entries, in_use)[0]
        return sum(1 for e in entries if e.id not in seen)

    def due(self, correction_set: CorrectionSet, checkpoint_in_use: Optional[Path], lines: Optional[ModelLines] = None,
            in_use: Optional[str] = None) -> bool:
        return self.pending(correction_set, seen_by(checkpoint_in_use), lines, in_use) >= self.every_n
