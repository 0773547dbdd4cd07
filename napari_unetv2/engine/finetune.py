"""Fine-tuning a checkpoint on corrected pairs: the one routine behind ``unetv2 finetune``, the retrain
widget (through :mod:`napari_unetv2.corrections.retrain`) and ``benchmarks/bench_correct_retrain.py``.

The starting checkpoint is never modified: the result is a new checkpoint (a new version whose parent
is the starting one) in the output folder.

Why these defaults (measured on PH2 dermoscopy from the bundled polyp model, 5 corrections, 5 draws,
the same 60 evaluation images; ``benchmarks/compare_finetune_rules.py`` and
``benchmarks/bench_correct_retrain.py``, README "Benchmarks"):

* **Train on every correction and keep the last epoch of the fixed schedule** (``finetune`` recipe:
  20 epochs, poly decay to 0): Dice gain +0.451 +- 0.055, worst draw +0.372. The former default held
  out 20% of the corrections (1 of 5) and kept the epoch that scored best on it: +0.132 +- 0.153,
  worst draw +0.038 -- on one image the selection is noise, it often kept a checkpoint next to the
  starting model, and it threw away a fifth of the few corrections there are. Keeping the epoch with
  the lowest train loss instead of the last gives the same (+0.454 +- 0.056) with no reason to select.
* **A held-out part only when it would hold at least** :data:`MIN_HELD_OUT` **images** (20% of 48+
  corrections). The per-image Dice sd on PH2 is 0.17 after a round (0.33 for the polyp model): the 95%
  t-interval of a mean over 5 images is +-0.22 at best, over 10 images +-0.12. The held-out part only
  reports a before/after score with its n and interval (and informs the adoption rule); it never picks
  an epoch.
* The honest score for small sets is the prospective one (corrections/prospective.py): each accepted
  correction scores the model version that produced the mask before it was corrected.

Each new checkpoint's JSON also records its score, and its parent's, on the bundled sample images
(the original polyp domain), so that forgetting is visible.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generator, Optional

from .._sample_data import SAMPLES, sample_data_dir
from ..checkpoints import bundled_checkpoint, config_path_for, read_config
from ..checkpoints.lines import lines_around
from ..files import atomic_write_text
from ..inference import Predictor
from .evaluate import evaluate_pairs
from .intervals import MIN_EVIDENCE, mean_interval
from .loop import BEST, TrainEvent, TrainJob, run_training
from .pairs import Pair, split_pairs
from .recipes import Recipe, load_recipe

HOLDOUT_FRACTION = 0.2
MIN_HELD_OUT = MIN_EVIDENCE  # images; below this no held-out part is taken (see the module docstring)
REPLAY_RATIO = 2  # replay pairs per correction, at most
# Each bundled model's own domain among the sample images: the original-domain check of a round fine-tuning a model
# of that line (the skin model's rounds were checked on the endoscopy samples, which said nothing of forgetting).
REFERENCE_SAMPLES = {"polyp": ("polyp", "kvasir"), "skin": ("skin",)}
REFERENCE_NAMES = {"polyp": "endoscopy sample images", "skin": "dermoscopy sample image"}


@dataclass
class FinetuneResult:
    checkpoint: Path
    before: dict = field(default_factory=dict)  # held-out scores of the starting model ({} without a held-out part)
    after: dict = field(default_factory=dict)  # ... and of the new one
    held_out: list[str] = field(default_factory=list)
    reference: dict = field(default_factory=dict)  # original-domain sample images: parent and new scores
    trained_on: list[str] = field(default_factory=list)
    # why there is no ``reference`` ("" when there is one, or no samples are installed)
    reference_note: str = ""


def finetune_recipe(train_parts: Optional[str] = None, epochs: Optional[int] = None,
                    overrides: Optional[dict] = None) -> Recipe:
    """The ``finetune`` recipe with the user's choices (None = the recipe's own value)."""
    settings = dict(overrides or {})
    if train_parts is not None:
        settings["train_parts"] = train_parts
    if epochs is not None:
        settings["epochs"] = epochs
    return load_recipe("finetune", settings)


def holds_out(corrections: int, holdout_fraction: float = HOLDOUT_FRACTION, min_held_out: int = MIN_HELD_OUT) -> bool:
    """Whether a round on this many corrections takes a held-out part (at least ``min_held_out`` images)."""
    return holdout_fraction > 0 and round(corrections * holdout_fraction) >= min_held_out


def plan_pairs(corrections: list[Pair], replay: Optional[list[Pair]], seed: int,
               holdout_fraction: float = HOLDOUT_FRACTION, min_held_out: int = MIN_HELD_OUT
               ) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): every correction trains unless a held-out part of at least ``min_held_out``
    images fits; replay pairs only ever train."""
    if holds_out(len(corrections), holdout_fraction, min_held_out):
        train, held_out = split_pairs(corrections, holdout_fraction, seed)
    else:
        train, held_out = list(corrections), []
    if replay:
        rng = random.Random(seed)
        train = train + rng.sample(list(replay), min(len(replay), REPLAY_RATIO * len(train)))
    return train, held_out


