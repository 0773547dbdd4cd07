"""Batch folders and evaluation with hostile files mixed in: every valid image gets its mask, every bad one
a summary row with a one-line reason, nothing outside the output folder changes, no result is
overwritten or lost. Cases: docs/robustness.md."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hostile_files import (
    H,
    W,
    ellipse_mask,
    jpeg_bytes,
    picture,
    save,
    tiff_claiming,
    tree_digest,
    truncated,
)
from PIL import Image

from napari_unetv2.files import read_image
from napari_unetv2.inference import Predictor
from napari_unetv2.inference.batch import predict_folder


@pytest.fixture(scope="module")
def predictor():
    return Predictor(device="cpu")


def summary_rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


NON_UTF8 = os.fsdecode(b"caf\xe9 \xff.png")


def hostile_folder(root: Path) -> tuple[Path, dict[str, tuple[int, int]], list[str]]:
    """An input folder as a shared drive holds it: (folder, {valid file: (h, w)}, [bad files])."""
    src, outside = root / "in", root / "outside"
    src.mkdir()
    outside.mkdir()
    valid = {}

    def add(name: str, writer) -> None:
        writer(src / name)
        valid[name] = (H, W)

    add("plain.jpg", lambda p: save(p, picture(0), quality=95))
    add("Bild 1 – Patientin é.png", lambda p: save(p, picture(1)))
    add("line\nbreak.png", lambda p: save(p, picture(2)))
    add(NON_UTF8, lambda p: save(p, picture(3)))
    add("cmyk.jpg", lambda p: Image.fromarray(picture(4)).convert("CMYK").save(p, quality=95))
    add("planar.tif", lambda p: tifffile.imwrite(p, np.moveaxis(picture(5), -1, 0)))
    add("gray16.tif", lambda p: tifffile.imwrite(p, picture(6)[..., 0].astype(np.uint16) * 257))
    add("palette.png", lambda p: Image.fromarray(picture(7)).convert("P").save(p))
    add("rotated.jpg", lambda p: _rotated(p))
    valid["rotated.jpg"] = (W, H)
    save(outside / "elsewhere.png", picture(8))
    (src / "link to elsewhere.png").symlink_to(outside / "elsewhere.png")
    valid["link to elsewhere.png"] = (H, W)

    bad = []

    def add_bad(name: str, writer) -> None:
        writer(src / name)
        bad.append(name)

    add_bad("zero.png", lambda p: p.write_bytes(b""))
    add_bad("truncated.jpg", lambda p: truncated(p, jpeg_bytes(picture(9)), 0.3))
    add_bad("bomb.tif", lambda p: tiff_claiming(p, 50000, 50000))
    add_bad("notes.jpg", lambda p: p.write_text("not an image"))
    add_bad("tiny.png", lambda p: save(p, picture(10, (4, 4))))
    add_bad("two_channels.tif", lambda p: tifffile.imwrite(p, np.zeros((H, W, 2), np.uint8), planarconfig="contig"))
    add_bad("nan.tif", lambda p: tifffile.imwrite(p, np.full((H, W), np.nan, np.float32)))
    add_bad("readme.txt", lambda p: p.write_text("instructions"))
    (src / "folder.png").mkdir()  # a folder named like an image: not a file, not listed
    (src / "dangling.png").symlink_to(root / "gone.png")  # a broken link: not a file, not listed
    os.mkfifo(src / "pipe.png")  # reading a FIFO would block for ever: not a regular file, not listed
    (src / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: not listed
    return src, valid, bad


def _rotated(path: Path) -> None:
    im = Image.fromarray(picture(11))
    exif = im.getexif()
    exif[274] = 6
    im.save(path, exif=exif.tobytes(), quality=95)


def test_mixed_hostile_batch(predictor, tmp_path):
    """The acceptance test of issue 12: valid images all get masks, bad ones a one-line row each, and
    nothing outside the output folder changes (hash of the whole tree around it)."""
    src, valid, bad = hostile_folder(tmp_path)
    out = tmp_path / "out"
    before = tree_digest(tmp_path)
    summary = predict_folder(predictor, src, out, save_probabilities=True)
    assert tree_digest(tmp_path, exclude=out) == before
    rows = summary_rows(out)
    shown = {name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"): name for name in [*valid, *bad]}
    assert set(rows) == set(shown), "every file has exactly one row"
    for name, shape in valid.items():
        row = rows[name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")]
        assert row["status"] == "done", (name, row)
        mask = read_image(out / f"{Path(name).stem}.png")
        assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{Path(name).stem}_prob.tif").is_file()
    for name in bad:
        row = rows[name]
        assert row["status"] in ("error", "not-an-image"), (name, row)
        assert row["note"] and "\n" not in row["note"] and len(row["note"]) <= 300, row["note"]
    assert "limit" in rows["bomb.tif"]["note"] and "NaN" in rows["nan.tif"]["note"]
    assert summary.count("done") == len(valid) and summary.count("error") == len(bad) - 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary file left"


def test_cmyk_and_planar_tiff_get_the_same_mask_as_rgb(predictor, tmp_path):
    """A CMYK JPEG was segmented as RGBA garbage (Dice 0.00) and a (3, H, W) TIFF as a 3-slice stack."""
    src, out = tmp_path / "in", tmp_path / "out"
    rgb = picture(0, (128, 160))
    save(src / "rgb.png", rgb)
    tifffile.imwrite(src / "planar.tif", np.moveaxis(rgb, -1, 0))
    Image.fromarray(rgb).convert("CMYK").save(src / "cmyk.jpg", quality=100)
    predict_folder(predictor, src, out)
    reference = read_image(out / "rgb.png") > 0
    assert np.array_equal(read_image(out / "planar.png") > 0, reference)
    cmyk = read_image(out / "cmyk.png") > 0
    assert cmyk.shape == reference.shape and (cmyk == reference).mean() > 0.97


# ---- output names (issue 12, item 2) ----------------------------------------------------------------------

@pytest.mark.parametrize("names, probabilities", [
    (("a.jpg", "a.png"), False),        # the case: both "done", one OUT/a.png
    (("A.png", "a.jpg"), False),        # case-insensitive disks (macOS, Windows shares)
    (("x.png", "x_prob.png"), True),    # x's probabilities are x_prob.tif, x_prob's stack mask too
    (("scan.tif", "scan.jpeg"), False),
])
def test_clashing_output_names_are_refused_per_file(predictor, tmp_path, names, probabilities):
    src, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(names):
        save(src / name, picture(i), **({"quality": 95} if name.endswith((".jpg", ".jpeg")) else {}))
    save(src / "other.png", picture(9))
    summary = predict_folder(predictor, src, out, save_probabilities=probabilities)
    rows = summary_rows(out)
    for name in names:
        assert rows[name]["status"] == "error" and "clashes" in rows[name]["note"]
        assert all(other in rows[name]["note"] for other in names if other != name)
    assert rows["other.png"]["status"] == "done" and summary.count("done") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(["other.png", "summary.csv"] + (["other_prob.tif"] if probabilities else []))


def test_existing_stack_output_is_not_overwritten(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    tifffile.imwrite(src.mkdir() or src / "stack.tif", np.stack([picture(i)[..., 0] for i in range(3)]), photometric="minisblack")
    out.mkdir()
    tifffile.imwrite(out / "stack.tif", np.ones((2, 8, 8), np.uint8))  # an earlier result (or the user's file)
    before = (out / "stack.tif").read_bytes()
    with pytest.raises(ValueError, match="already holds results"):
        predict_folder(predictor, src, out)
    assert (out / "stack.tif").read_bytes() == before


def test_stack_gets_a_tif_mask_and_continue_skips_it(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    tifffile.imwrite(src / "stack.tif", np.stack([picture(i)[..., 0] for i in range(3)]), photometric="minisblack")
    predict_folder(predictor, src, out)
    assert read_image(out / "stack.tif").shape == (3, H, W)
    assert predict_folder(predictor, src, out, resume=True).count("skipped-done") == 1


# ---- summary.csv (issue 12, item 2) ---------------------------------------------------------------------

def test_second_batch_into_the_same_folder_keeps_the_first_rows(predictor, tmp_path):
    out = tmp_path / "out"
    save(tmp_path / "day1" / "a.png", picture(0))
    save(tmp_path / "day2" / "b.png", picture(1))
    predict_folder(predictor, tmp_path / "day1", out)
    first = summary_rows(out)["a.png"]
    predict_folder(predictor, tmp_path / "day2", out)
    rows = summary_rows(out)
    assert set(rows) == {"a.png", "b.png"} and rows["a.png"] == first


def test_continue_keeps_earlier_rows_fields(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        save(src / f"{i}.png", picture(i))
    calls = []
    predict_folder(predictor, src, out, should_stop=lambda: len(calls) >= 2, progress=lambda *a: calls.append(a))
    earlier = summary_rows(out)
    assert len(earlier) == 2
    predict_folder(predictor, src, out, resume=True)
    rows = summary_rows(out)
    assert len(rows) == 3 and all(r["status"] == "done" for r in rows.values())
    for name, row in earlier.items():
        assert rows[name] == row  # height, width, foreground fraction and time kept


def test_unreadable_earlier_summary_is_kept_as_backup(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", picture(0))
    out.mkdir()
    (out / "summary.csv").write_bytes(b"\xff\xfe binary \x00 junk")
    with pytest.warns(UserWarning, match="unreadable"):
        predict_folder(predictor, src, out)
    [backup] = out.glob("summary.csv.unreadable-*")
    assert backup.read_bytes() == b"\xff\xfe binary \x00 junk" and "a.png" in summary_rows(out)


def test_non_utf8_file_name_gets_its_row_and_mask(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / NON_UTF8, picture(0))
    predict_folder(predictor, src, out)
    [row] = summary_rows(out).values()
    assert row["status"] == "done" and row["file"] == "caf\\xe9 \\xff.png"
    assert (out / (Path(NON_UTF8).stem + ".png")).is_file()


# ---- one bad file never stops the batch (issue 12, item 4) ------------------------------------------------

@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore"),
                                   PermissionError(13, "Permission denied", "x.png")])
def test_an_error_on_one_image_is_a_row_and_the_rest_go_on(predictor, tmp_path, monkeypatch, error):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.png", "c.png"):
        save(src / name, picture(0))
    real = predictor._forward  # the network call, under both predict() and the pipeline's predict_prepared()
    seen = []

    def failing_once(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor, "_forward", failing_once)
    summary = predict_folder(predictor, src, out)
    rows = summary_rows(out)
    assert [rows[n]["status"] for n in ("a.png", "b.png", "c.png")] == ["done", "error", "done"]
    assert rows["b.png"]["note"] and "\n" not in rows["b.png"]["note"] and summary.count("done") == 2


def test_stale_temporaries_in_the_output_folder_are_cleaned(predictor, tmp_path):
    import time

    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", picture(0))
    out.mkdir()
    leftover = out / ".a.png.q1w2e3r4.tmp"
    leftover.write_bytes(b"half")
    os.utime(leftover, (time.time() - 7200,) * 2)
    predict_folder(predictor, src, out)
    assert not leftover.exists() and (out / "a.png").is_file()


def test_output_that_is_a_file_is_refused(predictor, tmp_path):
    save(tmp_path / "in" / "a.png", picture(0))
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ValueError, match="is a file"):
        predict_folder(predictor, tmp_path / "in", tmp_path / "out")
    assert (tmp_path / "out").read_text() == "a file"


# ---- evaluate (issue 12, item 4) --------------------------------------------------------------------------

def test_evaluate_goes_on_past_truncated_and_nan_images(predictor, tmp_path):
    from napari_unetv2.engine.evaluate import evaluate_pairs, format_table
    from napari_unetv2.engine.pairs import find_pairs

    for i in range(3):
        save(tmp_path / "images" / f"ok{i}.png", picture(i))
        save(tmp_path / "masks" / f"ok{i}.png", ellipse_mask() * 255)
    full = jpeg_bytes(picture(5))
    truncated(tmp_path / "images" / "cut.jpg", full, 0.5)  # header intact: pairing reads only headers
    save(tmp_path / "masks" / "cut.png", ellipse_mask() * 255)
    tifffile.imwrite(tmp_path / "images" / "nan.tif", np.full((H, W), np.nan, np.float32))
    save(tmp_path / "masks" / "nan.png", ellipse_mask() * 255)
    report = find_pairs(tmp_path)
    assert len(report.pairs) == 5
    result = evaluate_pairs(predictor, report.pairs)
    assert result["n"] == 3
    assert sorted(f["file"] for f in result["failed"]) == ["cut.jpg", "nan.tif"]
    assert "could not be scored" in format_table(result)


# ---- the Batch folder widget (issue 12, acceptance: widgets too) ------------------------------------------

def test_batch_widget_reports_a_full_disk_in_one_line(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import errno

    import napari_unetv2.files.atomic as atomic
    import napari_unetv2.widgets  # noqa: F401  (sets up the import guard before the viewer exists)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Batch folder")
    save(tmp_path / "in" / "a.png", picture(0))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "a.png"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", full_disk)
    widget.input.value, widget.output.value = str(tmp_path / "in"), str(tmp_path / "out")
    assert widget.run() is not None
    # Wait on the status, not on the worker's signal: a quick refusal can finish before a wait begins.
    qtbot.waitUntil(lambda: widget.status.value.startswith("error") and widget.worker is None, timeout=120_000)
    assert widget.status.value.startswith("error: No space left on device (the disk is full)")
    assert "\n" not in widget.status.value


def test_batch_widget_says_why_it_refuses_an_output_folder_with_results(make_napari_viewer, qtbot, tmp_path):
    import napari_unetv2.widgets  # noqa: F401

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Batch folder")
    save(tmp_path / "in" / "a.png", picture(0))
    save(tmp_path / "out" / "a.png", ellipse_mask() * 255)  # an earlier result
    before = (tmp_path / "out" / "a.png").read_bytes()
    widget.input.value, widget.output.value = str(tmp_path / "in"), str(tmp_path / "out")
    widget.resume.value = False  # the widget continues by default; without it the folder is refused
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.status.value.startswith("error") and widget.worker is None, timeout=120_000)
    assert "already holds results" in widget.status.value and "\n" not in widget.status.value
    assert (tmp_path / "out" / "a.png").read_bytes() == before


def test_batch_widget_names_what_failed_and_why_and_a_missing_input_folder(make_napari_viewer, qtbot, tmp_path):
    """Session 26's trial: the status said "2 failed -> OUT" and named neither file nor reason (the CLI prints
    both); a subfolder was skipped without a word; a vanished input folder read "choose an input folder"."""
    import napari_unetv2.widgets  # noqa: F401

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Batch folder")
    src = tmp_path / "in"
    save(src / "a.png", picture(0))
    (src / "empty.png").write_bytes(b"")
    (src / "patient2").mkdir()
    widget.input.value, widget.output.value = str(src), str(tmp_path / "out")
    widget.open_results.value = False
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.worker is None and "failed" in widget.status.value, timeout=120_000)
    status = widget.status.value.replace("\u200b", "")
    assert "empty.png (" in status and "1 folder(s) inside" in status and "\n" not in status
    widget.input.value = str(tmp_path / "gone")
    assert widget.run() is None and "input folder not found" in widget.status.value.replace("\u200b", "")


# ---- session 26's cold review of the batch runner -------------------------------------------------------------

@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("images", ["abcdef", "abc"])
def test_a_mask_the_disk_refused_is_not_recorded_as_done(predictor, tmp_path, monkeypatch, sequential, images):
    """The write of c.png fails (disk full): the run stops, and summary.csv records a and b as done, c as an
    error, and nothing after it (the overlapped writer had recorded every queued image as done). With c the
    last image, the last summary write was queued behind the failed write and skipped: nothing was recorded."""
    import errno

    import napari_unetv2.inference.batch as batch

    src, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(images):
        save(src / f"{name}.png", picture(i))
    real = batch.write_png_atomic

    def disk_full_at_c(path, *args, **kwargs):
        if path.name == "c.png":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch, "write_png_atomic", disk_full_at_c)
    with pytest.raises(OSError, match="No space"):
        predict_folder(predictor, src, out, streams=1, overlap_io=not sequential)
    rows = summary_rows(out)
    on_disk = sorted(p.name for p in out.glob("*.png"))
    assert on_disk == ["a.png", "b.png"]
    assert {name: row["status"] for name, row in rows.items()} == {"a.png": "done", "b.png": "done", "c.png": "error"}
    assert "No space" in rows["c.png"]["note"]


def names_in_two_shards(first_suffix: str, second_suffix: str) -> tuple[str, str]:
    """Two file names of one stem whose shards (of 2) differ."""
    from napari_unetv2.inference.shards import in_shard

    for i in range(100):
        a, b = f"frame{i}{first_suffix}", f"frame{i}{second_suffix}"
        if in_shard(a, (0, 2)) != in_shard(b, (0, 2)):
            return a, b
    raise AssertionError("no such pair")


def test_a_name_clash_across_shards_is_refused_as_in_one_process(predictor, tmp_path):
    """a.jpg in shard 0 and a.png in shard 1 both wrote OUT/a.png: the clash was looked for in each shard only."""
    first, second = names_in_two_shards(".jpg", ".png")
    src = tmp_path / "in"
    save(src / first, picture(0), quality=95)
    save(src / second, picture(1))
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    predict_folder(predictor, src, whole)
    for i in range(2):
        predict_folder(predictor, src, sharded, shard=(i, 2))
    assert {n: r["status"] for n, r in summary_rows(sharded).items()} == {first: "error", second: "error"}
    assert summary_rows(sharded).keys() == summary_rows(whole).keys()
    assert not list(sharded.glob("*.png"))


def test_a_non_utf8_name_has_a_shard(predictor, tmp_path):
    src = tmp_path / "in"
    save(src / NON_UTF8, picture(0))
    save(src / "good.png", picture(1))
    out = tmp_path / "out"
    for i in range(2):
        predict_folder(predictor, src, out, shard=(i, 2))
    assert {r["status"] for r in summary_rows(out).values()} == {"done"} and len(summary_rows(out)) == 2


def test_an_old_shard_summary_does_not_put_back_a_fixed_error(predictor, tmp_path, monkeypatch):
    """A shard's error, fixed since by a --continue run on one process, came back at the next sharded run (every
    shard file ever written was merged again, over the newer rows)."""
    from napari_unetv2.inference.shards import in_shard

    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"im{i}.png" for i in range(8)]
    for i, name in enumerate(names):
        save(src / name, picture(i))
    failing = next(n for n in names if in_shard(n, (1, 2)))
    real = predictor._forward
    calls = []

    def fail_first_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a passing failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor, "_forward", fail_first_call)
    predict_folder(predictor, src, out, shard=(1, 2), streams=1)  # its first image fails
    assert summary_rows(out)[failing]["status"] == "error"
    predict_folder(predictor, src, out, resume=True, streams=1)  # one process finishes the folder
    assert summary_rows(out)[failing]["status"] == "done"
    predict_folder(predictor, src, out, shard=(0, 2), resume=True)  # a later sharded run
    assert summary_rows(out)[failing]["status"] == "done"
    assert not list(out.glob("summary.shard-*"))


def test_a_summary_row_with_an_extra_cell_does_not_stop_continue(predictor, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(("a.png", "b.png")):
        save(src / name, picture(i))
    predict_folder(predictor, src, out)
    text = (out / "summary.csv").read_text(encoding="utf-8").splitlines()
    text[0] += ",reviewer"  # a column added by hand in a spreadsheet,
    text[1] += ",ok,see ticket 12"  # and a row with one cell more than the header
    (out / "summary.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    (out / "b.png").unlink()
    summary = predict_folder(predictor, src, out, resume=True)
    assert summary.count("done") == 1 and (out / "b.png").is_file()
    rows = summary_rows(out)
    assert {r["status"] for r in rows.values()} == {"done"} and rows["a.png"]["reviewer"] == "ok"
