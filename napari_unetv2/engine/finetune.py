"""Fine-tuning a checkpoint on corrected pairs: the paper's recipe, a held-out score before and after.

Shared by ``unetv2 finetune`` and the retrain widget. The starting checkpoint is never modified: the
result is a new checkpoint (a new version whose parent is the starting one) in the output folder.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Optional

from ..checkpoints import bundled_checkpoint, read_config
from ..inference import Predictor
from .evaluate import evaluate_pairs
from .loop import BEST, TrainEvent, TrainJob, run_training
from .pairs import Pair, split_pairs
from .recipes import Recipe, load_recipe


@dataclass
class FinetuneResult:
    checkpoint: Path
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    held_out: list[str] = field(default_factory=list)


def plan_pairs(corrections: list[Pair], replay: Optional[list[Pair]], holdout_fraction: float, seed: int,
               replay_ratio: int = 2) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): a seeded held-out part of the corrections; replay pairs only ever train."""
    if len(corrections) >= 3 and holdout_fraction > 0:
        train, held_out = split_pairs(corrections, holdout_fraction, seed)
    else:
        train, held_out = list(corrections), []
    if replay:
        rng = random.Random(seed)
        train = train + rng.sample(list(replay), min(len(replay), replay_ratio * len(train)))
    return train, held_out


def finetune_events(
    checkpoint: Optional[Path], corrections: list[Pair], out_dir: Path, recipe: Optional[Recipe] = None,
    replay: Optional[list[Pair]] = None, holdout_fraction: float = 0.2, device: str = "auto", command: str = "",
    resumable: bool = True,
) -> Generator[TrainEvent, None, FinetuneResult]:
    """Yields the training events; returns the :class:`FinetuneResult` (the generator's return value:
    ``result = yield from finetune_events(...)``)."""
    checkpoint = Path(checkpoint) if checkpoint is not None else bundled_checkpoint()
    if checkpoint is None:
        raise ValueError("No checkpoint to fine-tune: pass one (no bundled model is installed).")
    recipe = recipe or load_recipe("finetune")
    parent = read_config(checkpoint)
    train, held_out = plan_pairs(corrections, replay, holdout_fraction, recipe.seed)
    if not train:
        raise ValueError("No corrected pairs to train on.")
    before = evaluate_pairs(Predictor(checkpoint, device=device), held_out) if held_out else {}
    job = TrainJob(
        recipe=recipe.with_overrides({"input_size": list(parent.input_size)}), train_pairs=train,
        val_pairs=held_out, out_dir=Path(out_dir), device=device, init_checkpoint=checkpoint,
        name=f"{parent.name or parent.encoder}-finetuned", parent=parent.version, command=command,
        data={"corrections": len(corrections), "replay": len(replay or []), "held_out": [p.stem for p in held_out]},
        resumable=resumable,
    )
    yield from run_training(job)
    new = Path(out_dir) / BEST
    after = evaluate_pairs(Predictor(new, device=device), held_out) if held_out else {}
    return FinetuneResult(new, before, after, [p.stem for p in held_out])
