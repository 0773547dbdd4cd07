"""Splitting a folder between processes: ``unetv2 predict --shard i/n`` (SLURM job arrays) or ``torchrun``.

Each file goes to shard ``crc32(file name) mod n``: disjoint, the same in every process and every run,
and independent of the other files (adding images to the folder does not move the finished ones).
Each shard writes its rows to ``summary.shard-<i>-of-<n>.csv``; when a shard ends it merges every
``-of-<n>`` shard file present into ``summary.csv`` under a file lock (and removes them), so the last one to
finish leaves the complete table — no process waits for another, and no communication between them is needed.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Optional

from ..files import locked
from .summary import merge_summary, read_summary, write_summary

Shard = tuple[int, int]  # (index, count), 0 <= index < count


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> (i, n) with 0 <= i < n; a clear ValueError otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n with whole numbers (e.g. 0/4), not {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n (shards are numbered from 0).")
    return index, count


def shard_from_environment(environ: Optional[dict] = None) -> Optional[Shard]:
    """(RANK, WORLD_SIZE) when started by torchrun with more than one process, else None."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env and int(env["WORLD_SIZE"]) > 1:
        return parse_shard(f"{env['RANK']}/{env['WORLD_SIZE']}")
    return None


def in_shard(name: str, shard: Optional[Shard]) -> bool:
    # surrogateescape: a name that is not valid UTF-8 (its bytes kept as surrogates by Python) has a shard too;
    # valid UTF-8 names give the same bytes, so their shards do not move
    return shard is None or zlib.crc32(name.encode("utf-8", "surrogateescape")) % shard[1] == shard[0]


def summary_name(shard: Optional[Shard]) -> str:
    return "summary.csv" if shard is None else f"summary.shard-{shard[0]}-of-{shard[1]}.csv"


def merge_summaries(output_dir: Path, count: int) -> Path:
    """``summary.csv`` = its earlier rows (an unsharded run's too), updated by the rows of every
    ``summary.shard-*-of-<count>.csv`` present (the batch runner's merge rule), sorted by file.

    The shard files merged are then removed: their rows live on in summary.csv, and a shard file left behind
    would be merged again by a later run, putting its old rows back over newer ones (an image that failed in a
    shard and was done since by a --continue run would read "error" again). A shard still running loses
    nothing: it rewrites its file with all of its run's rows at its next write and merges it when it ends."""
    output_dir = Path(output_dir)
    with locked(output_dir):
        rows: list[dict] = []
        shard_files = [summary_name((i, count)) for i in range(count)]
        for name in ["summary.csv"] + shard_files:
            rows = merge_summary(rows, read_summary(output_dir, name))
        write_summary(output_dir, sorted(rows, key=lambda row: row["file"]))
        for name in shard_files:
            (output_dir / name).unlink(missing_ok=True)
    return output_dir / "summary.csv"
