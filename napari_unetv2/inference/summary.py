"""``summary.csv`` of a batch folder: one row per input file (status, size, foreground, time, model version).

Read, merged and written here only, by the batch runner and by the shards' merge alike: an unreadable file is
moved aside as a backup in both, and every write of the folder's summary happens under its folder lock.
"""
from __future__ import annotations

import csv
import io
import os
import time
import warnings
from pathlib import Path

from ..files import atomic_write_text, locked

SUMMARY_COLUMNS = ["file", "status", "height", "width", "foreground_fraction", "seconds", "model_version", "settings",
                   "note"]
KEPT_NOTE = "kept the existing"  # how a row says --continue kept an output it did not make


def read_summary(out_dir: Path, name: str = "summary.csv") -> list[dict]:
    """Rows of an earlier run's summary.csv (none if absent). An unreadable one is moved aside as a backup."""
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


def update_summary(out_dir: Path, rows: list[dict], name: str = "summary.csv") -> None:
    """Merge this run's ``rows`` into the summary as it is on disk now, under a lock between processes: another
    run into the same folder meanwhile (a second window, a second ``unetv2 predict``) keeps its rows."""
    with locked(out_dir):
        write_summary(out_dir, merge_summary(read_summary(out_dir, name), rows), name)


def write_summary(out_dir: Path, rows: list[dict], name: str = "summary.csv") -> None:
    columns = SUMMARY_COLUMNS + sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / name, text.getvalue())
