"""Splitting a folder between processes: disjoint deterministic shares, the same masks as one process,
one merged summary.csv, and --continue still skipping finished images."""
import csv
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, make_synthetic_pairs

from napari_unetv2.inference.batch import predict_folder
from napari_unetv2.inference.shards import in_shard, parse_shard, shard_from_environment


@pytest.fixture
def folder(tmp_path, sample_images):
    src = sample_images
    for image in (make_synthetic_pairs(tmp_path / "synthetic", n=6, size=96) / "images").iterdir():
        shutil.copy(image, src / image.name)
    (src / "notes.txt").write_text("not an image")
    return src


def summary_rows(out):
    with open(out / "summary.csv") as fh:
        return [{k: v for k, v in row.items() if k not in ("seconds", "finished_at")} for row in csv.DictReader(fh)]


def masks(out):
    return {p.name: p.read_bytes() for p in out.glob("*.png")}


def test_parse_shard_and_environment():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert shard_from_environment({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert shard_from_environment({"RANK": "0", "WORLD_SIZE": "1"}) is None and shard_from_environment({}) is None
    names = [f"frame_{i:03d}.jpg" for i in range(200)]
    shares = [[n for n in names if in_shard(n, (i, 3))] for i in range(3)]
    assert sorted(sum(shares, [])) == names and all(40 < len(s) < 90 for s in shares)  # disjoint, complete, balanced


def test_shards_give_the_same_masks_once_each_and_one_summary(predictor, folder, tmp_path):
    whole = tmp_path / "whole"
    predict_folder(predictor, folder, whole)
    sharded = tmp_path / "sharded"
    summaries = [predict_folder(predictor, folder, sharded, shard=(i, 2)) for i in range(2)]
    done = [{r["file"] for r in s.rows} for s in summaries]
    assert done[0] and done[1] and not done[0] & done[1]  # both shards had work, none was done twice
    assert masks(sharded) == masks(whole)
    assert summary_rows(sharded) == summary_rows(whole)  # merged, sorted by file, each file once

    mtimes = {p.name: p.stat().st_mtime_ns for p in sharded.glob("*.png")}
    again = [predict_folder(predictor, folder, sharded, shard=(i, 2), resume=True) for i in range(2)]
    assert sum(s.count("skipped-done") for s in again) == len(mtimes)
    assert sum(s.count("done") for s in again) == 0
    assert {p.name: p.stat().st_mtime_ns for p in sharded.glob("*.png")} == mtimes


def test_sharded_continue_keeps_an_unsharded_runs_rows(predictor, folder, tmp_path):
    """A folder first segmented in one process, then continued in shards: summary.csv keeps every earlier
    row whole (size, foreground, model) instead of only the shards' 'skipped-done' rows."""
    out = tmp_path / "out"
    predict_folder(predictor, folder, out)
    before = summary_rows(out)
    for i in range(2):
        predict_folder(predictor, folder, out, shard=(i, 2), resume=True)
    assert summary_rows(out) == before


def test_an_unreadable_shard_summary_is_kept_and_the_merge_goes_on(predictor, folder, tmp_path):
    """The shards' merge reads summaries as the batch runner does: another shard's summary that is not text (a
    disk error, a file copied over it) is kept as a backup copy, and summary.csv still gets this shard's rows,
    instead of the run ending in a UnicodeDecodeError after its masks were written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.shard-1-of-2.csv").write_bytes(b"\xff\xfe not a csv \x00\x81")
    with pytest.warns(UserWarning, match="unreadable"):
        summary = predict_folder(predictor, folder, out, shard=(0, 2))
    assert [p.name for p in out.glob("summary.shard-1-of-2.csv.unreadable-*")]
    assert {row["file"] for row in summary_rows(out)} == {r["file"] for r in summary.rows} != set()
    predict_folder(predictor, folder, out, shard=(0, 2), resume=True)  # merged again: no second backup of it
    assert len(list(out.glob("summary.shard-1-of-2.csv.unreadable-*"))) == 1


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes(predictor, folder, tmp_path):
    whole = tmp_path / "whole"
    predict_folder(predictor, folder, whole)
    out = tmp_path / "torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "napari_unetv2.cli", "predict", "-i", str(folder), "-o", str(out), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shard 0/2" in result.stdout and "shard 1/2" in result.stdout
    assert masks(out) == masks(whole)
    assert summary_rows(out) == summary_rows(whole)
    first_rows, mtimes = summary_rows(out), {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    resumed = subprocess.run(command + ["--continue"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.count("0 segmented") == 2  # both ranks skipped everything
    assert summary_rows(out) == first_rows  # skipped files keep their earlier rows (the summary merge rule)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes
