"""``summary.csv`` of a batch folder: one row per input file (status, size, foreground, time, model version).

Read, merged and written here only, by the batch runner and by the shards' merge alike: an unreadable file is
moved aside as a backup in both, and every write of the folder's summary happens under its folder lock.

summary.csv is rewritten whole, at most once a second while a run goes on (every image would cost O(n^2) for the
folder); between two rewrites, each image's row is appended to the run's journal (``.summary.csv.<run>.journal``, one
JSON line, once its files are written), which every read folds in. A run killed between two rewrites left masks with
no row: the next ``--continue`` called them "not made by this program's runs" and lost which model made them
(clinician trial of session 39). A run holds a lock on its own journal while it lives (``files.hold``): a journal whose
lock is free is a dead run's, folded into summary.csv and removed by the next rewrite.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Optional

from ..files import atomic_write_text, hold, is_held, locked, release

# input_folder, input_sha256, run_by and finished_at: which file exactly, by whom and when (a reviewer's questions;
# session 42)
SUMMARY_COLUMNS = ["file", "status", "height", "width", "foreground_fraction", "seconds", "model_version", "settings",
                   "note", "input_folder", "input_sha256", "run_by", "finished_at"]
KEPT_NOTE = "kept the existing"  # how a row says --continue kept an output it did not make


def read_summary(out_dir: Path, name: str = "summary.csv") -> list[dict]:
    """Rows of the earlier runs (summary.csv, and the journals of runs that have not rewritten it since; none if
    absent). An unreadable summary.csv is moved aside as a backup."""
    return merge_summary(_read_csv(Path(out_dir), name), _journal_rows(Path(out_dir), name))


def _read_csv(out_dir: Path, name: str) -> list[dict]:
    path = out_dir / name
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            # a row with more cells than the header (edited by hand) has them under the key None: dropped, or
            # sorting the columns for the next write would fail; a short row's missing cells read as empty
            return [{k: ("" if v is None else v) for k, v in r.items() if k is not None}
                    for r in csv.DictReader(fh) if r.get("file")]
    except (UnicodeDecodeError, csv.Error) as err:
        backup = out_dir / f"{name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(path, backup)  # moved aside, not copied: the next read would keep another copy of it
        warnings.warn(f"{path} was unreadable ({err}); kept as {backup.name}", stacklevel=2)
        return []


def _journals(out_dir: Path, name: str) -> list[Path]:
    """The journals of ``name``'s runs, oldest first; the folder's summary.csv also takes those of its shards' runs
    (a killed shard's rows were folded in only by a later run with the same shard count: cold review of session 39)."""
    patterns = [f".{glob.escape(name)}.*.journal"]
    if name == "summary.csv":
        patterns.append(".summary.shard-*-of-*.csv.*.journal")
    found = {path for pattern in patterns for path in out_dir.glob(pattern)}
    return sorted(found, key=lambda p: (_mtime(p), p.name))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _journal_rows(out_dir: Path, name: str) -> list[dict]:
    """The rows of every journal beside summary.csv, oldest journal first. A line cut short by a kill, or anything
    that is not a row, is passed over (a journal is data written by a run, read as data)."""
    rows = []
    for journal in _journals(out_dir, name):
        try:
            lines = journal.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("file"), str) and row["file"]:
                rows.append({str(k): ("" if v is None else str(v)) for k, v in row.items()})
    return rows


class SummaryJournal:
    """A run's journal: each image's row appended once its files are written (``append``, in the writer's thread).
    Locked while the run lives (a lock released by the kernel when the process dies); emptied when summary.csv is
    rewritten with its rows, removed when the run ends with summary.csv written."""

    def __init__(self, out_dir: Path, name: str = "summary.csv"):
        self.name = name
        self.path = Path(out_dir) / f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.journal"
        self._descriptor: Optional[int] = None  # locked, open for appending (files.hold)
        self._unlocked = False  # no lock to be had here: written through a plain file

    def append(self, row: dict) -> None:
        line = (json.dumps(row, default=str) + "\n").encode("utf-8")
        if self._descriptor is None and not self._unlocked:
            self._descriptor = hold(self.path)
            self._unlocked = self._descriptor is None
        if self._descriptor is not None:
            os.write(self._descriptor, line)  # (appended: the descriptor is O_APPEND; a killed process's rows stay)
        else:
            with open(self.path, "ab") as fh:
                fh.write(line)

    def empty(self) -> None:
        """summary.csv holds its rows now."""
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
        elif self._unlocked:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def close(self, remove: bool = True) -> None:
        """The run is over; ``remove``: summary.csv holds every row (else the journal stays for the next run)."""
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        release(self._descriptor)
        self._descriptor = None


def _dead_journals(out_dir: Path, name: str, own: Optional[SummaryJournal]) -> list[Path]:
    """Journals whose run is over, decided before they are read (read first, a row a dying run wrote between the read
    and the removal was lost). Where it cannot be known (no ``fcntl``: Windows, some network shares) a journal counts
    as over: its rows are folded in before it goes, and a live run's own rewrite at its end holds every row of its run
    (left, a killed run's old rows were read over newer ones at every read: cold review of session 39)."""
    return [journal for journal in _journals(out_dir, name)
            if (own is None or journal != own.path) and is_held(journal) is not True]


def merge_summary(earlier: list[dict], rows: list[dict]) -> list[dict]:
    """Earlier rows, updated by this run's: a file skipped as done keeps its earlier (complete) row."""
    merged = {r["file"]: r for r in earlier}
    for row in rows:
        before = merged.get(row["file"])
        if row["status"] == "skipped-done" and before is not None and before.get("status") == "done":
            if row.get("note", "").startswith(KEPT_NOTE) and row["note"] not in before.get("note", ""):
                merged[row["file"]] = {**before, "note": "; ".join(x for x in (before.get("note"), row["note"]) if x)}
            continue
        merged[row["file"]] = row
    return list(merged.values())


def update_summary(out_dir: Path, rows: list[dict], name: str = "summary.csv",
                   journal: Optional[SummaryJournal] = None) -> None:
    """Merge this run's ``rows`` into the summary as it is on disk now (journals included), under a lock between
    processes: another run into the same folder meanwhile (a second window, a second ``unetv2 predict``) keeps its
    rows. ``journal``: this run's, emptied once summary.csv holds its rows; dead runs' journals go too."""
    with locked(out_dir):
        dead = _dead_journals(out_dir, name, journal)
        # sorted by file, as the shards' merge writes it: one order however the rows came (a journal's first)
        write_summary(out_dir, sorted(merge_summary(read_summary(out_dir, name), rows), key=lambda row: row["file"]), name)
        if journal is not None:
            journal.empty()
        for path in dead:
            with contextlib.suppress(OSError):  # (a live run's file on Windows cannot go: kept, folded in again)
                path.unlink()


def write_summary(out_dir: Path, rows: list[dict], name: str = "summary.csv") -> None:
    columns = SUMMARY_COLUMNS + sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / name, text.getvalue())
