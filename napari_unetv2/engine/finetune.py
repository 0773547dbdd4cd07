"""Fine-tuning a checkpoint on corrected pairs: the paper's recipe, a held-out score before and after.

Shared by ``unetv2 finetune`` and the retrain widget. The starting checkpoint is never modified: the
result is a new checkpoint (a new version whose parent is the starting one) in the output folder.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ..checkpoint import bundled_checkpoint, read_config
from ..files import atomic_write_text
from ..inference import Predictor
from .data import Pair, find_pairs, split_pairs
from .evaluate import evaluate_pairs
from .loop import BEST, TrainEvent, TrainJob, run_training
from .recipes import Recipe, load_recipe, parse_override


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
) -> Iterator[TrainEvent]:
    """Yields the training events, then a final ``TrainEvent("finetuned", metrics={"result": FinetuneResult})``."""
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
    result = FinetuneResult(new, before, after, [p.stem for p in held_out])
    yield TrainEvent("finetuned", metrics={"result": result})


def finetune_cli(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    overrides = dict(parse_override(s) for s in args.set)
    overrides["train_parts"] = args.train_parts
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    recipe = load_recipe("finetune", overrides)
    corrections = find_pairs(args.data).pairs
    replay = find_pairs(args.replay).pairs if args.replay else None
    bar, result = None, None
    for event in finetune_events(args.checkpoint, corrections, args.out, recipe, replay, device=args.device,
                                 command="unetv2 " + " ".join(sys.argv[1:])):
        if event.kind == "start":
            print(event.message)
            bar = tqdm(total=(event.epochs - event.epoch) * event.steps_per_epoch, desc="finetune", unit="step")
        elif event.kind == "step":
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.4f}")
        elif event.kind == "finetuned":
            bar.close()
            result = event.metrics["result"]
    summary = {"checkpoint": str(result.checkpoint), "held_out": result.held_out,
               "before": {k: result.before.get(k) for k in ("dice", "iou", "n")},
               "after": {k: result.after.get(k) for k in ("dice", "iou", "n")}}
    atomic_write_text(Path(args.out) / "finetune.json", json.dumps(summary, indent=1) + "\n")
    if result.held_out:
        print(f"held-out Dice: before {result.before['dice']:.4f} -> after {result.after['dice']:.4f} "
              f"({len(result.held_out)} images)")
    print(f"new checkpoint: {result.checkpoint}")
    return 0