def reference_pairs(line: str = "polyp") -> list[Pair]:
    """The sample images with ground truth (``sample_data/``) of a bundled model's domain: a small original-domain
    check."""
    root = sample_data_dir()
    stems = [SAMPLES[key] for key in REFERENCE_SAMPLES[line]]
    pairs = [Pair(root / "images" / f"{stem}.jpg", root / "masks" / f"{stem}.png") for stem in stems]
    return [p for p in pairs if p.image.is_file() and p.mask.is_file()]


def bundled_line(checkpoint: Path) -> Optional[str]:
    """The bundled model (``polyp``, ``skin``) a checkpoint descends from (``checkpoints/lines.py``); None when not
    known, or when a version on the way cannot be read (a damaged JSON must not cost a finished round)."""
    try:
        return lines_around(checkpoint).bundled_root(read_config(checkpoint).version)
    except (FileNotFoundError, ValueError):
        return None


def score_summary(result: dict) -> dict:
    """Mean Dice/IoU of an :func:`evaluate_pairs` result with n, 95% intervals and the per-image scores
    (JSON-ready; ``dice``/``iou`` stay plain means so that older readers keep working)."""
    images = result.get("images", [])
    dice, iou = mean_interval([s["dice"] for s in images]), mean_interval([s["iou"] for s in images])
    return {"n": dice.n, "dice": dice.mean, "iou": iou.mean, "dice_interval": [dice.low, dice.high],
            "iou_interval": [iou.low, iou.high], "interval": "95% Student-t over images (none for 1 image)",
            "images": {s["name"]: {"dice": s["dice"], "iou": s["iou"]} for s in images}}


def _score(checkpoint: Path, pairs: list[Pair], device: str, predictor: Optional[Predictor] = None) -> dict:
    if not pairs:
        return {}
    return score_summary(evaluate_pairs(predictor or Predictor(checkpoint, device=device), pairs, with_hd95=False))


def _scoring(checkpoint: Path, pairs: list[Pair], device: str, message: str) -> Generator[TrainEvent, None, dict]:
    """:func:`_score`, one image at a time, a "scoring" event before each: a chance to stop. A score of a few images
    gave no event for 3-10 s on a CPU, and a round's Cancel waited for it (verification of session 39)."""
    if not pairs:
        return {}
    predictor = Predictor(checkpoint, device=device)
    images, failed = {}, []
    for index, pair in enumerate(pairs, start=1):
        yield TrainEvent("scoring", message=message + (f" ({index} of {len(pairs)})" if len(pairs) > 1 else ""))
        try:
            images.update(_score(checkpoint, [pair], device, predictor=predictor).get("images", {}))
        except ValueError as err:  # (this image could not be scored: the others are; none at all is an error)
            failed.append(str(err))
    if not images:
        raise ValueError(f"No pair could be scored ({len(failed)} failed): {failed[0]}")
    return score_summary({"images": [{"name": name, **score} for name, score in images.items()]})


def finetuned_name(parent_name: str) -> str:
    """``polyp-default`` -> ``polyp-default-finetuned`` -> ``polyp-default-finetuned-2`` -> ``-3``: a generation count,
    not one ``-finetuned`` more per round (trial of session 30: ``polyp-default-finetuned-finetuned-finetuned``)."""
    match = re.fullmatch(r"(.*?)-finetuned(?:-(\d{1,3}))?((?:-finetuned)*)", parent_name)  # (not a year: -2024)
    if match is None:
        return f"{parent_name}-finetuned"
    generation = (int(match.group(2)) if match.group(2) else 1) + match.group(3).count("-finetuned")
    return f"{match.group(1)}-finetuned-{generation + 1}"


def record_metrics(checkpoint: Path, metrics: dict) -> None:
    """Add entries to a checkpoint's JSON ``metrics`` (before it enters any store: stored versions are
    never rewritten)."""
    config = read_config(checkpoint)
    config.metrics.update(metrics)
    atomic_write_text(config_path_for(checkpoint), json.dumps(asdict(config), indent=2, default=list) + "\n")


def _record_scores(result: FinetuneResult) -> None:
    metrics = {}
    if result.held_out:
        metrics.update(held_out_images=result.held_out, held_out_before=result.before, held_out_after=result.after)
    if result.reference:
        metrics["reference"] = result.reference
    elif result.reference_note:
        metrics["reference_note"] = result.reference_note
    record_metrics(result.checkpoint, metrics)


