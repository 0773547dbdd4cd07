"""Batch-folder prediction: every image in a folder -> OUT/<stem>.png masks and a summary.csv.

Outputs are written atomically, so an interrupt leaves finished images complete and no half file;
``resume`` skips images whose outputs exist. Existing results are never overwritten silently.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..files import (
    IMAGE_SUFFIXES,
    UnreadableImageError,
    atomic_write_text,
    write_png_atomic,
    write_tiff_atomic,
)
from .pipeline import OrderedWriter, PredictionStream
from .predictor import Predictor
from .shards import Shard, in_shard, merge_summaries, summary_name

SUMMARY_COLUMNS = ["file", "status", "height", "width", "foreground_fraction", "seconds", "model_version", "note"]


@dataclass
class BatchSummary:
    output: Path
    rows: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    def describe(self) -> str:
        lines = [f"{self.count('done')} segmented, {self.count('skipped-done')} already done, "
                 f"{self.count('not-an-image')} not images, {self.count('error')} failed -> {self.output}"]
        lines += [f"  {r['file']}: {r['status']} {r['note']}" for r in self.rows if r["status"] in ("not-an-image", "error")]
        return "\n".join(lines)


def output_paths(out_dir: Path, stem: str, is_stack: bool, probabilities: bool) -> list[Path]:
    paths = [out_dir / (f"{stem}.tif" if is_stack else f"{stem}.png")]
    if probabilities:
        paths.append(out_dir / f"{stem}_prob.tif")
    return paths


def _write_summary(out_dir: Path, rows: list[dict], name: str = "summary.csv") -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / name, text.getvalue())


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
    batch_size: int = 1,
    shard: Optional[Shard] = None,
) -> BatchSummary:
    """``overlap_io``: read ahead and write behind in threads while the network runs (same outputs;
    ``inference/pipeline.py``); ``batch_size`` > 1 also sends frames through the network together.
    ``shard=(i, n)``: only this process's share of the folder, its rows merged into summary.csv
    (``inference/shards.py``)."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"Input folder not found: {input_dir}")
    if input_dir.resolve() == output_dir.resolve():
        raise ValueError("The output folder must differ from the input folder (masks would mix with images).")
    files = sorted(p for p in input_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{input_dir} holds no files.")
    files = [p for p in files if in_shard(p.name, shard)]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not resume:
        clashes = [p for img in images for p in output_paths(output_dir, img.stem, False, save_probabilities) if p.exists()]
        if clashes:
            raise ValueError(
                f"{output_dir} already holds results (e.g. {clashes[0].name}); pass --continue to skip finished "
                "images, or choose an empty output folder. Nothing was overwritten."
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(output_dir)
    mode = "tile" if tile else None

    def finished(path: Path) -> bool:
        return resume and any(all(p.exists() for p in output_paths(output_dir, path.stem, stack, save_probabilities))
                              for stack in (False, True))

    todo = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and not finished(p)] if overlap_io else []
    with PredictionStream(predictor, todo, threshold, mode, tile or 512, tta, batch_size) as stream, \
            OrderedWriter(background=overlap_io) as writer:
        _predict_files(predictor, files, output_dir, save_probabilities, summary, finished, stream, writer,
                       progress, should_stop, summary_name(shard))
    if shard is not None:
        merge_summaries(output_dir, shard[1], SUMMARY_COLUMNS)
    return summary


def _predict_files(predictor, files, output_dir, save_probabilities, summary, finished, stream, writer, progress,
                   should_stop, summary_file) -> None:
    # Writes go to ``writer`` (in order, in the background); the summary follows each file's own writes.
    for index, path in enumerate(files, start=1):
        row = {"file": path.name, "status": "", "height": "", "width": "", "foreground_fraction": "",
               "seconds": "", "model_version": predictor.config.version, "note": ""}
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            row.update(status="not-an-image", note=f"suffix {path.suffix or '(none)'} is not an image type")
        elif finished(path):
            row.update(status="skipped-done", note="outputs exist (--continue)")
        else:
            if should_stop is not None and should_stop():
                break
            start = time.time()
            try:
                prediction = stream.result(path)
            except (UnreadableImageError, ValueError) as err:
                row.update(status="error", note=str(err))
            else:
                is_stack = prediction.mask.ndim == 3
                mask_path, *prob_path = output_paths(output_dir, path.stem, is_stack, save_probabilities)
                mask255 = (prediction.mask * 255).astype(np.uint8)
                writer.submit(write_tiff_atomic if is_stack else write_png_atomic, mask_path, mask255)
                if prob_path:
                    writer.submit(write_tiff_atomic, prob_path[0], prediction.probability.astype(np.float32))
                shape = prediction.mask.shape
                row.update(status="done", height=shape[-2], width=shape[-1],
                           foreground_fraction=f"{prediction.mask.mean():.5f}", seconds=f"{time.time() - start:.3f}")
        summary.rows.append(row)
        writer.submit(_write_summary, output_dir, list(summary.rows), summary_file)
        if progress is not None:
            progress(index, len(files), path.name)
