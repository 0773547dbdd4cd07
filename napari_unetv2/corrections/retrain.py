"""One correct-and-retrain round: fine-tune the store's current model on the whole correction set, add
the result to the store as a new version. Used by the retrain widget; ``unetv2 finetune`` and the
benchmark run the same fine-tuning routine (:func:`napari_unetv2.engine.finetune.finetune_events`,
called through its module so that one function, with one set of defaults, serves them all).

Rounds are continuous: round k+1 starts from the version in use (normally round k's result) and trains
on every correction accepted so far. The new version's JSON records the prospective score of the
version it started from (on the corrections of its masks), its held-out and original-domain scores,
and the adoption decision (:func:`~napari_unetv2.corrections.adoption.should_adopt`). The caller puts
the new version in use when ``outcome.adoption.adopt`` (the default) and shows ``adoption.reason``.

Nothing is changed until the round completes: the run trains in a scratch folder
(``<store>/runs/...``), removed if the round is cancelled; only then is the new version copied in.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Generator, Optional

from ..checkpoints import ModelConfig, ModelStore, read_config
from ..checkpoints.model_store import RUN_ALIVE
from ..engine import finetune
from ..engine.loop import TrainEvent
from ..engine.pairs import Pair
from ..files import hold, release
from .adoption import AdoptionDecision, should_adopt
from .correction_set import CorrectionSet
from .prospective import ProspectiveScore, score_of


@dataclass
class RetrainOutcome:
    """A finished round: the fine-tuning result, the config of the new version now in the store, the
    prospective score of the version the round started from, and whether to put the new one in use."""

    result: finetune.FinetuneResult
    config: ModelConfig
    parent_prospective: ProspectiveScore
    adoption: AdoptionDecision


def retrain_events(
    store: ModelStore,
    corrections: CorrectionSet,
    train_parts: Optional[str] = None,
    epochs: Optional[int] = None,
    replay: Optional[list[Pair]] = None,
    device: str = "auto",
    overrides: Optional[dict] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    entry_ids: Optional[Collection[str]] = None,
) -> Generator[TrainEvent, None, Optional[RetrainOutcome]]:
    """Yields the training events; returns the :class:`RetrainOutcome` (the generator's return value), or None
    when ``should_stop`` says so after training: the last phase (scoring the held-out and reference images)
    yields no event, so a Cancel pressed then is honoured here, before the new version enters the store.
    ``entry_ids``: train on those corrections only (the widgets leave out those made with another model's line).
    ``train_parts``/``epochs`` None: the ``finetune`` recipe's values (as for ``unetv2 finetune``)."""
    pairs = corrections.pairs(entry_ids)
    if not pairs:
        raise ValueError("The correction set is empty: accept at least one corrected mask first." if entry_ids is None
                         else "None of the corrections chosen for this round is in the set any more.")
    start = store.current_checkpoint()
    if start is None:
        raise ValueError("No model to fine-tune: no bundled weights are installed and the store is empty.")
    parent_score = score_of(corrections, read_config(start).version)
    scratch = _scratch_folder(store.root / "runs")
    alive = hold(scratch / RUN_ALIVE)  # (a round killed mid-way: its folder goes at the next start, not six hours later)
    try:
        pairs = pinned(pairs, scratch / "pairs")
        result = yield from finetune.finetune_events(
            start, pairs, scratch / "run", train_parts=train_parts, epochs=epochs, overrides=overrides, replay=replay,
            device=device, resumable=False, command=f"retrain widget: {len(pairs)} corrections from {corrections.root}")
        if should_stop is not None and should_stop():
            return None
        adoption = _adoption(result)
        _record_round(result, parent_score, adoption)
        return RetrainOutcome(result, store.add(result.checkpoint), parent_score, adoption)
    finally:
        # On success the store holds its own copy; when cancelled or failed, the store and the
        # correction set were never touched and the scratch run goes.
        release(alive)
        shutil.rmtree(scratch, ignore_errors=True)
        try:  # and so does runs/ itself when no other round is using it (rmdir only removes an empty folder)
            scratch.parent.rmdir()
        except OSError:
            pass


def _scratch_folder(runs: Path) -> Path:
    """A new round's scratch folder under ``runs`` (made if missing). Another round ending meanwhile may remove
    ``runs`` between its creation and ours: then it is made again."""
    for _ in range(3):
        runs.mkdir(parents=True, exist_ok=True)
        try:
            return Path(tempfile.mkdtemp(dir=runs, prefix="round-"))
        except FileNotFoundError:
            continue
    raise OSError(f"Could not make a scratch folder in {runs}")


def pinned(pairs: list[Pair], folder: Path) -> list[Pair]:
    """The round's own links to its pairs' files (hard links: no copy, same bytes), so that accepting a new
    mask for an image while the round trains (which replaces that entry and moves its files to the history) cannot pull a
    file from under it. Copied where the file system has no hard links."""
    kept = []
    for pair in pairs:
        linked = []
        for source, sub in ((pair.image, "images"), (pair.mask, "masks")):
            target = folder / sub / source.name  # entry ids are unique within a set: so are the names
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            linked.append(target)
        kept.append(Pair(*linked))
    return kept


def _adoption(result: finetune.FinetuneResult) -> AdoptionDecision:
    names = sorted(result.after.get("images", {}))
    return should_adopt([result.before["images"][n]["dice"] for n in names],
                        [result.after["images"][n]["dice"] for n in names])


def _record_round(result: finetune.FinetuneResult, parent_score: ProspectiveScore, adoption: AdoptionDecision) -> None:
    """The parent's prospective score and the adoption decision into the new checkpoint's JSON."""
    finetune.record_metrics(result.checkpoint, {"parent_prospective": parent_score.as_dict(),
                                                "adoption": {"adopt": adoption.adopt, "reason": adoption.reason}})
