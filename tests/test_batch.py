import csv

import numpy as np
import pytest

from napari_unetv2.files import read_image, write_png_atomic
from napari_unetv2.inference.batch import predict_folder


@pytest.fixture
def folder(sample_images):
    src = sample_images
    (src / "readme.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG broken")
    return src


def rows(out):
    with open(out / "summary.csv") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


def test_folder_prediction_with_junk(predictor, folder, tmp_path):
    out = tmp_path / "out"
    summary = predict_folder(predictor, folder, out, save_probabilities=True)
    assert summary.count("done") == 3 and summary.count("not-an-image") == 1 and summary.count("error") == 1
    table = rows(out)
    assert table["readme.txt"]["status"] == "not-an-image" and table["broken.png"]["status"] == "error"
    for image in (folder).glob("*.jpg"):
        mask = read_image(out / f"{image.stem}.png")
        assert mask.shape == read_image(image).shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert (out / f"{image.stem}_prob.tif").is_file()


def test_existing_results_are_not_overwritten_and_continue_skips(predictor, folder, tmp_path):
    out = tmp_path / "out"
    predict_folder(predictor, folder, out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    with pytest.raises(ValueError, match="--continue"):
        predict_folder(predictor, folder, out)
    summary = predict_folder(predictor, folder, out, resume=True)
    assert summary.count("skipped-done") == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes


def test_continue_never_overwrites_a_mask_it_did_not_finish_with(predictor, folder, tmp_path):
    """A first run without probabilities, then the user corrects a mask in the output folder, then
    ``--continue --save-probabilities``: the missing probabilities are written, the corrected mask is kept."""
    out = tmp_path / "out"
    predict_folder(predictor, folder, out)
    corrected = next(out.glob("*.png"))
    hand_made = np.zeros(read_image(corrected).shape, np.uint8)
    hand_made[:5, :7] = 255
    write_png_atomic(corrected, hand_made)
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    first_rows = rows(out)
    summary = predict_folder(predictor, folder, out, resume=True, save_probabilities=True)
    assert summary.count("done") == 0 and summary.count("skipped-done") == 3  # no mask was made
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before
    assert np.array_equal(read_image(corrected), hand_made)
    assert len(list(out.glob("*_prob.tif"))) == 3
    row = rows(out)[f"{corrected.stem}.jpg"]
    assert "kept the existing" in row["note"] and "_prob.tif with model" in row["note"]
    # the row still describes the run that made the mask (its model, size, foreground), not this one
    earlier = first_rows[f"{corrected.stem}.jpg"]
    assert {k: row[k] for k in ("status", "model_version", "foreground_fraction")} == \
        {k: earlier[k] for k in ("status", "model_version", "foreground_fraction")}


def test_a_second_run_into_the_same_folder_keeps_its_summary_rows(predictor, folder, tmp_path):
    """Another run (a second window, a second ``unetv2 predict``) writes its rows while this one runs."""
    from napari_unetv2.inference.summary import update_summary

    out = tmp_path / "out"
    other = {"file": "from_the_other_run.png", "status": "done", "model_version": "other"}

    def progress(index, total, name):
        if index == 1:
            update_summary(out, [other])

    predict_folder(predictor, folder, out, progress=progress)
    table = rows(out)
    assert table["from_the_other_run.png"]["model_version"] == "other"
    assert sum(row["status"] == "done" for row in table.values()) == 4


def test_masks_already_in_the_folder_are_not_credited_to_this_model(predictor, folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    first = sorted(folder.glob("*.jpg"))[0]
    write_png_atomic(out / f"{first.stem}.png", np.zeros(read_image(first).shape[:2], np.uint8))  # a hand-made mask
    summary = predict_folder(predictor, folder, out, resume=True)
    row = rows(out)[first.name]
    assert row["status"] == "skipped-done" and row["model_version"] == ""
    assert summary.unrecorded == 1 and "no summary row" in summary.describe()
    assert not summary.stopped


def test_continuing_with_another_model_says_what_it_kept_and_whether_the_folder_mixes_models(
        predictor, folder, tmp_path, small_checkpoint):
    from napari_unetv2.inference import Predictor

    out = tmp_path / "out"
    predict_folder(predictor, folder, out)  # the bundled model, no probabilities
    other = Predictor(small_checkpoint, device="cpu")
    summary = predict_folder(other, folder, out, resume=True)  # every mask there already
    assert summary.count("done") == 0 and summary.other_models == [predictor.config.version]
    assert "nothing was segmented with this model" in summary.describe() and "mixes" not in summary.describe()
    sorted(out.glob("*.png"))[0].unlink()  # one mask gone: the other model makes it
    summary = predict_folder(other, folder, out, resume=True)
    assert summary.count("done") == 1 and summary.unrecorded == 0
    assert "this folder mixes models" in summary.describe()
    versions = [row["model_version"] for row in rows(out).values() if row["status"] == "done"]
    assert sorted(versions) == sorted([predictor.config.version] * 2 + [other.config.version])


def test_interrupt_leaves_only_complete_files(predictor, folder, tmp_path, monkeypatch):
    """A Ctrl-C that lands inside a write (here: at the second rename of a finished temporary file)
    leaves no temporary file and no half-written output; --continue then completes the folder."""
    import os

    out = tmp_path / "out"
    real_replace, calls = os.replace, []

    def interrupted_replace(src, dst):
        if str(dst).endswith(".png"):
            calls.append(dst)
            if len(calls) == 2:  # the second mask: its bytes are written, the rename never happens
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(predictor, folder, out)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(calls) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 1  # the first mask is complete, the second was never put in place
    for png in pngs:
        read_image(png)  # every file present is complete
    summary = predict_folder(predictor, folder, out, resume=True)
    assert summary.count("done") + summary.count("skipped-done") == 3


def test_same_input_and_output_folder_is_refused(predictor, folder):
    with pytest.raises(ValueError, match="differ"):
        predict_folder(predictor, folder, folder)


def test_continuing_with_other_settings_says_the_folder_mixes_them(predictor, folder, tmp_path):
    """`--continue --threshold 0.9` after a tiled run kept the earlier masks unsaid, and summary.csv recorded only the
    model: a folder could mix settings invisibly (trial of session 28)."""
    out = tmp_path / "out"
    predict_folder(predictor, folder, out, tile=64)
    made = {name: row for name, row in rows(out).items() if row["status"] == "done"}
    threshold = predictor.config.threshold
    assert {row["settings"] for row in made.values()} == {f"tile 64, threshold {threshold:g}"}
    summary = predict_folder(predictor, folder, out, resume=True, threshold=0.9)
    assert summary.count("done") == 0 and summary.other_settings == [f"tile 64, threshold {threshold:g}"]
    assert "made with other settings (tile 64" in summary.describe()
    sorted(out.glob("*.png"))[0].unlink()
    summary = predict_folder(predictor, folder, out, resume=True, threshold=0.9, tta=True)
    assert summary.count("done") == 1 and "this folder mixes settings" in summary.describe()
    settings = sorted(row["settings"] for row in rows(out).values() if row["status"] == "done")
    mode = predictor.config.inference_mode
    assert settings == sorted([f"tile 64, threshold {threshold:g}"] * 2 + [f"{mode}, threshold 0.9, flip TTA"])


def test_the_run_names_the_images_where_the_model_marked_nothing(predictor, sample_images, tmp_path):
    """A mask of zeros is a file like the others: the run says which images got one (trial of session 36: 3 of 8
    PolypGen frames, found only by reading foreground_fraction in summary.csv)."""
    write_png_atomic(sample_images / "plain grey.png", np.full((256, 256, 3), 128, np.uint8))
    summary = predict_folder(predictor, sample_images, tmp_path / "out")
    assert summary.empty == ["plain grey.png"]
    assert "note: the model marked nothing in 1 of the images segmented (empty masks): plain grey.png" in summary.describe()
    assert float(rows(tmp_path / "out")["plain grey.png"]["foreground_fraction"]) == 0
