"""One correct-and-retrain round: fine-tune the store's current model on the correction set, add the
result to the store as a new version. Used by the retrain widget; ``unetv2 finetune`` runs the same
fine-tuning routine on a folder.

Nothing is changed until the round completes: the run trains in a scratch folder
(``<store>/runs/...``), removed if the round is cancelled; only then is the new version copied in.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generator, Optional

from ..checkpoints import ModelConfig, ModelStore, config_path_for, read_config
from ..engine.finetune import FinetuneResult, finetune_events
from ..engine.loop import TrainEvent
from ..engine.pairs import Pair
from ..engine.recipes import load_recipe
from ..files import atomic_write_text
from .correction_set import CorrectionSet


@dataclass
class RetrainOutcome:
    """A finished round: the fine-tuning result and the config of the new version now in the store."""

    result: FinetuneResult
    config: ModelConfig


def retrain_events(
    store: ModelStore,
    corrections: CorrectionSet,
    train_parts: str = "sdi-decoder",
    epochs: Optional[int] = None,
    replay: Optional[list[Pair]] = None,
    device: str = "auto",
    overrides: Optional[dict] = None,
) -> Generator[TrainEvent, None, RetrainOutcome]:
    """Yields the training events; returns the :class:`RetrainOutcome` (the generator's return value)."""
    pairs = corrections.pairs()
    if not pairs:
        raise ValueError("The correction set is empty: accept at least one corrected mask first.")
    start = store.current_checkpoint()
    if start is None:
        raise ValueError("No model to fine-tune: no bundled weights are installed and the store is empty.")
    settings = {"train_parts": train_parts, **(overrides or {})}
    if epochs is not None:
        settings["epochs"] = epochs
    recipe = load_recipe("finetune", settings)
    (store.root / "runs").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=store.root / "runs", prefix="round-"))
    try:
        result = yield from finetune_events(
            start, pairs, scratch, recipe, replay, device=device, resumable=False,
            command=f"retrain widget: {len(pairs)} corrections from {corrections.root}")
        _record_held_out_scores(result)
        return RetrainOutcome(result, store.add(result.checkpoint))
    finally:
        # On success the store holds its own copy; when cancelled or failed, the store and the
        # correction set were never touched and the scratch run goes.
        shutil.rmtree(scratch, ignore_errors=True)


def _record_held_out_scores(result: FinetuneResult) -> None:
    """Write the before/after held-out scores into the new checkpoint's JSON before it enters the store."""
    if not result.held_out:
        return
    config = read_config(result.checkpoint)
    config.metrics["held_out_images"] = result.held_out
    config.metrics["held_out_before"] = {k: result.before[k] for k in ("dice", "iou", "n")}
    config.metrics["held_out_after"] = {k: result.after[k] for k in ("dice", "iou", "n")}
    atomic_write_text(config_path_for(result.checkpoint), json.dumps(asdict(config), indent=2, default=list) + "\n")
