"""Batch-folder prediction: every image in a folder -> OUT/<stem>.png masks and a summary.csv.

Outputs are written atomically, so an interrupt leaves finished images complete and no half file;
``resume`` skips images whose outputs exist. Existing results are never overwritten silently.

Rules (docs/robustness.md):
- Output names: ``<stem>.png`` (``<stem>.tif`` for a stack) and ``<stem>_prob.tif``. Images whose
  output names would coincide (``a.jpg`` and ``a.png``; ``A.png`` and ``a.png`` on a case-insensitive
  disk; ``x_prob.tif`` and ``x.png`` with probabilities) are *not* segmented: each gets an error row
  naming the others, so no result can ever stand for the wrong image. The others go on.
- One bad file never stops the run: anything that cannot be read or segmented gets a summary row
  with a one-line reason. Only output problems (a full disk, a read-only folder) stop it.
- ``summary.csv`` is merged with the one already in the folder: rows of earlier runs are kept, and a
  file skipped by ``--continue`` keeps its earlier row (size, foreground, time).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from ..annotator import current_annotator
from ..errors import PER_FILE_ERRORS, one_line
from ..files import (
    IMAGE_SUFFIXES,
    locked,
    read_image,
    remove_stale_temporaries,
    same_file_key,
    write_png_atomic,
    write_tiff_atomic,
)
from ..files.digest import DigestingReader
from ..files.paths import path_text
from ..files.times import now_stamp
from .allocator import release_freed_memory
from .kept_outputs import outputs_of_other_images
from .pipeline import OrderedWriter, ParallelPredictionStream, PredictionStream, split_threads
from .predictor import Predictor
from .settings import settings_text
from .shards import Shard, in_shard, merge_summaries, summary_name
from .summary import KEPT_NOTE, SummaryJournal, read_summary, update_summary
from .threads import default_cpu_threads

# zlib level of mask PNGs: level 1 writes a 0/255 mask in about half the time of Pillow's default 6; with
# zlib's run-length strategy the files are also smaller than level 6's default strategy (about 1 kB for a
# 512x640 polyp mask). The pixels read back are identical at every level and strategy.
MASK_PNG_LEVEL = 1
# summary.csv is rewritten whole, so rewriting it after every image costs O(n) per image (O(n^2) for the
# folder): it is rewritten at most this often while images are done, and always at the end (and on a stop
# or an error). Between rewrites each row goes to the run's journal (``summary.py``): a hard kill loses none.
SUMMARY_EVERY_S = 1.0
# On the CPU in resize mode, this many images at most go through the network at once, each on its share
# of the threads (``pipeline.ParallelPredictionStream``): 2 single-thread streams on a 2-core machine,
# 4 streams of 4 threads on 16 cores. More streams would mostly add Python-lock contention and memory.
MAX_CPU_STREAMS = 4
DEFAULT_TILE = 512  # the tile side when the model's own mode is tile and no --tile is given


@dataclass
class BatchSummary:
    output: Path
    rows: list[dict] = field(default_factory=list)
    # --continue kept outputs that this model did not make: versions named by the earlier summary rows, and
    # how many kept outputs no summary row accounts for (masks put there by hand or by another program)
    other_models: list[str] = field(default_factory=list)
    by_other_models: int = 0  # how many kept outputs those versions made (the others kept: this model's own)
    by_other_files: list[str] = field(default_factory=list)  # ... which
    # the summary rows of the runs that made the outputs kept ({file: row}): a kept mask opened in the viewer is its
    # model's, not the model of this run (its rows say only "skipped-done": a correction of such a mask was stored as
    # "model ?", scored for no version and trained the wrong line: clinician trial of session 43)
    kept_rows: dict = field(default_factory=dict)
    # ... and the settings (mode, threshold, TTA) they were made with, where they differ from this run's
    other_settings: list[str] = field(default_factory=list)
    settings: str = ""  # this run's (run_settings), in each row it makes
    model: str = ""  # the model that ran (Predictor.description): said with the result
    unrecorded: int = 0
    stopped: bool = False  # cancelled before every image was done
    subfolders: int = 0  # folders inside the input folder: not looked into (said, so none is thought done)
    empty: list[str] = field(default_factory=list)  # images segmented here whose mask has nothing marked
    shard: Optional[tuple] = None  # (i, n) of a sharded run
    other_shards: int = 0  # the folder's files that fell to the other shards

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    def describe(self) -> str:
        lines = [f"{self.count('done')} segmented, {self.count('skipped-done')} already done, "
                 f"{self.count('not-an-image')} not images, {self.count('error')} failed -> {self.output}"]
        lines += [f"  {r['file']}: {r['status']} {r['note']}" for r in self.rows if r["status"] in ("not-an-image", "error")]
        if self.other_models and self.count("done"):
            named = ", ".join(self.by_other_files[:3]) + (" ..." if len(self.by_other_files) > 3 else "")
            lines.append(f"  note: {self.by_other_models} result(s) kept from earlier runs ({named}) were made by model "
                         f"version(s) {', '.join(self.other_models)}: this folder mixes models (summary.csv names each "
                         "file's); to have every mask made by this model, run into a new output folder")
        elif self.other_models and not (self.count("error") or self.stopped) \
                and self.by_other_models + self.unrecorded < self.count("skipped-done"):
            # some kept results are this model's own (another run of it into this folder, at the same time or before):
            # "made by version X" alone named the other model for all of them (trial of session 40)
            lines.append(f"  note: nothing was segmented now: every result was already there, {self.by_other_models} of "
                         f"them made by model version(s) {', '.join(self.other_models)} and the others by this model: this "
                         "folder mixes models (summary.csv names each file's)")
        elif self.other_models:
            kept = "the results kept" if self.count("error") or self.stopped else "every result was already there"
            lines.append(f"  note: nothing was segmented with this model: {kept}, "
                         f"made by model version(s) {', '.join(self.other_models)} (to segment with this one, choose a new output "
                         "folder: without continue this one is refused, as it holds results)")
        if self.other_settings:
            lines.append(f"  note: results kept from earlier runs were made with other settings ({'; '.join(self.other_settings)}"
                         "): this folder mixes settings (summary.csv names each file's)")
        if self.unrecorded:
            lines.append(f"  note: {self.unrecorded} kept output(s) have no summary row: not made by this program's runs "
                         "into this folder (masks put there otherwise?)")
        if self.empty:  # the model found nothing there: a file of zeros is easily taken for a result like the others
            few = ", ".join(self.empty[:3]) + (f" and {len(self.empty) - 3} more" if len(self.empty) > 3 else "")
            lines.append(f"  note: the model marked nothing in {len(self.empty)} of the images segmented (empty masks): "
                         f"{few}")
        if self.shard is not None and not self.rows and self.other_shards:  # "0 segmented" with nothing else said
            lines.append(f"  note: none of the folder's {self.other_shards} file(s) falls to shard {self.shard[0]}/"
                         f"{self.shard[1]} (shares go by a hash of each file name): the other shards take them all")
        if self.subfolders:
            lines.append(f"  note: {self.subfolders} folder(s) inside the input folder were not looked into (run "
                         "each as its own input folder)")
        return "\n".join(lines)

    def failures(self, at_most: int = 3) -> str:
        """The failed files and why, for a one-line status: 'a.png (reason); b.png (reason) and 3 more'."""
        failed = [r for r in self.rows if r["status"] == "error"]
        shown = "; ".join(f"{r['file']} ({r['note']})" for r in failed[:at_most])
        return shown + (f" and {len(failed) - at_most} more" if len(failed) > at_most else "")


# ---- output names --------------------------------------------------------------------------------------

def output_paths(out_dir: Path, stem: str, is_stack: bool, probabilities: bool) -> list[Path]:
    paths = [out_dir / (f"{stem}.tif" if is_stack else f"{stem}.png")]
    if probabilities:
        paths.append(out_dir / f"{stem}_prob.tif")
    return paths


def existing_mask(out_dir: Path, stem: str) -> Optional[Path]:
    """The mask file of ``stem`` in ``out_dir`` (an image's ``<stem>.png`` or a stack's ``<stem>.tif``), if one is there."""
    return next((path for path in (output_paths(out_dir, stem, stack, False)[0] for stack in (False, True))
                 if path.is_file()), None)


def possible_outputs(out_dir: Path, stem: str, probabilities: bool) -> list[Path]:
    """Every file an image may produce (whether it is a stack is known only after reading it)."""
    return output_paths(out_dir, stem, False, probabilities) + output_paths(out_dir, stem, True, False)


def name_clashes(images: Iterable[Path], out_dir: Path, probabilities: bool) -> dict[Path, str]:
    """{image: reason} for images whose outputs would share a name (compared as :func:`same_file_key`)."""
    owners: dict[str, list[Path]] = {}
    for image in images:
        for path in possible_outputs(out_dir, image.stem, probabilities):
            owners.setdefault(same_file_key(path.name), []).append(image)
    clashes: dict[Path, list[Path]] = {}
    for group in owners.values():
        if len(set(group)) > 1:
            for image in group:
                clashes.setdefault(image, []).extend(g for g in group if g != image)
    return {image: ("output name clashes with " + ", ".join(sorted({display_name(o) for o in others}))
                    + ": rename one of them (neither was segmented)")
            for image, others in clashes.items()}


def display_name(path: Path) -> str:
    """The file name as text for the summary, also when it is not valid UTF-8 (bytes shown as \\xNN)."""
    return path_text(path.name)


# ---- one file ------------------------------------------------------------------------------------------

def write_and_record(prediction, output_dir: Path, stem: str, save_probabilities: bool, keep: tuple, row: dict,
                     outcome: dict, journal: Optional[SummaryJournal] = None) -> None:
    """:func:`write_outputs`, then ``row`` takes ``outcome`` (its status): in the writer's thread, so summary.csv
    never says "done" for a mask that a full disk kept from being written. A failed write's row says why. The row goes
    to the run's ``journal`` at once (summary.csv is rewritten at most once a second)."""
    try:
        write_outputs(prediction, output_dir, stem, save_probabilities, keep)
    except Exception as err:
        row.update(status="error", note=f"could not write its outputs: {one_line(err)}")
        raise
    row.update(outcome, finished_at=now_stamp())
    if journal is not None:
        try:
            journal.append(row)
        except OSError:  # (a full disk: the files are written; summary.csv's next rewrite records the row)
            pass