def _pixel_hashes(pairs) -> dict:
    """The pixel hashes (the correction set's ``image_hash``) of the pairs' images that can be read, by pair."""
    from ..corrections.correction_set import image_hash  # (the corrections package imports this module's callers)
    from ..files import UnreadableImageError, read_image

    hashes = {}
    for pair in pairs:
        try:
            hashes[pair] = image_hash(read_image(pair.image))
        except (UnreadableImageError, OSError):  # unreadable pairs fail the training itself, with their name
            continue
    return hashes


def finetune_events(
    checkpoint: Optional[Path], corrections: list[Pair], out_dir: Path, *,
    train_parts: Optional[str] = None, epochs: Optional[int] = None, overrides: Optional[dict] = None,
    replay: Optional[list[Pair]] = None, device: str = "auto", command: str = "", resumable: bool = True,
) -> Generator[TrainEvent, None, FinetuneResult]:
    """Yields the training events; returns the :class:`FinetuneResult` (the generator's return value:
    ``result = yield from finetune_events(...)``). Every caller passes its data and the user's choices
    only; the defaults above are the defaults everywhere."""
    checkpoint = Path(checkpoint) if checkpoint is not None else bundled_checkpoint()
    if checkpoint is None:
        raise ValueError("No checkpoint to fine-tune: pass one (no bundled model is installed).")
    recipe = finetune_recipe(train_parts, epochs, overrides)
    parent = read_config(checkpoint)
    train, held_out = plan_pairs(corrections, replay, recipe.seed)
    if not train:
        raise ValueError("No corrected pairs to train on.")
    # each score is a few seconds on a CPU with no event: a round's Cancel (and napari's close, which waits for it)
    # waited through all of them (8 s: clinician trial of session 39); each is announced, a chance to stop
    before = yield from _scoring(checkpoint, held_out, device, "scoring the model on the held-out corrections...")
    held = set(held_out)
    trained = [p for p in corrections if p not in held]  # (replay pairs are not corrections)
    trained_on = [p.stem for p in trained]
    train_hashes = _pixel_hashes(train)  # replay included: what the new model saw
    job = TrainJob(
        recipe=recipe.with_overrides({"input_size": list(parent.input_size)}), train_pairs=train,
        val_pairs=[], out_dir=Path(out_dir), device=device, init_checkpoint=checkpoint, keep="last",
        name=finetuned_name(parent.name or parent.encoder), parent=parent.version, command=command,
        data={"corrections": len(corrections), "trained_on": trained_on, "replay": len(train) - len(trained_on),
              "held_out": [p.stem for p in held_out],
              # the images by their pixels: a correction of one of them accepted later, with this version's mask, is
              # no prospective test of this version (its id is then another entry's)
              "trained_images": sorted({train_hashes[p] for p in trained if p in train_hashes})},
        resumable=resumable, resume_offered=False,
    )
    line = bundled_line(checkpoint)  # known before training: nothing after it may fail on the way
    yield from run_training(job)
    new = Path(out_dir) / BEST
    # a sample the round trained on is no check of the original domain (a PolypGen validation frame in the corrections
    # was scored as one; trial of session 28)
    samples = reference_pairs(line or "polyp")
    seen = set(train_hashes.values())
    sample_hashes = _pixel_hashes(samples)
    reference = [pair for pair in samples if sample_hashes.get(pair) not in seen]  # (an unreadable one: scored, failing)
    left_out = len(samples) - len(reference)
    after = yield from _scoring(new, held_out, device, "scoring the new model on the held-out corrections...")
    result = FinetuneResult(new, before, after, [p.stem for p in held_out], trained_on=trained_on)
    if reference:
        what = (f"{REFERENCE_NAMES[line]} (sample_data/), the original domain of the {line} model's line" if line else
                "endoscopy sample images (sample_data/); the model descends from no bundled model known here")
        if left_out:
            what += f"; {left_out} sample(s) left out: the round trained on them"
        parent_reference = yield from _scoring(checkpoint, reference, device, "scoring the model before the round on "
                                               "the original domain's sample images (forgetting shows there)...")
        new_reference = yield from _scoring(new, reference, device,
                                            "scoring the new model on the original domain's sample images...")
        result.reference = {"set": what, "parent": parent_reference, "new": new_reference}
    elif samples:  # said, not silently missing (first-hour trial of session 28: both endoscopy samples corrected)
        result.reference_note = (f"no original-domain check: all {len(samples)} sample image(s) of sample_data/ were "
                                 "among the corrections this round trained on (every round of this line goes without "
                                 "one while they are in the correction set: forgetting is not checked)")
    _record_scores(result)
    return result
