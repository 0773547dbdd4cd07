"""``unetv2``: train, evaluate, predict (and finetune) from the command line, on the same engine as the widgets."""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

from .checkpoints.scores import scores_note  # noqa: F401 (its home before session 42)
from .errors import printable
from .files.times import instant, shown, stamp_of

MIN_TILE = 32  # model.MIN_SIDE, the smallest input the network takes (not imported: parsing loads no torch)


def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None,
                   help="a .safetensors checkpoint, a bundled model's name (polyp, skin; default: polyp), in-use (the "
                        "model the napari widgets use) or a version id from the widgets' model store")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")


def _whole_number_at_least(lowest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lowest}, not {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lowest}, not {value}")
        return value
    return parse


_non_negative_int = _whole_number_at_least(0)
_positive_int = _whole_number_at_least(1)


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, not {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unetv2", description="U-Net v2 segmentation: train, evaluate, predict, "
                                                                "finetune, and the widgets' model store (models).")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with a recipe")
    t.add_argument("--recipe", default="cpu", help="recipe name (paper, authors-polyp, authors-isic, cpu, finetune) or YAML file")
    t.add_argument("--data", type=Path, required=True, help="folder of image/mask pairs")
    t.add_argument("--val", type=Path, default=None, help="validation folder (default: a seeded split of --data)")
    t.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, logs, curves)")
    t.add_argument("--encoder", default=None, help="override the recipe's encoder")
    t.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    t.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any recipe field")
    t.add_argument("--limit", type=_positive_int, default=None, help="use only the first N training pairs (smoke runs)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last")
    t.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint or bundled model (polyp, skin) instead of the recipe's encoder "
                        "weights (its encoder, channels and normalisation are kept; the rest of the recipe applies)")
    t.add_argument("--device", default="auto")
    t.add_argument("--name", default="", help="model name written into the config")
    t.add_argument("--workers", type=_non_negative_int, default=0,
                   help="data-loading worker processes (default 0: load in the training process; on a GPU machine a "
                        "few workers keep the GPU busy; each keeps its own decoded-image cache)")
    t.add_argument("--save-epochs", action="store_true",
                   help="also keep every epoch's weights as OUT/epochs/epoch-NNN.safetensors (for weight averaging: "
                        "training/average_checkpoints.py)")

    e = sub.add_parser("evaluate", help="score a model on a folder of image/mask pairs")
    _add_checkpoint(e)
    e.add_argument("--data", type=Path, required=True,
                   help="folder of image/mask pairs (images/ + masks/, or names like <stem>_mask.png), or a correction set")
    e.add_argument("--json", type=Path, default=None, help="write the results here (a new file, unless --overwrite)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --json file (only an earlier result of evaluate)")
    e.add_argument("--threshold", type=_threshold, default=None)
    e.add_argument("--minmax", action="store_true", help="the authors' per-image min-max normalisation before thresholding")
    e.add_argument("--mode", choices=["resize", "tile"], default=None)
    e.add_argument("--tta", action="store_true")

    p = sub.add_parser("predict", help="segment every image in a folder",
                       description="Segments every image in a folder: OUT/<stem>.png and OUT/summary.csv. Exit status "
                                   "0 when every image is segmented (or was, with --continue), 1 when any image failed "
                                   "(its row in summary.csv says why), 2 for bad input, 130 on Ctrl-C.")
    _add_checkpoint(p)
    p.add_argument("-i", "--input", type=Path, default=None, help="the folder of images")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="where the masks and summary.csv go (a new or empty folder, or one of an earlier run with --continue)")
    # also as plain words, as people type it (trial of session 30: 'unetv2 predict DIR OUT' was refused)
    p.add_argument("folders", type=Path, nargs="*", metavar="IN OUT", help="the same as -i IN -o OUT")
    p.add_argument("--save-probabilities", action="store_true", help="also write OUT/<stem>_prob.tif (float32)")
    p.add_argument("--tile", type=_whole_number_at_least(MIN_TILE), default=None,
                   help=f"tile mode with this tile size, at least {MIN_TILE} (default: the model's mode)")
    p.add_argument("--threshold", type=_threshold, default=None)
    p.add_argument("--tta", action="store_true")
    p.add_argument("--continue", dest="resume", action="store_true", help="skip images already finished")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only share I of N (0 <= I < N) of the folder, e.g. --shard $SLURM_ARRAY_TASK_ID/N; under "
                        "torchrun each rank takes its own share automatically; summary.csv is merged")
    p.add_argument("--batch-size", type=int, default=None,
                   help="frames per forward pass in resize mode (default: 8 on a CUDA GPU, where the results equal "
                        "batch 1's up to float rounding; 1 elsewhere, exactly the single-image results)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all usable cores)")
    p.add_argument("--sequential", action="store_true",
                   help="no reading ahead or writing behind in threads (the same outputs, slower)")
    p.add_argument("--streams", type=int, default=None,
                   help="on the CPU in resize mode, images predicted at once, sharing the threads (default: one "
                        "per thread, at most 4; 1: one image at a time on every thread)")

    f = sub.add_parser("finetune", help="fine-tune a checkpoint on a folder of (corrected) pairs",
                       description="Trains on every pair (a held-out part is kept only when it would hold 10+ images) "
                                   "and keeps the last epoch; defaults as in the retrain widget.")
    f.add_argument("--checkpoint", default=None,
                   help="start from this checkpoint, bundled model (polyp, skin; default: polyp), in-use or stored "
                        "version id")
    f.add_argument("--data", type=Path, required=True, help="folder of pairs, or a correction set (then its prospective "
                                                           "scores are printed too)")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--train-parts", choices=["sdi-decoder", "all"], default=None,
                   help="default: the finetune recipe's (sdi-decoder)")
    f.add_argument("--replay", type=Path, default=None, help="folder of earlier training pairs mixed in against forgetting")
    f.add_argument("--epochs", type=int, default=None, help="default: the finetune recipe's (20)")
    f.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    f.add_argument("--device", default="auto")
    m = sub.add_parser("models", help="the napari widgets' model store: list, add a checkpoint, put one in use",
                       description="The versions the napari widgets list and use ($NAPARI_UNETV2_HOME/models). A "
                                   "checkpoint trained with `unetv2 train` or `finetune` (or given by a colleague) is "
                                   "added here to be run, retrained and rolled back in napari.")
    m.add_argument("action", nargs="?", choices=["list", "add", "use"], default="list",
                   help="list (default); add CHECKPOINT [--use]; use VERSION (a stored version id, or 'bundled')")
    m.add_argument("target", nargs="?", default=None, help="add: a checkpoint file or bundled model name; use: a "
                                                            "version id or 'bundled'")
    m.add_argument("--use", dest="put_in_use", action="store_true", help="with add: put it in use too")
    k = sub.add_parser("kept-edits", help="masks painted in napari and never accepted: list, export, forget",
                       description="Masks painted in napari outside a folder session (a Segment result touched up) and "
                                   "not accepted are kept on disk until their image's correction is stored "
                                   "($NAPARI_UNETV2_HOME/kept-edits): Segment and a folder session give them back.")
    k.add_argument("action", nargs="?", choices=["list", "export", "forget"], default="list",
                   help="list (default); export FOLDER (every kept mask as a PNG, a stack's as a TIFF; existing files are left alone); "
                        "forget KEY (the entry of one image, as listed; its edits are gone for good)")
    k.add_argument("target", nargs="?", default=None, help="export: a folder; forget: an image key from the list")
    c = sub.add_parser("corrections", help="the correction set: who stored what, its history; restore, purge",
                       description="The correction set the napari widgets store into (the one chosen last, else "
                                   "$NAPARI_UNETV2_HOME/corrections). A correction replaced by a later one of its image, "
                                   "or removed in Correct & retrain, is kept in the set's history/ folder: restore brings "
                                   "it back, purge deletes it for good.")
    c.add_argument("action", nargs="?", choices=["list", "history", "remove", "restore", "purge"], default="list",
                   help="list (default: the entries, who stored each, when, from which model, pixels changed); history "
                        "(the entries taken out: when, by whom, why); remove ID (an entry out of the set, into its "
                        "history); restore NAME (a history entry back into the set); purge NAME (a history entry "
                        "deleted for good: its image and masks)")
    c.add_argument("target", nargs="?", default=None, help="remove: an entry's id; restore, purge: a history entry's "
                                                            "name, as listed")
    c.add_argument("--set", dest="correction_set", type=Path, default=None,
                   help="the correction set's folder (default: the one the widgets used last)")
    c.add_argument("--csv", action="store_true", help="list, history: comma-separated values, one row per entry")
    c.add_argument("--yes", action="store_true", help="purge: do not ask (at a terminal, purge asks before deleting)")
    for command in (t, e, p, f, m, k, c):  # --debug also after the command name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    # smoothing 0: the rate is the run's average (tqdm's moving average of a pipelined run, where images computed
    # ahead arrive at once, read thousands of images per second)
    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, smoothing=0)