def write_outputs(prediction, output_dir: Path, stem: str, save_probabilities: bool, keep: tuple = ()) -> None:
    """The mask (and probability) files of one prediction; a path in ``keep`` (an output that existed before a
    ``--continue`` run, perhaps a mask the user has corrected since) is left as it is."""
    is_stack = prediction.mask.ndim == 3
    mask_path, *prob_path = output_paths(output_dir, stem, is_stack, save_probabilities)
    prob_path = [path for path in prob_path if path not in keep]
    if mask_path in keep:
        if prob_path:
            write_tiff_atomic(prob_path[0], prediction.probability.astype(np.float32))
        return
    mask255 = np.multiply(prediction.mask, 255, dtype=np.uint8)  # 0/1 -> 0/255, one pass
    if is_stack:
        write_tiff_atomic(mask_path, mask255)
    else:
        write_png_atomic(mask_path, mask255, compress_level=MASK_PNG_LEVEL, run_length=True)
    if prob_path:
        write_tiff_atomic(prob_path[0], prediction.probability.astype(np.float32))


GPU_BATCH = 8  # frames per forward pass on a CUDA GPU by default (default_batch_size)


def predict_folder(
    predictor: Predictor,
    input_dir: Path,
    output_dir: Path,
    tile: Optional[int] = None,
    threshold: Optional[float] = None,
    tta: bool = False,
    save_probabilities: bool = False,
    resume: bool = False,
    progress: Optional[Callable[[int, int, str], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    overlap_io: bool = True,
    batch_size: Optional[int] = None,
    shard: Optional[Shard] = None,
    streams: Optional[int] = None,
    checking: Optional[Callable[[int, int], None]] = None,
) -> BatchSummary:
    """``overlap_io``: read ahead and write behind in threads while the network runs (same outputs;
    ``inference/pipeline.py``); ``batch_size`` > 1 also sends frames through the network together (default:
    :func:`default_batch_size`).
    ``streams``: images predicted at once on the CPU in resize mode, sharing the predictor's threads
    (default: :func:`cpu_streams`; 1 is one image at a time on all of them).
    ``shard=(i, n)``: only this process's share of the folder, its rows merged into summary.csv
    (``inference/shards.py``).
    ``checking(done, total)``: progress of ``resume``'s check of the masks already there (each kept input is read
    whole for its SHA-256), before the first image."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if batch_size is None:
        batch_size = default_batch_size(predictor, tile)
    can_stream = overlap_io and not tile and batch_size == 1
    if streams is not None and streams > 1 and not can_stream:
        raise ValueError("Several streams (--streams > 1) cannot be combined with --sequential, --tile or "
                         "--batch-size > 1.")
    threads = cpu_streams(predictor, streams) if can_stream else []  # checked before anything is written
    if not input_dir.is_dir():
        raise FileNotFoundError(f"Input folder not found: {input_dir}")
    if input_dir.resolve() == output_dir.resolve():
        raise ValueError("The output folder must differ from the input folder (masks would mix with images).")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"The output {output_dir} is a file, not a folder.")
    listing = [p for p in input_dir.iterdir() if not p.name.startswith(".")]  # read once (a folder of 100,000 files)
    files = sorted(p for p in listing if p.is_file())
    if not files:
        raise ValueError(f"{input_dir} holds no files.")
    # Clashes over the whole folder, before it is cut to this shard: a.jpg and a.png in two shards would both
    # write a.png (and each shard must refuse what the run on one process refuses).
    clashing = name_clashes([p for p in files if p.suffix.lower() in IMAGE_SUFFIXES], output_dir, save_probabilities)
    whole = len(files)
    files = [p for p in files if in_shard(p.name, shard)]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not resume:
        existing = [p for img in images if img not in clashing
                    for p in possible_outputs(output_dir, img.stem, save_probabilities) if p.exists()]
        if existing:
            raise ValueError(
                f"{output_dir} already holds results (e.g. {existing[0].name}); pass --continue to skip finished "
                "images, or choose an empty output folder. Nothing was overwritten."
            )

    def finished(path: Path) -> bool:
        return resume and any(all(p.is_file() for p in output_paths(output_dir, path.stem, stack, save_probabilities))
                              for stack in (False, True))

    if resume and output_dir.is_dir():
        # every image with a mask there, finished or not: one whose probability map is missing would get it written
        # beside another image's mask (cold review of session 42)
        masks = {image: existing_mask(output_dir, image.stem) for image in images if image not in clashing}
        masks = {image: mask for image, mask in masks.items() if mask is not None}
        if not refuse_masks_of_other_images(output_dir, input_dir, masks, shard, should_stop, checking):
            return BatchSummary(output_dir, stopped=True)  # (stopped while checking: nothing was written)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    read_summary(output_dir, summary_name(shard))  # an unreadable one is kept as a backup now, before any write
    summary = BatchSummary(output_dir, settings=run_settings(predictor, tile, threshold, tta), model=predictor.description)
    summary.subfolders = sum(1 for p in listing if p.is_dir())
    summary.shard, summary.other_shards = shard, whole - len(files)
    mode = "tile" if tile else None
    # each row it makes names the file's folder, its SHA-256, who ran the run and when its outputs were written
    here = {"input_folder": path_text(input_dir.resolve()), "run_by": current_annotator() or ""}
    reader = DigestingReader(read_image)  # (each file's SHA-256 for its row, taken as it is read)
    todo = [p for p in images if p not in clashing and not finished(p)] if overlap_io else []
    if len(threads) > 1:
        stream = ParallelPredictionStream(predictor, todo, threads, threshold, mode, tile or DEFAULT_TILE, tta,
                                          read=reader)
    else:
        stream = PredictionStream(predictor, todo, threshold, mode, tile or DEFAULT_TILE, tta, batch_size, read=reader)
    failed = False
    journal = SummaryJournal(output_dir, summary_name(shard))
    try:
        with stream, OrderedWriter(background=overlap_io) as writer:
            _predict_files(predictor, files, output_dir, save_probabilities, summary, clashing, finished,
                           stream, writer, progress, should_stop, journal, resume, here, reader.digests)
    except BaseException:
        failed = True
        raise
    finally:
        release_freed_memory()  # what the streams' threads kept for reuse goes back once the folder is done
        # The last summary write, here in the caller's thread once the writer has drained or stopped at its
        # error: queued behind a failed write, the writer would skip it (a full disk at the last image left that
        # image, and some before it, unrecorded). Rows without a status were never written.
        written = False
        try:
            update_summary(output_dir, [r for r in summary.rows if r["status"]], journal.name, journal)
            written = True
        except Exception:  # noqa: BLE001 (the error that stopped the run is the one to raise)
            if not failed:
                raise
        finally:
            journal.close(remove=written)  # (summary.csv not written: the journal keeps the rows for the next run)
    if shard is not None:
        merge_summaries(output_dir, shard[1])
    with locked(output_dir):  # as merged now: every run's rows, a concurrent one's and other shards' included
        account_for_kept(summary, read_summary(output_dir), predictor.config.version, summary.settings)
    return summary


def refuse_masks_of_other_images(output_dir: Path, input_dir: Path, masks: dict, shard: Optional[Shard],
                                 should_stop: Optional[Callable[[], bool]] = None,
                                 checking: Optional[Callable[[int, int], None]] = None) -> bool:
    """ValueError, before anything is written, when a mask --continue would keep or write beside is of another image
    than the file now of its name (:mod:`.kept_outputs`; ``masks``: {image: its mask file}). False when stopped."""
    rows = read_summary(output_dir)
    if shard is not None:  # (this shard's rows not merged yet: a killed shard's)
        rows += read_summary(output_dir, summary_name(shard))
    others = outputs_of_other_images(masks, rows, path_text(input_dir.resolve()), display_name, should_stop,
                                     checking)
    if others is None:
        return False
    if others:
        # what to do first, then which: the widget's status line shows the whole (cut at 300 characters, the listing
        # had taken the instructions: verification of session 42)
        named = "; ".join(f"{name}: {why}" for name, why in others[:3])
        rest = [name for name, _ in others[3:]]
        more = (f"; and {len(rest)} more: {', '.join(rest[:20])}{' ...' if len(rest) > 20 else ''}" if rest else "")
        raise ValueError(f"Nothing was written: {output_dir} holds masks of other images by these names; choose another "
                         "output folder, or move those masks away to segment these images again (--continue carries on "
                         f"a run over the same images). {named}{more}.")
    return True


def run_settings(predictor: Predictor, tile: Optional[int], threshold: Optional[float], tta: bool) -> str:
    """This run's settings as summary.csv records them: ``resize, threshold 0.5`` or ``tile 512, threshold 0.9, flip
    TTA``. --continue with another threshold or mode kept the earlier masks unsaid, and summary.csv recorded only the
    model (trial of session 28)."""
    mode = predictor.config.inference_mode if not tile else "tile"
    return settings_text(mode, tile or DEFAULT_TILE, predictor._check_threshold(threshold), tta)


def account_for_kept(summary: BatchSummary, merged: list[dict], version: str, settings: str = "") -> None:
    """Which models (and settings) made the outputs --continue kept (from summary.csv's rows after the run: a kept
    output keeps the row of the run that made it), and how many kept outputs no run's row explains. Rows written before
    settings were recorded name none: not counted as other settings."""
    before = {row["file"]: row for row in merged}
    kept = [before.get(row["file"]) for row in summary.rows if row["status"] == "skipped-done"]
    summary.kept_rows = {row["file"]: row for row in kept if row is not None and row.get("status") == "done"}
    made_by_others = [row for row in summary.kept_rows.values() if (row.get("model_version") or "?") != version]
    summary.other_models = sorted({row.get("model_version") or "?" for row in made_by_others})
    summary.by_other_models, summary.by_other_files = len(made_by_others), [row["file"] for row in made_by_others]
    summary.other_settings = sorted({row.get("settings") for row in kept if row is not None and row.get("status") == "done"
                                     and row.get("settings")} - {settings})
    summary.unrecorded = sum(1 for row in kept if row is None or row.get("status") != "done")


def default_batch_size(predictor: Predictor, tile: Optional[int] = None) -> int:
    """Frames per forward pass when the caller names none: ``GPU_BATCH`` on a CUDA GPU in resize mode, else 1.
    At batch 1 a GPU waited on the CPU's decoding and launches: on an H200, ``unetv2 predict`` reached 0.46 of
    the bare forward rate at batch 1 and 0.72 at batch 8 (benchmarks/bench_pipeline.py, README). On the CPU
    the parallel streams do better than batches, and batch 1 gives exactly ``Predictor.predict``'s results."""
    if predictor.device.type == "cuda" and not tile and predictor.config.inference_mode == "resize":
        return GPU_BATCH
    return 1


def cpu_streams(predictor: Predictor, streams: Optional[int] = None) -> list[int]:
    """Torch threads of each concurrent prediction stream: the predictor's thread budget (its ``threads``,
    else :func:`default_cpu_threads` in this thread, which leaves the GUI a core when called from a worker)
    split over ``streams`` (default: one per thread, at most ``MAX_CPU_STREAMS``). Off the CPU, for a model
    whose own mode is tile, or with ``streams=1``: one stream, ``[budget]``."""
    if streams is not None and streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams}.")
    budget = predictor.threads or default_cpu_threads()
    if predictor.device.type != "cpu" or predictor.config.inference_mode != "resize":
        if streams is not None and streams > 1:
            raise ValueError(f"Several streams run on the CPU in resize mode only; this model runs on "
                             f"{predictor.device.type} in {predictor.config.inference_mode} mode.")
        return [budget]
    return split_threads(budget, min(budget, MAX_CPU_STREAMS) if streams is None else streams)


def _predict_files(predictor, files, output_dir, save_probabilities, summary, clashing, finished, stream,
                   writer, progress, should_stop, journal, resume, here=None, digests=None) -> None:
    # Writes go to ``writer`` (in order, in the background); each summary write follows its files' writes.
    def submit_summary() -> None:
        rows = list(summary.rows)
        # Filtered when the writer gets to it, not now: an image's row gets its status only once its files are
        # written (write_and_record); one whose write failed, or never ran, is not recorded as done.
        writer.submit(lambda: update_summary(output_dir, [r for r in rows if r["status"]], journal.name, journal))

    # (the last summary write is predict_folder's, after the writer)
    _predict_each(predictor, files, output_dir, save_probabilities, summary, clashing, finished, stream, writer,
                  progress, should_stop, submit_summary, resume, journal, here, digests)


def _predict_each(predictor, files, output_dir, save_probabilities, summary, clashing, finished, stream, writer,
                  progress, should_stop, submit_summary, resume, journal=None, here: Optional[dict] = None,
                  digests: Optional[dict] = None) -> None:
    digests = {} if digests is None else digests  # (image -> its file's SHA-256, noted by the reader)
    last_summary = float("-inf")
    for index, path in enumerate(files, start=1):
        row = {"file": display_name(path), "status": "", "height": "", "width": "", "foreground_fraction": "",
               "seconds": "", "model_version": predictor.config.version, "settings": summary.settings, "note": ""}
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            row.update(status="not-an-image", note=f"suffix {path.suffix or '(none)'} is not an image type")
        elif path in clashing:
            row.update(status="error", note=clashing[path])
        elif finished(path):
            # not this model's work: the merge keeps the earlier run's row (and its model version), if any
            row.update(status="skipped-done", model_version="", settings="", note="outputs exist (--continue)")
        else:
            if should_stop is not None and should_stop():
                summary.stopped = True
                break
            start = time.time()
            try:
                prediction = stream.result(path)
            except PER_FILE_ERRORS as err:
                if isinstance(err, FileNotFoundError) and not path.parent.is_dir():
                    # the whole folder went (unplugged, moved, deleted): one message, not a row for every image
                    raise FileNotFoundError(
                        f"The input folder {path.parent} is gone (moved, deleted or unplugged while the run went on); "
                        "what was done is kept: --continue finishes the rest once it is back.") from err
                row.update(status="error", note=one_line(err))
            else:
                # --continue with some of this image's outputs there (a run without --save-probabilities before,
                # or one killed between its files): only the missing ones are written. Never overwrite.
                outputs = output_paths(output_dir, path.stem, prediction.mask.ndim == 3, save_probabilities)
                keep = tuple(p for p in outputs if resume and p.is_file())
                if outputs[0] in keep:  # no mask made here: the row claims none (nor this model for the kept one)
                    written = ", ".join(p.name for p in outputs if p not in keep)
                    outcome = dict(status="skipped-done", model_version="", settings="",
                                   note=f"{KEPT_NOTE} {outputs[0].name}; wrote {written} with model {predictor.config.version}")
                else:
                    shape = prediction.mask.shape
                    marked = np.count_nonzero(prediction.mask)
                    fraction = marked / prediction.mask.size  # == mask.mean(), no float pass
                    if not marked:
                        summary.empty.append(display_name(path))
                    outcome = dict(status="done", height=shape[-2], width=shape[-1], **(here or {}),
                                   input_sha256=digests.pop(path, ""),
                                   foreground_fraction=f"{fraction:.5f}",
                                   # the model's time on it: the wait for the result was 0.000 for an image predicted
                                   # ahead (trial of session 27)
                                   seconds=f"{prediction.info.get('seconds', time.time() - start):.3f}")
                    if keep:
                        outcome["note"] = f"{KEPT_NOTE} {', '.join(p.name for p in keep)} (--continue never overwrites)"
                summary.rows.append(row)  # before the write: one that fails (at once, when sequential) says so
                writer.submit(write_and_record, prediction, output_dir, path.stem, save_probabilities, keep, row, outcome,
                              journal)
        if not summary.rows or summary.rows[-1] is not row:  # (an image sent to the writer is in already)
            summary.rows.append(row)
        if time.monotonic() - last_summary >= SUMMARY_EVERY_S:
            submit_summary()
            last_summary = time.monotonic()
        if progress is not None:
            progress(index, len(files), path.name)
