"""Session 43: stop note 42's list and a clinician who compares the versions on her own images and changes her mind."""
from __future__ import annotations

from test_trial42 import _frames


def test_continue_shows_its_check_of_the_masks_already_there(predictor, tmp_path, capsys):
    """--continue reads every kept input whole for its SHA-256 before the first image (3 s for 2,000 files of 1 MB from
    the page cache, minutes from a network share) and showed nothing meanwhile (stop note 42). Now the CLI shows a bar
    and predict_folder reports each file checked."""
    from napari_unetv2.cli import main
    from napari_unetv2.inference.batch import predict_folder

    site = _frames(tmp_path / "site", [(40, 50), (30, 40), (20, 30)])
    out = tmp_path / "out"
    assert main(["predict", str(site), str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", str(site), str(out), "--continue"]) == 0
    err = capsys.readouterr().err
    assert "checking the masks already there" in err and "3/3" in err, err
    seen = []
    summary = predict_folder(predictor, site, out, resume=True, checking=lambda done, total: seen.append((done, total)))
    assert summary.count("skipped-done") == 3
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)], seen