def drive_training(events, desc: str):
    """The one console consumer of training events: a progress bar with ETA, a line per epoch.

    Returns the generator's return value (e.g. the fine-tuning result)."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as finished:
                return finished.value
            if event.kind == "start":
                print(event.message, flush=True)
                bar = tqdm(total=(event.epochs - event.epoch) * event.steps_per_epoch, desc=desc, unit="step",
                           dynamic_ncols=True)
            elif event.kind == "step":
                bar.update(1)
                bar.set_postfix(epoch=f"{event.epoch}/{event.epochs}", loss=f"{event.loss:.4f}")
            elif event.kind == "epoch":
                m = event.metrics
                bar.write(f"epoch {event.epoch}/{event.epochs}: loss {m['train_loss']:.4f}"
                          + (f", val Dice {m['val_dice']:.4f} IoU {m['val_iou']:.4f}" if "val_dice" in m else "")
                          + f" ({m['seconds']:.0f} s)")
            elif event.kind == "done":
                bar.close()
                bar = None
                print(event.message)
            elif event.kind == "scoring":
                (bar.write if bar is not None else print)(event.message)
    finally:
        if bar is not None:
            bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.data import find_pairs, split_pairs
    from .engine.loop import TrainJob, run_training
    from .engine.recipes import load_recipe, parse_override

    overrides = dict(parse_override(s) for s in args.set)
    for key, value in (("encoder", args.encoder), ("epochs", args.epochs), ("batch_size", args.batch_size),
                       ("input_size", args.input_size)):
        if value is not None:
            overrides[key] = value
    recipe = load_recipe(args.recipe, overrides)
    report = find_pairs(args.data)
    if report.skipped:
        print(report.summary(), file=sys.stderr)
    pairs = report.pairs[: args.limit] if args.limit is not None else report.pairs
    if args.val is not None:
        val_report = find_pairs(args.val)
        train_pairs, val_pairs = pairs, val_report.pairs
    else:
        train_pairs, val_pairs = split_pairs(pairs, recipe.val_fraction, recipe.seed)
    init_checkpoint = None
    if args.init is not None:
        from .checkpoints import resolve_checkpoint

        init_checkpoint = Path(resolve_checkpoint(args.init))
    job = TrainJob(
        recipe=recipe, train_pairs=train_pairs, val_pairs=val_pairs, out_dir=args.out, device=args.device,
        resume=args.resume, name=args.name, init_checkpoint=init_checkpoint,
        data={"train": str(args.data), "val": str(args.val) if args.val else f"split of train ({recipe.val_fraction})",
              "n_train": len(train_pairs), "n_val": len(val_pairs), "seed": recipe.seed},
        command=args.invocation, save_epochs=args.save_epochs, num_workers=args.workers,
    )
    drive_training(run_training(job), "train")
    return 0


def json_ready(value):
    """``value`` with NaN/infinite floats as None and numpy scalars as Python numbers (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


EVALUATION_FIELDS = {"dice", "iou", "n"}  # in every result evaluate writes


def not_an_evaluation_result(path: Path) -> Optional[str]:
    """Why ``--overwrite`` must not replace ``path`` (None when it is an earlier result of evaluate, or empty JSON).
    ``--json best.json`` inside a run folder replaced the checkpoint's own config with metrics, and the checkpoint
    could no longer be loaded (trial of session 28): its training provenance was gone for good."""
    from .files import read_json

    if path.with_suffix(".safetensors").exists():
        return f"is the config of the checkpoint {path.with_suffix('.safetensors').name} beside it"
    if path.is_file() and path.stat().st_size == 0:
        return None  # made empty beforehand (touch, mktemp): nothing to lose
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return "is not a JSON file written by evaluate"
    if not isinstance(data, dict) or (data and not EVALUATION_FIELDS <= data.keys()):
        return "holds something other than evaluate's results"
    return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine.data import find_pairs
    from .engine.evaluate import evaluate_pairs, format_table
    from .engine.pairs import is_correction_set
    from .files import atomic_write_text
    from .inference import Predictor

    if args.json is not None:  # checked before the evaluation, not after it
        if args.json.is_dir():
            raise ValueError(f"--json {args.json} is a folder; name a file (e.g. {args.json / 'results.json'}).")
        if args.json.exists() and not args.overwrite:
            raise ValueError(f"--json {args.json} already exists; choose a new file name, or pass --overwrite to "
                             "replace a file. Nothing was overwritten.")
        if args.json.exists():
            problem = not_an_evaluation_result(args.json)
            if problem:
                raise ValueError(f"--json {args.json} {problem}; --overwrite replaces only an earlier result of "
                                 "evaluate. Choose a new file name. Nothing was overwritten.")
        if not args.json.parent.is_dir():
            raise ValueError(f"--json {args.json}: the folder {args.json.parent} does not exist.")
    report = find_pairs(args.data)
    if report.skipped:
        print(report.summary(), file=sys.stderr)
    predictor = Predictor(args.checkpoint, device=args.device)
    print(f"model: {predictor.description}")
    note_model_in_use(args.checkpoint)
    # scoring a model on what it trained on is no test of it (trials of sessions 29 and 30: on the correction set, and
    # on the image folder the corrections were made from)
    learned = learned_by(predictor.config)
    if learned and is_correction_set(args.data):
        from .corrections import CorrectionSet

        hashes = {entry.id: entry.image_hash for entry in CorrectionSet(args.data).entries()}
        seen = {pair.image.stem for pair in report.pairs
                if pair.image.stem in learned or hashes.get(pair.image.stem) in learned}
        if seen:
            print(f"note: this model was fine-tuned on {len(seen)} of these {len(report.pairs)} corrections: their "
                  "scores are no test of it (napari's prospective scores leave such images out)", file=sys.stderr)
    elif learned:
        seen = images_learned(report.pairs, learned)
        if seen:
            print(f"note: this model (or a version it was fine-tuned from) trained on {len(seen)} of these "
                  f"{len(report.pairs)} images (corrections of the same pixels), e.g. {seen[0].name}: the scores are "
                  "no test of it", file=sys.stderr)
    note = predictor.mode_note(args.mode)
    if note:
        print(f"note: {note}", file=sys.stderr)
    bar = _progress_bar(len(report.pairs), "evaluate")
    result = evaluate_pairs(predictor, report.pairs, threshold=args.threshold, minmax=args.minmax,
                            progress=lambda i, n: bar.update(1), mode=args.mode, tta=args.tta)
    bar.close()
    result["model"] = predictor.description
    result["data"] = str(args.data)
    print(printable(format_table(result)))
    note_other_kind(predictor.config, result["dice"])
    if args.json:
        # Strict JSON: undefined figures (HD95 with an empty mask) are null, never NaN.
        atomic_write_text(args.json, json.dumps(json_ready(result), indent=1, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    return 0


def learned_by(config) -> set[str]:
    """What a model was fine-tuned on, with the versions it was fine-tuned from (in napari's model store, if made)."""
    from .checkpoints.names import existing_model_store
    from .corrections.auto_retrain import learned_by as learned_along
    from .corrections.auto_retrain import versions_of

    return learned_along(config, versions_of(existing_model_store()))


def images_learned(pairs, learned: set[str]) -> list:
    """The pairs' images whose pixels are among ``learned`` (read and hashed once each; unreadable ones are left to
    the evaluation to report)."""
    from .corrections.correction_set import image_hash
    from .files import read_image

    found = []
    for pair in pairs:
        try:
            if image_hash(read_image(pair.image)) in learned:
                found.append(pair.image)
        except (OSError, ValueError):
            continue
    return found


LOW_DICE = 0.5  # below it, on a folder of one kind, the model is more likely of another kind than merely weak


def note_other_kind(config, dice: float) -> None:
    """A low Dice with a model of one bundled line (polyp) while another bundled model exists (skin): say which to try.
    The widgets warn about a model of another line; `evaluate` on dermoscopy with the polyp model printed Dice 0.09
    and nothing else (trial of session 29). Said only when the model's line is known."""
    if not (dice == dice and dice < LOW_DICE):  # (NaN: nothing was scored)
        return
    from .checkpoints import bundled_models
    from .checkpoints.lines import ModelLines
    from .checkpoints.names import existing_model_store

    known = ModelLines.known(existing_model_store())
    lines = ModelLines({**known.parents, config.version: config.parent})
    line = lines.bundled_root(config.version)
    others = [name for name in bundled_models() if name != line]
    if line and others:
        print(f"note: Dice {dice:.2f} is low; this is a model of the bundled {line} model's line: if these images are "
              f"of another kind, try --checkpoint {others[0]} (the bundled {others[0]} model)", file=sys.stderr)


def note_model_in_use(checkpoint: Optional[str]) -> None:
    """With no --checkpoint the CLI runs the bundled model; when napari's widgets have a fine-tuned version in use, say
    how to run that one instead (trial of session 29: after a round and `models add --use`, `predict` ran the bundled
    model, which only the model line showed). A store never made is not made here."""
    if checkpoint is not None:
        return
    from .checkpoints.names import existing_model_store

    store = existing_model_store()
    current = store.current if store is not None else None
    if current:
        print(f"note: napari's widgets have version {current} in use; this run uses the bundled model "
              "(--checkpoint in-use runs that one)", file=sys.stderr)


def predict_folders(args: argparse.Namespace) -> tuple[Path, Path]:
    """The input and output folders, given as -i/-o or as two plain words (not both, nor one of each twice)."""
    words = list(args.folders)
    usage = "unetv2 predict -i IMAGES -o OUT (or: unetv2 predict IMAGES OUT)"
    if words and (args.input is not None or args.output is not None or len(words) != 2):
        raise ValueError(f"predict takes two folders, the images and where the masks go: {usage}")
    folders = (words[0], words[1]) if words else (args.input, args.output)
    if None in folders:
        raise ValueError(f"predict needs the folder of images and a folder for the masks: {usage}")
    return folders


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import Predictor
    from .inference.batch import predict_folder
    from .inference.shards import parse_shard, shard_from_environment

    args.input, args.output = predict_folders(args)
    shard = parse_shard(args.shard) if args.shard else shard_from_environment()
    if any(n is not None and n < 1 for n in (args.batch_size, args.threads, args.streams)):
        raise ValueError("--batch-size, --threads and --streams must be at least 1.")
    device = args.device
    if shard and not args.shard and device == "auto" and "LOCAL_RANK" in os.environ:
        import torch  # torchrun with GPUs: one GPU per process

        device = f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.device_count() > 1 else device
    predictor = Predictor(args.checkpoint, device=device, threads=args.threads)
    print(f"model: {predictor.description}" + (f"; shard {shard[0]}/{shard[1]}" if shard else ""))
    note_model_in_use(args.checkpoint)
    note = predictor.mode_note("tile" if args.tile else None)  # the widget says it too
    if note:
        print(f"note: {note}", file=sys.stderr)
    bar, started = None, time.time()

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None:  # made at the first image (the count is known then), its clock from the start of the run: the
            bar = _progress_bar(total, "predict")  # first image's time was left out, and the rate read 28000 img/s
            bar.start_t = bar.last_print_t = started  # (trial of session 30)
        bar.update(1)
        bar.set_postfix_str("".join(c if c.isprintable() else repr(c)[1:-1] for c in printable(name)))  # a "\n" in a name

    check_bar = None

    def checking(done: int, total: int) -> None:  # --continue reads each kept input whole for its SHA-256 first
        nonlocal check_bar
        if check_bar is None:
            check_bar = _progress_bar(total, "checking the masks already there")
        check_bar.n = done
        check_bar.refresh()
        if done == total:
            check_bar.close()

    try:  # the bars end their lines before any error message (a write can fail after the last image)
        summary = predict_folder(predictor, args.input, args.output, tile=args.tile, threshold=args.threshold,
                                 tta=args.tta, save_probabilities=args.save_probabilities, resume=args.resume,
                                 progress=progress, overlap_io=not args.sequential, batch_size=args.batch_size,
                                 shard=shard, streams=args.streams, checking=checking)
    finally:
        for made in (check_bar, bar):
            if made is not None:
                made.close()
    print(printable(summary.describe()))
    # 1 when an image failed (a script or a SLURM array must see it; the summary says which and why), 0 when every
    # image is segmented or was already (files that are not images are listed, not failures)
    return 1 if summary.count("error") else 0


def _describe_scores(label: str, scores: dict) -> str:
    from .engine.intervals import MeanInterval

    return f"{label}: Dice {MeanInterval.from_summary(scores).describe()}"


def finetune_summary(result, prospective: Optional[dict] = None) -> list[str]:
    """The figures after a round, each with its n and 95% interval; nothing shown as evidence on 1 image."""
    from .engine.finetune import HOLDOUT_FRACTION, MIN_HELD_OUT

    lines = [f"trained on {len(result.trained_on)} pairs (all of them: a held-out part is taken only when "
             f"{HOLDOUT_FRACTION:.0%} of the pairs is {MIN_HELD_OUT}+ images)"
             if not result.held_out else f"trained on {len(result.trained_on)} pairs; {len(result.held_out)} held out"]
    if result.held_out:
        lines += [_describe_scores("held-out, starting model", result.before), _describe_scores("held-out, new model", result.after)]
    if prospective:
        lines += ["prospective (each version's masks against the corrections of them, accepted while it was in use):"]
        lines += [f"  {score.describe()}" for score in prospective.values()]
    if result.reference:
        lines += [_describe_scores("original-domain samples, starting model", result.reference["parent"]),
                  _describe_scores("original-domain samples, new model", result.reference["new"])]
    elif result.reference_note:
        lines.append(result.reference_note)
    return lines


def _corrections_of_the_line(correction_set, checkpoint) -> list:
    """The set's pairs a fine-tuning of ``checkpoint`` trains on: those of its line and of unknown origin, as a widget
    round takes them (``checkpoints/lines.py``); the others are named on the console."""
    from .checkpoints import read_config
    from .checkpoints.lines import lines_around

    if checkpoint is None:  # no model to place in a line (an untrained start): every correction
        return correction_set.pairs()
    lines = lines_around(checkpoint)
    ours, others = lines.split(correction_set.entries(), read_config(checkpoint).version)
    if others:
        versions = ", ".join(sorted({e.model_version for e in others}))
        print(f"left out {len(others)} correction(s) made with model version(s) {versions}, of another model's line "
              f"than {checkpoint.name} (segmented with another kind of model)", flush=True)
    if not ours:
        raise ValueError(f"None of the {len(others)} corrections in {correction_set.root} is of the line of "
                         f"{checkpoint}: fine-tune the model they were made with (--checkpoint).")
    return correction_set.pairs({e.id for e in ours})


def cmd_finetune(args: argparse.Namespace) -> int:
    from .engine import finetune
    from .engine.pairs import find_pairs
    from .engine.recipes import parse_override
    from .files import atomic_write_text

    replay = find_pairs(args.replay).pairs if args.replay else None
    from .checkpoints import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)
    prospective = None
    if (args.data / "provenance").is_dir():  # a correction set: its entries carry prospective scores
        from .corrections import CorrectionSet
        from .corrections.prospective import version_scores

        correction_set = CorrectionSet(args.data)
        prospective = version_scores(correction_set)
        if not correction_set.entries():
            raise ValueError(f"The correction set {args.data} has no entries.")
        corrections = _corrections_of_the_line(correction_set, checkpoint)
    else:
        corrections = find_pairs(args.data).pairs
    with tempfile.TemporaryDirectory(prefix="unetv2-finetune-pairs-") as scratch:
        if prospective is not None:
            # The run's own links to the set's files, as a widget round has: a window that accepts a new mask for one
            # of these images meanwhile replaces its entry and deletes its files, which killed the run mid-epoch.
            from .corrections.retrain import pinned

            corrections = pinned(corrections, Path(scratch))
        events = finetune.finetune_events(
            checkpoint, corrections, args.out, train_parts=args.train_parts, epochs=args.epochs,
            overrides=dict(parse_override(s) for s in args.set) or None, replay=replay, device=args.device,
            command=args.invocation)
        result = drive_training(events, "finetune")
    summary = {"checkpoint": str(result.checkpoint), "trained_on": result.trained_on, "held_out": result.held_out,
               "held_out_before": result.before, "held_out_after": result.after, "reference": result.reference,
               "prospective": {v: s.as_dict() for v, s in (prospective or {}).items()}}
    atomic_write_text(Path(args.out) / "finetune.json", json.dumps(summary, indent=1) + "\n")
    print("\n".join(finetune_summary(result, prospective)))
    print(f"new checkpoint: {result.checkpoint}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The model store of the napari widgets from the command line: a checkpoint trained with the CLI could be run in
    napari from file only, never put in use, retrained or rolled back there (trial of session 28)."""
    from .checkpoints import ModelStore, bundled_models, load_checkpoint, read_config, resolve_checkpoint
    from .checkpoints.checkpoint import DEFAULT_BUNDLED
    from .storage import default_model_store_dir

    store = ModelStore(default_model_store_dir())
    if args.action == "add":
        if not args.target:
            raise ValueError("models add needs a checkpoint: unetv2 models add RUN/best.safetensors [--use]")
        checkpoint = resolve_checkpoint(args.target)
        _, adding = load_checkpoint(checkpoint)  # weights and JSON verified before anything is copied into the store
        already = adding.version in {c.version for c in store.versions()}
        config = store.add(checkpoint)
        what = f"{config.version} ({config.name or config.encoder})"
        print(f"{what} is already in {store.root}: nothing added" if already else f"added {what} to {store.root}")
        if args.put_in_use:
            store.use(config.version)
            print(f"in use now: {config.version} (napari's widgets follow; Roll back returns to the one before)")
        return 0
    shipped = bundled_models()  # by name: polyp (the default), skin
    if args.action == "use":
        if not args.target:
            raise ValueError(f"models use needs a version id (see unetv2 models), 'bundled' or a bundled model's name "
                             f"({', '.join(shipped)})")
        if args.target in ("bundled", DEFAULT_BUNDLED):
            store.use(None)
            print(f"in use now: the bundled {DEFAULT_BUNDLED} model")
        elif args.target in shipped:  # another bundled model joins the store first, as the widgets do it
            version = store.add(shipped[args.target]).version
            store.use(version)
            print(f"in use now: the bundled {args.target} model ({version})")
        else:
            store.use(args.target)
            print(f"in use now: {args.target}")
        return 0
    if args.target:
        raise ValueError(f"models list takes no argument (got {args.target!r})")
    current, bundled = store.current, resolve_checkpoint(None)
    scored = _prospective_scores()

    def tested(version: str) -> str:
        score = scored.get(version)
        return f"; prospective Dice {score.dice_text()}" if score is not None and score.n else ""

    print(f"model store: {store.root}")
    if scored:  # (whose corrections the prospective scores below count)
        print(printable(f"prospective Dice: the masks each version made against their corrections in "
                        f"{_correction_set_used_last()}"))
    if bundled is not None:
        version = read_config(bundled).version
        print(f"{'*' if current is None else ' '} bundled    the bundled {DEFAULT_BUNDLED} model ({version}{tested(version)})")
    else:
        print("  (no bundled model installed)")
    stored = {config.version: config for config in store.versions()}
    shipped_versions = {read_config(path).version: name for name, path in shipped.items()}
    for version, name in shipped_versions.items():  # the other bundled models, listed before they are first used
        if name != DEFAULT_BUNDLED and version not in stored:
            print(f"  {name:<10} the bundled {name} model ({version}; 'unetv2 models use {name}' puts it in use)")
    dates = {version: store.added_time(version) for version in stored}
    for config in sorted(stored.values(), key=lambda c: dates[c.version]):  # oldest first (ids sort by chance)
        mark = "*" if config.version == current else " "
        trained = config.training.get("trained_on") if isinstance(config.training, dict) else None
        what = f"; trained on {len(trained)} corrections" if isinstance(trained, list) else ""
        when = shown(stamp_of(dates[config.version])) if dates[config.version] else "?"
        saved = config.training.get("saved_at") if isinstance(config.training, dict) else None
        when = f"{when}; made {shown(saved)}" if isinstance(saved, str) else when
        bundled_as = (f"the bundled {shipped_versions[config.version]} model, "
                      if config.version in shipped_versions else "")
        print(printable(f"{mark} {config.version}  {config.name or config.encoder} ({bundled_as}from "
                        f"{config.parent or '-'}; added {when}{what}{tested(config.version)}"
                        f"{scores_note(config.metrics)})"))
    for damaged in store.damaged:
        print(f"  {damaged}  (its JSON is missing or damaged: not usable)")
    missing = store.missing_current
    if missing:  # (summary.csv rows and corrections name it: listed, not dropped)
        print(printable(f"! {missing}  {store.missing_current_note()}: napari runs the bundled model in its place; put "
                        "the folder back, or `unetv2 models use VERSION`"))
    print("* = in use in napari" + ("; ! = in use, missing" if missing else ""))
    return 0


def cmd_kept_edits(args: argparse.Namespace) -> int:
    """The masks kept for napari (:mod:`.annotation.kept_edits`): nothing listed them, and the folder was the only
    way to see, save or clean them (stop 33's list)."""
    from .annotation.kept_edits import KEY, KeptEdit, KeptEdits, export_stem
    from .files import IMAGE_SUFFIXES

    store = KeptEdits()
    if args.action == "forget":
        if not args.target or not KEY.match(args.target):
            raise ValueError("kept-edits forget needs an image key as `unetv2 kept-edits` lists it (32 hex digits)")
        if not any(key == args.target for key, _, _ in store.listing()):
            raise ValueError(f"no kept edits of {args.target} in {store.root}")
        store.drop(args.target)
        print(f"forgot the kept edits of {args.target}")
        return 0
    entries = store.listing()
    if args.action == "export":
        if not args.target:
            raise ValueError("kept-edits export needs a folder: unetv2 kept-edits export FOLDER")
        folder = Path(args.target)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file, not a folder: nothing was written")
        images = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.stem.endswith(("_mask", "_proposal"))) if folder.is_dir() else []
        if images:  # (a folder session over it counted the masks as images: trial of session 34; and in a folder of
            # masks, such as a Batch run's output, its <image>.png would be found before the exported <image>_mask.png)
            raise ValueError(f"{folder} holds image files ({images[0]}, ...): export into a folder of its own, which a "
                             "folder session can then take as its 'existing masks'")
        stems = [(export_stem(about), role) for _, role, about in entries]
        per_name = Counter(stems)  # images of one name: told apart by their key
        written = 0
        for (key, role, about), stem in zip(entries, stems):
            if about.get("damaged"):
                continue
            try:
                print(f"wrote {store.export(key, folder, role, with_key=per_name[stem] > 1)}")
                written += 1
            except (FileExistsError, ValueError) as err:
                print(f"skipped {key} ({role}): {err}", file=sys.stderr)
        if entries:  # ("0 of 0 kept masks written" came before the drafts it wrote: verification of session 43)
            print(f"{written} of {len(entries)} kept masks written to {args.target}")
        # a folder session's drafts, listed below the kept masks, were not exported ("0 of 0 written" beside "1 draft
        # painted and not accepted": trial of session 41): written as <image>_mask.png too, the names it finds
        from .files import atomic_write_bytes, read_mask

        shared_drafts, drafts_written = set(), 0
        sessions = _session_drafts()
        # an image of one name painted in two sessions (two sites' IMG_0001): each named by its session folder, as
        # the kept masks of one name are by their key (the second was skipped as "exists already")
        in_sessions = Counter(stem for _, drafts in sessions for stem in {name.split("/")[-1] for name in drafts})
        named = _told_apart([folder for folder, _ in sessions])
        for session_folder, drafts in sessions:
            for name in drafts:
                stem = name.split("/")[-1]
                # a draft kept apart by a window: named by that window, beside the image's own (both were written to
                # one name, the second "exists already": cold review of session 41)
                apart = f"-{name.split('/')[0].split('-')[-1]}" if "/" in name else ""
                of_session = f"-{named[session_folder]}" if in_sessions[stem] > 1 else ""
                if of_session:
                    shared_drafts.add(stem)
                target = folder / f"{stem}{of_session}{apart}_mask.png"
                if target.exists():
                    print(printable(f"skipped the draft of {stem} (folder session {session_folder}): {target} exists "
                                    "already; it was left as it is"), file=sys.stderr)
                    continue
                draft = session_folder / "drafts" / f"{name}.png"
                try:
                    read_mask(draft)  # (a damaged draft is not copied out as a mask)
                    folder.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(target, draft.read_bytes())
                except (ValueError, OSError) as err:
                    print(printable(f"skipped the draft of {stem} (folder session {session_folder}): {err}"),
                          file=sys.stderr)
                    continue
                print(printable(f"wrote {target} (a folder session's draft: {session_folder})"))
                drafts_written += 1
        if not entries and not sessions:
            print("nothing to export: no kept masks, and no folder session holds a draft")
        elif not entries:
            print(f"{drafts_written} folder session draft(s) written to {args.target}")
        shared = sorted({name for (name, _role), count in per_name.items() if count > 1} | shared_drafts)
        if shared:  # (written as <name>-<key>_mask.png, which a folder session does not look for: said)
            how = "their key in the name (<name>-<key>_mask.png)" + (
                "; a folder session's drafts with their session folder's name (<name>-<session>_mask.png)"
                if shared_drafts else "")
            print(printable(f"note: images of one name ({', '.join(shared[:3])}{' ...' if len(shared) > 3 else ''}) "
                            f"were written with {how}: a folder session's 'existing masks' finds <name>_mask.png only; "
                            "rename the one that belongs to your folder"))
        return 0
    if args.target:
        raise ValueError(f"kept-edits list takes no argument (got {args.target!r})")
    corrected = _corrected_images()
    print(f"kept edits: {store.root}")
    for key, role, about in entries:
        if about.get("damaged"):
            print(f"  {key}  {role}: its JSON is damaged (not given back; forget removes it)")
            continue
        dims = [str(n) for n in about.get("shape", ())] if isinstance(about.get("shape"), list) else []
        shape = "x".join(dims[::-1][:2]) or "?"  # width x height
        shape += f" x {dims[0]} frames" if len(dims) == 3 else ""  # (a clip's: "640x360x8" read as one image)
        later = corrected.get(key, "")
        older = (f"; older than its correction stored {shown(later)}: not given back, export or forget it"
                 if later and not KeptEdit(key, None, None, about).newer_than(later) else "")
        named = about.get("file") or about.get("image", "?")  # (the file, not napari's "frame [1]": session 39)
        print(printable(f"  {key}  {shown(about.get('kept_at'))}  {role:<8} {named} ({shape}, painted "
                        f"over {about.get('model_version') or '?'}{older})"))
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}; given back when their image is segmented "
          "again or shown in a folder session, removed when a correction of it is stored in napari")
    for folder, drafts in _session_drafts():  # (kept by the session itself: "0 entries" hid them; trial of session 39)
        named = [name if "/" not in name else f"{name.split('/')[-1]} (kept apart by a window)" for name in drafts]
        print(printable(f"folder session {folder}: {len(drafts)} draft(s) painted and not accepted ("
                        f"{', '.join(named[:5])}{' ...' if len(named) > 5 else ''}); the session gives them back, "
                        "Accept & next stores them, `kept-edits export` writes them"))
    return 0


def _names_image(source: object, given: str) -> bool:
    """Whether ``given`` names the image a correction was stored from: its file name, or that name without its
    suffix (napari's layer name)."""
    return isinstance(source, str) and given.casefold() in (source.casefold(), Path(source).stem.casefold())


def _learned_by_the_model_in_use(corrections, entry_id: str) -> str:
    """What removing a correction does not undo: the model in use learned from it ("" when not)."""
    from .corrections.auto_retrain import learned_already
    from .storage import default_model_store_dir

    store = _model_store_if_any(default_model_store_dir())
    if store is None:
        return ""
    found = learned_already(store, store.current, [e for e in corrections.entries() if e.id == entry_id])
    if found is None:
        return ""
    from .checkpoints.lines import bundled_versions

    before = bundled_versions().get(found.before, found.before)  # (a bundled model by its name: `use polyp`)
    undo = (f"to undo it, `unetv2 models use {before}` and fine-tune again" if found.found else
            f"the version before it, {found.before}, is not in the model store" if found.before else
            "no version of its line before it is known here")
    return (f"note: the model in use, version {store.current}, learned this image (this correction, or an earlier one "
            f"of the image): removing it does not take that out of it, nor out of versions fine-tuned from it; {undo}")


def _model_store_if_any(root: Path):
    from .checkpoints.model_store import ModelStore

    return ModelStore(root) if (root / "versions").is_dir() else None


def _confirm_purge(name: str, folder: Path, what: str) -> bool:
    # the question on stderr: with stdout redirected (`> log`, `| tee`) it went into the file and the command waited
    # with nothing shown (cold review of session 43); no answer (Ctrl-D) is no
    print(printable(f"Delete {name} ({what}) from the history of {folder} for good? Its image and masks cannot be "
                    "restored after this. [y/N] "), end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_corrections(args: argparse.Namespace) -> int:
    """The correction set's records for whoever answers for it (a coordinator, a statistician): who stored each
    correction, from which model, and what left the set (:mod:`.corrections.history`)."""
    from .corrections import CorrectionSet
    from .corrections.history import events, purge, read_history, restore
    from .files.table import csv_text

    folder = args.correction_set or _correction_set_used_last()
    if not (folder / "provenance").is_dir():
        raise ValueError(f"{folder} is not a correction set (no provenance/ folder): name one with --set FOLDER")
    corrections = CorrectionSet(folder)
    if args.action in ("restore", "purge", "remove"):
        if not args.target:
            listed = "`unetv2 corrections` lists its id" if args.action == "remove" else \
                "a history entry's name, as `unetv2 corrections history` lists it"
            raise ValueError(f"corrections {args.action} needs {listed}")
        if args.action in ("restore", "purge") and not (folder / "history" / args.target).is_dir():
            # an image's name given for a history entry's ("no entry 'IMD006.jpg' in the history" while `history`
            # listed one: verification of session 43): its entries' names said
            named = [item.name for item in read_history(folder)[0] if _names_image(item.entry.source, args.target)]
            if named:
                raise ValueError(f"no history entry {args.target!r} in {folder}: {args.action} takes a history entry's "
                                 f"name, as `unetv2 corrections history` lists it; {args.target}'s: {', '.join(named)}")
        if args.action == "restore":
            entry = restore(corrections, args.target)
            print(printable(f"restored {entry.id} ({entry.source}) into {folder}"))
        elif args.action == "remove":  # (as Correct & retrain's Remove selected: into the history)
            if not corrections.holds(args.target):
                # an image's name given for an id ("no correction 'IMD006.jpg'" while list showed one of it: clinician
                # trial of session 43): its corrections' ids said
                of_image = [e.id for e in corrections.entries() if _names_image(e.source, args.target)]
                raise ValueError(f"no correction {args.target!r} in {folder}"
                                 + (" (it is in its history)" if (folder / "history" / args.target).is_dir() else "")
                                 + (f": remove takes a correction's id, as `unetv2 corrections` lists it; "
                                    f"{args.target}'s: {', '.join(of_image)}" if of_image else ""))
            note = _learned_by_the_model_in_use(corrections, args.target)
            corrections.remove(args.target)
            print(printable(f"removed {args.target} from {folder} (kept in its history: `unetv2 corrections restore "
                            f"{args.target}` brings it back)"))
            if note:
                print(printable(note))
        else:
            # asked at a terminal: the one step of the set that cannot be undone (stop note 42); a script passes --yes,
            # or runs without a terminal as before
            ask = sys.stdin is not None and sys.stdin.isatty() and not args.yes
            what = purge(folder, args.target, confirm=partial(_confirm_purge, args.target, folder) if ask else None)
            if what is None:
                print(printable(f"nothing deleted: {args.target} stays in the history of {folder}"))
                return 1
            print(printable(f"deleted {args.target} ({what}) from the history of {folder} for good"))  # (an image name)
        return 0
    if args.target:
        raise ValueError(f"corrections {args.action} takes no argument (got {args.target!r})")
    retired, damaged = read_history(folder)  # (one look at it: list and history)
    if args.action == "history":
        rows = [{"name": item.name, "id": item.entry.id, "source": item.entry.source, "stored": item.entry.created,
                 "annotator": item.entry.annotator or "", "model_version": item.entry.model_version,
                 "pixels_changed": item.entry.pixels_changed, "left": item.retired, "left_by": item.by or "",
                 "why": item.why + (f" (files missing: {', '.join(item.missing)})" if item.missing else "")}
                for item in retired]
    else:
        rows = [{"id": e.id, "source": e.source, "source_folder": e.source_folder or "", "stored": e.created,
                 "annotator": e.annotator or "", "model_version": e.model_version,
                 "model_settings": e.model_settings or "", "pixels_changed": e.pixels_changed,
                 "foreground_pixels": e.foreground_pixels, "height": e.height, "width": e.width,
                 "seconds_spent": "" if e.seconds_spent is None else round(e.seconds_spent, 1),
                 "clicks": "" if e.clicks is None else e.clicks,
                 "prospective_dice": "" if e.prospective_dice is None else e.prospective_dice,
                 "image": e.image_file, "mask": e.mask_file, "image_hash": e.image_hash or ""}
                # oldest first, by the instant stored (ids carry the writer's local clock: Los Angeles' 05:01 before
                # Berlin's 13:59, the earlier: verification of session 42)
                for e in sorted(corrections.entries(), key=lambda entry: (instant(entry.created), entry.id))]
    if args.csv:
        fields = list(rows[0]) if rows else (["name", "id", "source", "stored", "annotator", "model_version",
                                              "pixels_changed", "left", "left_by", "why"] if args.action == "history"
                                             else ["id", "source", "source_folder", "stored", "annotator",
                                                   "model_version", "model_settings", "pixels_changed",
                                                   "foreground_pixels", "height", "width", "seconds_spent", "clicks",
                                                   "prospective_dice", "image", "mask", "image_hash"])
        print(csv_text(fields, rows), end="")
        return 0
    print(printable(f"correction set: {folder}"))
    for row in rows:
        who = f" by {row['annotator']}" if row["annotator"] else ""
        if args.action == "history":
            left_by = f" by {row['left_by']}" if row["left_by"] else ""
            print(printable(f"  {row['name']}  {row['source']}  (stored {shown(row['stored'])}{who}, "
                            f"{row['pixels_changed']} px changed; left {shown(row['left'])}{left_by}: "
                            f"{row['why']})"))
        else:
            settings = f" ({row['model_settings']})" if row["model_settings"] else ""
            print(printable(f"  {row['id']}  {row['source']}  stored {shown(row['stored'])}{who}; model "
                            f"{row['model_version'] or '?'}{settings}; {row['pixels_changed']} px changed"
                            + (f"; {row['seconds_spent']} s" if row["seconds_spent"] != "" else "")))
    history = len(retired) if args.action == "list" else len(rows)
    if args.action == "history":
        for name in damaged:
            print(printable(f"  {name}  (its {folder.name}/history/{name}/retired.json cannot be read: not restorable; "
                            "`unetv2 corrections purge` deletes it)"))
        logged = events(folder)  # (what the entries no longer say: an earlier leaving, a return, a purge)
        if logged:
            print("events (history/events.jsonl):")
        for event in logged:
            what = event.get("why") if event.get("event") == "left" else ""
            print(printable(f"  {shown(event.get('when'))}  {event.get('event')} "
                            f"{event.get('name')} ({event.get('source')})" + (f": {what}" if what else "")
                            + (f" by {event['by']}" if event.get("by") else "")))
        total = len(rows) + len(damaged)
        print(f"{total} entr{'y' if total == 1 else 'ies'} in the history"
              + (f" ({len(damaged)} of them damaged)" if damaged else "")
              + "; `unetv2 corrections restore NAME` brings one back, `purge NAME` deletes one for good")
    else:
        by = Counter(row["annotator"] or "(not recorded)" for row in rows)
        print(f"{len(rows)} correction(s)" + (f" ({', '.join(f'{n} by {who}' for who, n in by.most_common())})"
                                              if rows else "")
              + f"; {history} in the history (`unetv2 corrections history`)")
    return 0


def _prospective_scores() -> dict:
    """{version: ProspectiveScore} from the correction set the widgets used last (empty without one)."""
    from .corrections import CorrectionSet
    from .corrections.prospective import version_scores

    folder = _correction_set_used_last()
    if not (folder / "provenance").is_dir():
        return {}
    try:
        return version_scores(CorrectionSet(folder))
    except OSError:
        return {}


def _correction_set_used_last() -> Path:
    from .remembered import correction_set_in_use

    return correction_set_in_use()


def _told_apart(folders: list) -> dict:
    """{folder: a name for it in a file name, unique among ``folders``}: its own name, else with its parent's
    (``siteA-session``), else with a count (two sessions both called ``session`` were exported to one name, the second
    skipped: cold review of session 43)."""
    names = {folder: folder.name for folder in folders}
    if len(set(names.values())) < len(names):
        names = {folder: f"{folder.parent.name}-{folder.name}" for folder in folders}
    seen: Counter = Counter()
    for folder in folders:
        seen[names[folder]] += 1
        if seen[names[folder]] > 1:
            names[folder] = f"{names[folder]}-{seen[names[folder]]}"
    return names


def _session_drafts() -> list:
    """[(session folder, [draft names])] of the folder sessions known here (those under the data home's sessions/,
    and every one opened elsewhere) that hold drafts."""
    from .remembered import session_folders_used
    from .storage import data_home

    sessions = data_home() / "sessions"
    folders = sorted(p for p in sessions.iterdir() if p.is_dir()) if sessions.is_dir() else []
    folders += [Path(p) for p in session_folders_used()]
    # one folder under two spellings (a symlinked share, the data home's own sessions remembered too) listed once: its
    # draft was exported twice, under a session-folder name and with a "skipped" line (cold review of session 43)
    by_place = {}
    for folder in folders:
        by_place.setdefault(os.path.realpath(folder), folder)  # (the first spelling met)
    found = []
    for folder in by_place.values():
        try:  # the images' drafts, then those a window kept apart while another held the image's (drafts/.open-*/)
            drafts = [p.relative_to(folder / "drafts").as_posix()[:-len(".png")]
                      for pattern in ("*.png", ".open-*/*.png") for p in sorted((folder / "drafts").glob(pattern))]
        except OSError:
            continue
        if drafts:
            found.append((folder, drafts))
    return found


def _corrected_images() -> dict:
    """{image hash: when its latest correction was stored} of the correction set the widgets used last (empty without
    one; `models` and `corrections` read that one too)."""
    from .corrections import CorrectionSet
    from .corrections.correction_set import entries_by_image

    folder = _correction_set_used_last()
    if not (folder / "provenance").is_dir():
        return {}
    return {key: entries[-1].created for key, entries in entries_by_image(CorrectionSet(folder).entries()).items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command. Expected errors (bad input, the OS, memory) end in one line on stderr and exit
    status 2; ``--debug`` adds the traceback. Ctrl-C exits with 130."""
    from .errors import EXPECTED_ERRORS, one_line

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `predict IN --device cpu OUT`: argparse takes the plain words before the first option only, and refused the
    # second folder as an unrecognised argument. Plain words left over are predict's folders; anything else is not.
    if args.command == "predict" and extra and not any(word.startswith("-") for word in extra):
        args.folders = [*args.folders, *map(Path, extra)]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.invocation = "unetv2 " + " ".join(shlex.quote(a) for a in argv)  # recorded in the checkpoints it writes
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "finetune": cmd_finetune,
                "models": cmd_models, "kept-edits": cmd_kept_edits, "corrections": cmd_corrections}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        resumable = args.command == "train" and (Path(args.out) / "last").is_dir()
        print("\ninterrupted: finished files are kept, nothing half-written was left"
              + ("; the same command with --resume goes on from the last finished epoch" if resumable else ""),
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`unetv2 models | head`): no error line, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit fails otherwise
        return 141
    except EXPECTED_ERRORS as err:
        if args.debug:
            traceback.print_exc()
        kind = "" if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: "
        hint = "" if args.debug else " (--debug shows the traceback)"
        hint = hint if not isinstance(err, (ValueError, FileNotFoundError)) else ""
        print(printable(f"unetv2 {args.command}: error: {kind}{one_line(err, limit=2000)}{hint}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
