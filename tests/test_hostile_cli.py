"""The CLI and the configuration it reads: every expected error is one line and a non-zero exit (a traceback
only with --debug); recipes and checkpoint configs are validated (types and ranges) before anything is
built; training and fine-tuning never write into a folder holding another run or their starting model.
Cases: docs/robustness.md."""
from __future__ import annotations

import errno
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_synthetic_pairs
from hostile_files import picture, save, tree_digest

from napari_unetv2.checkpoints import ModelConfig, read_config, save_checkpoint
from napari_unetv2.cli import main


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("unetv2 ")]


@pytest.fixture
def images(tmp_path) -> Path:
    for i in range(2):
        save(tmp_path / "in" / f"{i}.png", picture(i))
    return tmp_path / "in"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_synthetic_pairs(tmp_path_factory.mktemp("pairs"), n=4, size=64)


# ---- main(): one line, non-zero exit (issue 12, item 5) ---------------------------------------------------

@pytest.mark.parametrize("error, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/0.png"), "No space left on device (the disk is full)"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/out/0.png"), "Permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out/0.png"), "Is a directory"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/share/out"), "Read-only file system"),
])
def test_os_errors_while_writing_are_one_line(tmp_path, images, capsys, monkeypatch, error, words):
    import napari_unetv2.files.atomic as atomic

    def failing_mkstemp(*args, **kwargs):
        raise error

    monkeypatch.setattr(atomic.tempfile, "mkstemp", failing_mkstemp)
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert words in line and error.filename in line


def test_output_mask_path_that_is_a_folder_is_one_line(tmp_path, images, capsys):
    """--continue into a folder where OUT/0.png is a folder: the rename fails with EISDIR."""
    (tmp_path / "out" / "0.png").mkdir(parents=True)
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "out"), "--device", "cpu", "--continue"]) == 2
    [line] = error_lines(capsys)
    assert "directory" in line.lower()


def test_output_that_is_a_file_is_one_line(tmp_path, images, capsys):
    (tmp_path / "out").write_text("mine")
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert len(error_lines(capsys)) == 1 and (tmp_path / "out").read_text() == "mine"


def test_memory_error_is_one_line_and_debug_shows_the_traceback(tmp_path, images, capsys, monkeypatch):
    import napari_unetv2.inference as inference

    class Exhausted:
        def __init__(self, *args, **kwargs):
            raise MemoryError("cannot allocate 80 GB")

    monkeypatch.setattr(inference, "Predictor", Exhausted)
    args = ["predict", "-i", str(images), "-o", str(tmp_path / "out")]
    assert main(args) == 2
    [line] = error_lines(capsys)
    assert "memory" in line and "--debug" in line
    assert main(["--debug"] + args) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(args + ["--debug"]) == 2  # also after the command's name
    assert "Traceback" in capsys.readouterr().err


def test_evaluate_on_a_folder_without_pairs_is_one_line(tmp_path, images, capsys):
    assert main(["evaluate", "--data", str(images), "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert "No usable image/mask pair" in line


def test_missing_checkpoint_is_one_line(tmp_path, images, capsys):
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "x.safetensors")]) == 2
    assert len(error_lines(capsys)) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["predict", "--threshold", "2"], ["predict", "--threshold", "nan"],
                                  ["evaluate", "--threshold", "-0.1"], ["train", "--limit", "0"],
                                  ["train", "--limit", "-3"], ["predict", "--tile", "0"], ["predict", "--tile", "-5"],
                                  ["predict", "--tile", "31"]])
def test_out_of_range_options_are_refused(tmp_path, args, capsys):
    command, *rest = args
    required = {"predict": ["-i", "x", "-o", "y"], "evaluate": ["--data", "x"], "train": ["--data", "x", "--out", "y"]}
    with pytest.raises(SystemExit) as exit_info:
        main([command, *required[command], *rest])
    assert exit_info.value.code == 2 and "expected" in capsys.readouterr().err


def test_evaluate_json_is_valid_json_with_null_for_nan(tmp_path, pairs, monkeypatch, capsys):
    import napari_unetv2.engine.evaluate as evaluate

    def with_nan(predictor, pairs, **kwargs):
        return {"dice": 0.5, "iou": 0.4, "mae": 0.1, "hd95": math.nan, "n": 1, "pooled": {"dsc": 0.5, "iou": 0.4},
                "domains": {}, "images": [{"name": "a", "hd95": float("inf"), "dice": np.float32(0.5)}], "failed": []}

    monkeypatch.setattr(evaluate, "evaluate_pairs", with_nan)
    assert main(["evaluate", "--data", str(pairs), "--device", "cpu", "--json", str(tmp_path / "r.json")]) == 0

    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    result = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert result["hd95"] is None and result["images"][0]["hd95"] is None and result["images"][0]["dice"] == 0.5
    (tmp_path / "r.json").write_text("{}")
    assert main(["evaluate", "--data", str(pairs), "--device", "cpu", "--json", str(tmp_path / "r.json"), "--overwrite"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["dice"] == 0.5


def test_evaluate_json_refuses_an_existing_file_or_a_missing_folder_before_evaluating(tmp_path, pairs, monkeypatch,
                                                                                     capsys):
    import napari_unetv2.engine.evaluate as evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated although the --json path was refused")

    monkeypatch.setattr(evaluate, "evaluate_pairs", never)
    existing = tmp_path / "results.json"
    existing.write_text("{}")
    for target, words in ((existing, "already exists"), (tmp_path / "no" / "r.json", "does not exist")):
        assert main(["evaluate", "--data", str(pairs), "--device", "cpu", "--json", str(target)]) == 2
        assert words in " ".join(error_lines(capsys))
    assert existing.read_text() == "{}"
    assert main(["evaluate", "--data", str(pairs), "--device", "cpu", "--json", str(tmp_path), "--overwrite"]) == 2
    assert "is a folder" in " ".join(error_lines(capsys))


def test_the_cli_tile_minimum_is_the_network_minimum():
    from napari_unetv2.cli import MIN_TILE
    from napari_unetv2.model import MIN_SIDE

    assert MIN_TILE == MIN_SIDE


# ---- recipes: typed --set values (issue 12, item 5) ---------------------------------------------------------

@pytest.mark.parametrize("override, words", [
    ("epochs=abc", "epochs must be an integer"), ("lr=fast", "lr must be a number"),
    ("input_size=5", "input_size must be a list of 2"), ("epochs=1.5", "epochs must be an integer"),
    ("epochs=0", "epochs must be in"), ("input_size=[16,16]", "input_size must be 2 values"),
    ("batch_size=true", "batch_size must be an integer"), ("threshold=1", "threshold must be in (0, 1)"),
    ("lr=.nan", "lr must be a number"), ("augment.hflip=maybe", "augment.hflip must be true or false"),
    ("augment.scale_range=[2,1]", "low <= high"), ("augment=5", "augment must be a mapping"),
    ("deep_supervision=[0,0]", "positive sum"), ("optimizer=adamax", "optimizer must be one of"),
    ("encoder=resnet", "encoder must be a known encoder"), ("no_such_field=1", "Unknown recipe field"),
    ("seed=-1", "seed must be in"), ("epochs", "must look like field=value"), ("lr=[1", "not valid YAML"),
])
def test_bad_set_values_are_one_line_and_create_nothing(tmp_path, pairs, capsys, override, words):
    out = tmp_path / "run"
    assert main(["train", "--data", str(pairs), "--out", str(out), "--set", override]) == 2
    [line] = error_lines(capsys)
    assert words in line, line
    assert not out.exists()


def test_yaml_number_without_a_dot_is_a_number():
    from napari_unetv2.engine.recipes import load_recipe, parse_override

    assert load_recipe("cpu", dict([parse_override("lr=1e-3")])).lr == 0.001


@pytest.mark.parametrize("text", ["- a\n- list\n", "epochs: [unclosed\n", "epochs: many\n", "\xff\xfe"])
def test_bad_recipe_files_are_one_line(tmp_path, pairs, capsys, text):
    recipe = tmp_path / "mine.yaml"
    recipe.write_bytes(text.encode("latin-1"))
    assert main(["train", "--recipe", str(recipe), "--data", str(pairs), "--out", str(tmp_path / "run")]) == 2
    assert len(error_lines(capsys)) == 1 and not (tmp_path / "run").exists()


# ---- checkpoint configs (issue 12, item 5) -------------------------------------------------------------------

def small_model():
    from napari_unetv2.model import UNetV2

    torch.manual_seed(0)
    return UNetV2("tf_efficientnet_lite0", channels=8).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "model.safetensors"
    model = small_model()
    save_checkpoint(model, path, ModelConfig.for_model(model, input_size=(64, 64)))
    return path


@pytest.mark.parametrize("field, value, words", [
    ("threshold", "high", "threshold must be a number"), ("threshold", 2, "threshold must be in (0, 1)"),
    ("threshold", None, "threshold must be a number"), ("input_size", [0, 0], "input_size must be 2 values"),
    ("input_size", [352], "input_size must be a list of 2"), ("input_size", "352", "input_size must be a list"),
    ("normalization", {"mode": "fixed", "std": [1, 1, 1]}, "normalization mean"),
    ("normalization", {"mode": "fixed", "mean": [0, 0, 0], "std": [0, 1, 1]}, "std must be positive"),
    ("normalization", {"mode": "histogram"}, "normalization mode"), ("normalization", [], "normalization must be a mapping"),
    ("channels", 200000, "channels must be in"), ("channels", 32.5, "channels must be an integer"),
    ("encoder", "../../evil", "encoder must be one of"), ("inference_mode", "fast", "inference_mode must be one of"),
    ("version", "../../x", "version must be"), ("format_version", 99, "format_version must be in"),
    ("num_classes", 0, "num_classes must be in"), ("parent", "../..", "parent must be"),
])
def test_absurd_checkpoint_configs_are_refused_on_load(tmp_path, checkpoint, images, capsys, field, value, words):
    data = json.loads(checkpoint.with_suffix(".json").read_text())
    data[field] = value
    path = tmp_path / "edited.safetensors"
    path.write_bytes(checkpoint.read_bytes())
    path.with_suffix(".json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not valid"):
        read_config(path)
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "out"), "--checkpoint", str(path), "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert words in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["[1, 2]", "{\"encoder\": \"pvt_v2_b2\", \"evil\": 1}", "\xff\xfe\x00", "{"])
def test_checkpoint_json_that_is_not_a_config_is_refused(tmp_path, checkpoint, text):
    path = tmp_path / "c.safetensors"
    path.write_bytes(checkpoint.read_bytes())
    path.with_suffix(".json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError):
        read_config(path)


@pytest.mark.parametrize("field, value", [("threshold", 2.0), ("input_size", (0, 0)), ("channels", -1),
                                          ("normalization", {"mode": "fixed"})])
def test_save_refuses_a_config_every_later_prediction_would_fail_on(tmp_path, field, value):
    model = small_model()
    config = ModelConfig.for_model(model, input_size=(64, 64))
    setattr(config, field, value)
    with pytest.raises(ValueError, match="not valid"):
        save_checkpoint(model, tmp_path / "m.safetensors", config)
    assert list(tmp_path.iterdir()) == []


def test_trusted_truncated_pickle_is_a_clear_error(tmp_path):
    from napari_unetv2.checkpoints import read_tensors

    torch.save(small_model().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or damaged"):
        read_tensors(tmp_path / "cut.pt", trusted=True)


def test_truncated_safetensors_is_a_clear_error(tmp_path, checkpoint):
    from napari_unetv2.checkpoints import load_checkpoint

    path = tmp_path / "cut.safetensors"
    path.write_bytes(checkpoint.read_bytes()[:1000])
    path.with_suffix(".json").write_text(checkpoint.with_suffix(".json").read_text())
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(path)


# ---- output folders of training and fine-tuning (issue 12, item 2) ----------------------------------------------

def test_train_into_an_existing_run_without_resume_is_refused(tmp_path, pairs, capsys):
    out = tmp_path / "run"
    (out / "last").mkdir(parents=True)
    for name in ("best.safetensors", "best.json", "log.csv", "last/state.json"):
        (out / name).write_text(f"earlier run's {name}")
    before = tree_digest(tmp_path)
    assert main(["train", "--data", str(pairs), "--out", str(out), "--epochs", "1", "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert "--resume" in line and "not empty" in line
    assert tree_digest(tmp_path) == before


def test_a_run_stopped_in_its_first_epoch_is_no_dead_end(tmp_path, pairs, capsys):
    """A folder with best.* and no last/ (stopped in its first epoch): the refusal said "pass --resume", and --resume
    said "no checkpoint to resume from": each pointed to the other (verification of session 28)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("best.safetensors", "best.json"):
        (out / name).write_text(f"earlier run's {name}")
    before = tree_digest(tmp_path)
    assert main(["train", "--data", str(pairs), "--out", str(out), "--epochs", "1", "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert "pass --resume" not in line and "choose a new folder" in line and "best.safetensors can start it" in line
    assert main(["train", "--data", str(pairs), "--out", str(out), "--epochs", "1", "--device", "cpu", "--resume"]) == 2
    [line] = error_lines(capsys)
    assert "stopped in its first epoch" in line and "new folder" in line and "--init" in line
    assert tree_digest(tmp_path) == before


def test_finetune_into_the_parent_checkpoints_folder_is_refused(tmp_path, pairs, capsys):
    parent_dir = tmp_path / "model"
    model = small_model()
    save_checkpoint(model, parent_dir / "best.safetensors", ModelConfig.for_model(model, input_size=(64, 64)))
    before = tree_digest(tmp_path)
    assert main(["finetune", "--checkpoint", str(parent_dir / "best.safetensors"), "--data", str(pairs),
                 "--out", str(parent_dir), "--epochs", "1", "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert "starting model" in line or "not empty" in line
    assert tree_digest(tmp_path) == before


def test_finetune_into_a_used_folder_does_not_advise_an_option_it_lacks(tmp_path, pairs, capsys):
    """The refusal said "pass --resume to continue that run"; unetv2 finetune has no --resume (cold review, session 26)."""
    parent_dir, out = tmp_path / "model", tmp_path / "used"
    model = small_model()
    save_checkpoint(model, parent_dir / "best.safetensors", ModelConfig.for_model(model, input_size=(64, 64)))
    out.mkdir()
    (out / "log.csv").write_text("an earlier round")
    before = tree_digest(tmp_path)
    assert main(["finetune", "--checkpoint", str(parent_dir / "best.safetensors"), "--data", str(pairs),
                 "--out", str(out), "--epochs", "1", "--device", "cpu"]) == 2
    [line] = error_lines(capsys)
    assert "not empty" in line and "--resume" not in line
    assert tree_digest(tmp_path) == before


def test_output_folder_rules(tmp_path):
    from napari_unetv2.engine.loop import TrainJob, claim_output_folder
    from napari_unetv2.engine.recipes import load_recipe

    recipe = load_recipe("cpu")

    def job(out, **kw):
        return TrainJob(recipe=recipe, train_pairs=[], val_pairs=[], out_dir=out, **kw)

    claim_output_folder(job(tmp_path / "new"))  # a new folder
    (tmp_path / "empty").mkdir()
    claim_output_folder(job(tmp_path / "empty"))  # an empty one (e.g. made by the user or mkdtemp)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "log.csv").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        claim_output_folder(job(tmp_path / "used"))
    claim_output_folder(job(tmp_path / "used", resume=True))  # resuming it is the way back in
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        claim_output_folder(job(tmp_path / "file"))
    (tmp_path / "used" / "parent.safetensors").write_text("x")
    with pytest.raises(ValueError, match="starting model"):
        claim_output_folder(job(tmp_path / "used", resume=True, init_checkpoint=tmp_path / "used" / "parent.safetensors"))


def test_config_dataclass_round_trip_still_loads(tmp_path, checkpoint):
    """The validation accepts what save_checkpoint writes (tuples become lists in JSON)."""
    config = read_config(checkpoint)
    assert ModelConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config


# ---- unetv2 predict's exit status (session 26's clinician trial) ----------------------------------------------

def test_predict_exits_1_when_an_image_failed_and_0_when_all_were_segmented(tmp_path, capsys):
    """A folder whose only image was corrupt printed "0 segmented ... 1 failed" and exited 0: a SLURM array or a
    script could not tell a failed run from a good one."""
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "good.png", picture(0))
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    (src / "notes.txt").write_text("not an image: listed, not a failure")
    assert main(["predict", "-i", str(src), "-o", str(out)]) == 1
    assert "1 failed" in capsys.readouterr().out
    (src / "corrupt.png").unlink()
    assert main(["predict", "-i", str(src), "-o", str(out), "--continue"]) == 0


def test_an_input_folder_that_goes_away_mid_run_stops_it_with_one_message(tmp_path):
    import shutil

    from napari_unetv2.inference import Predictor
    from napari_unetv2.inference.batch import predict_folder
    from napari_unetv2.inference.summary import read_summary

    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(6):
        save(src / f"im{i}.png", picture(i))

    def unplugged_after_the_second(done, total, name):
        if done == 2 and src.exists():
            shutil.rmtree(src)

    with pytest.raises(FileNotFoundError, match="input folder .* is gone"):
        predict_folder(Predictor(device="cpu"), src, out, progress=unplugged_after_the_second, overlap_io=False)
    rows = read_summary(out)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert sorted(p.name for p in out.glob("*.png")) == ["im0.png", "im1.png"]


def test_predict_in_tile_mode_says_what_it_costs_a_model_trained_on_resized_frames(tmp_path, capsys):
    """Session 27's trial: `unetv2 predict --tile 512` on a 6000x4000 frame gave 0.05% foreground (resized: 22%, the
    ground truth 21%) and said nothing; the Segment widget says it."""
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "good.png", picture(0))
    assert main(["predict", "-i", str(src), "-o", str(out), "--tile", "64"]) == 0
    assert "Tile mode: this model was trained on whole frames resized to" in capsys.readouterr().err
    assert main(["predict", "-i", str(src), "-o", str(tmp_path / "resized")]) == 0
    assert "Tile mode" not in capsys.readouterr().err


def test_evaluate_overwrite_replaces_only_an_earlier_result_never_a_checkpoint_config(tmp_path, pairs, monkeypatch,
                                                                                       capsys):
    """``--json best.json --overwrite`` in a run folder replaced the checkpoint's config with metrics: the checkpoint
    could no longer be loaded (trial of session 28)."""
    import napari_unetv2.engine.evaluate as evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated although the --json path was refused")

    monkeypatch.setattr(evaluate, "evaluate_pairs", never)
    (tmp_path / "best.safetensors").write_bytes(b"weights")
    config, notes = tmp_path / "best.json", tmp_path / "notes.json"
    config.write_text('{"encoder": "tf_efficientnet_lite0", "version": "abc"}')
    notes.write_text('["my", "notes"]')
    for target, words in ((config, "is the config of the checkpoint best.safetensors"),
                          (notes, "holds something other than evaluate's results")):
        before = target.read_text()
        assert main(["evaluate", "--data", str(pairs), "--device", "cpu", "--json", str(target), "--overwrite"]) == 2
        said = " ".join(error_lines(capsys))
        assert words in said and "Nothing was overwritten" in said
        assert target.read_text() == before
    from napari_unetv2.cli import not_an_evaluation_result

    (tmp_path / "made-by-touch.json").write_text("")
    (tmp_path / "earlier.json").write_text('{"dice": 0.8, "iou": 0.7, "n": 3, "model": "m", "data": "d"}')
    assert not_an_evaluation_result(tmp_path / "made-by-touch.json") is None
    assert not_an_evaluation_result(tmp_path / "earlier.json") is None


def test_a_train_or_finetune_that_fails_before_writing_leaves_no_empty_folder(tmp_path, pairs, capsys):
    """`unetv2 train --init evil.pt` and a failed finetune left their new, empty output folders (trial of session 28)."""
    pickle = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1)}, pickle)
    out = tmp_path / "new-run"
    assert main(["train", "--data", str(pairs), "--out", str(out), "--init", str(pickle), "--epochs", "1",
                 "--device", "cpu"]) == 2
    assert "pickle-based" in " ".join(error_lines(capsys)) and not out.exists()
    assert main(["finetune", "--checkpoint", str(pickle), "--data", str(pairs), "--out", str(out), "--epochs", "1",
                 "--device", "cpu"]) == 2
    assert "pickle-based" in " ".join(error_lines(capsys)) and not out.exists()
    kept = tmp_path / "made-before"
    kept.mkdir()
    assert main(["train", "--data", str(pairs), "--out", str(kept), "--init", str(pickle), "--epochs", "1",
                 "--device", "cpu"]) == 2
    assert kept.is_dir()  # the user's own (empty) folder stays


def test_models_puts_a_cli_checkpoint_into_the_widgets_store_and_refuses_hostile_ones(tmp_path, isolated_home, capsys,
                                                                                        small_checkpoint):
    """A checkpoint trained with the CLI could be run in napari from file only: never put in use, retrained or rolled
    back there (trial of session 28). `unetv2 models` adds it (verified first) and moves the pointer."""
    from napari_unetv2.checkpoints import ModelStore, read_config

    version = read_config(small_checkpoint).version
    assert main(["models", "add", str(small_checkpoint), "--use"]) == 0
    store = ModelStore(isolated_home / "models")
    assert store.current == version
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert f"* {version}  small-test-model" in listed
    assert main(["models", "use", "bundled"]) == 0 and store.current is None
    assert main(["models", "use", version]) == 0 and store.current == version
    pickle = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1)}, pickle)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(small_checkpoint.read_bytes()[:1000])
    cut.with_suffix(".json").write_text(small_checkpoint.with_suffix(".json").read_text())
    before = tree_digest(isolated_home)
    capsys.readouterr()
    for argv, words in ((["models", "add", str(pickle)], "pickle-based"), (["models", "add", str(cut)], "readable"),
                        (["models", "use", "../x"], "plain name"), (["models", "use", "0123456789ab"], "not in the model store")):
        assert main(argv) == 2, argv
        assert words in " ".join(error_lines(capsys)), argv
    assert tree_digest(isolated_home) == before


def test_models_lists_the_bundled_skin_model_and_puts_it_in_use_by_name(isolated_home, capsys):
    """First-hour trial of session 28: `unetv2 models` listed the bundled skin model only once a widget had put it in the
    store, and `models use skin` was refused, while the widgets offer it by name."""
    from napari_unetv2.checkpoints import ModelStore, bundled_checkpoint, read_config

    skin = read_config(bundled_checkpoint("skin")).version
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "* bundled    the bundled polyp model" in listed and f"skin       the bundled skin model ({skin}" in listed
    assert main(["models", "use", "skin"]) == 0
    store = ModelStore(isolated_home / "models")
    assert store.current == skin
    assert main(["models", "use", "polyp"]) == 0 and store.current is None
    capsys.readouterr()
    assert main(["models"]) == 0
    assert f"  {skin}  skin-default (the bundled skin model, from -; added " in capsys.readouterr().out


def test_evaluate_on_a_correction_set_says_what_the_model_trained_on_and_which_model_napari_uses(
        tmp_path, isolated_home, capsys, small_checkpoint):
    """Trial of session 29: `evaluate --data <correction set> --checkpoint in-use` scored the fine-tuned model on the
    corrections it had trained on (Dice 0.957) without a word, listed the set's provenance/*.json as skipped files, and
    a plain `predict`/`evaluate` ran the bundled model while napari had a fine-tuned version in use, unsaid."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.annotation import store_correction
    from napari_unetv2.checkpoints import ModelStore, load_checkpoint
    from napari_unetv2.corrections import CorrectionSet

    image, mask, _ = load_sample("polyp")
    cs = CorrectionSet(tmp_path / "set")
    first = store_correction(cs, image[:96, :96], mask[:96, :96], source="a.png").entry
    second = store_correction(cs, image[-96:, -96:], mask[-96:, -96:], source="b.png").entry
    model, config = load_checkpoint(small_checkpoint)
    config.training = {"trained_on": [first.id]}
    tuned = tmp_path / "tuned.safetensors"
    save_checkpoint(model, tuned, config)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(cs.root), "--checkpoint", str(tuned), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuned on 1 of these 2 corrections" in err and "provenance" not in err, err
    config.training = {"trained_on": [first.id], "trained_images": [second.image_hash]}  # b re-corrected since: new id
    save_checkpoint(model, tmp_path / "tuned2.safetensors", config)
    assert main(["evaluate", "--data", str(cs.root), "--checkpoint", str(tmp_path / "tuned2.safetensors"),
                 "--device", "cpu"]) == 0
    assert "fine-tuned on 2 of these 2 corrections" in capsys.readouterr().err
    store = ModelStore(isolated_home / "models")
    store.use(store.add(small_checkpoint).version)
    assert main(["evaluate", "--data", str(cs.root), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"napari's widgets have version {store.current} in use; this run uses the bundled model" in err, err


def test_evaluate_with_a_low_dice_names_the_other_bundled_model(tmp_path, isolated_home, capsys):
    """Trial of session 29: `evaluate` on dermoscopy with the (default) polyp model printed Dice 0.09 and nothing else,
    where the widgets warn about a model of another line."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.files import write_png_atomic

    image, mask, stem = load_sample("skin")
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    write_png_atomic(tmp_path / "d" / "images" / f"{stem}.png", image)
    write_png_atomic(tmp_path / "d" / "masks" / f"{stem}.png", (mask > 0).astype(np.uint8) * 255)
    assert main(["evaluate", "--data", str(tmp_path / "d"), "--device", "cpu", "--json", str(tmp_path / "r.json")]) == 0
    dice = json.loads((tmp_path / "r.json").read_text())["dice"]
    err = capsys.readouterr().err
    assert dice < 0.5 and "try --checkpoint skin" in err, (dice, err)
    assert main(["evaluate", "--data", str(tmp_path / "d"), "--device", "cpu", "--checkpoint", "skin"]) == 0
    assert "try --checkpoint" not in capsys.readouterr().err  # the skin model scores it well: no note


def test_models_lists_each_versions_scores_from_its_json(tmp_path, isolated_home, capsys, small_checkpoint):
    """Stop 29's list: `unetv2 models` gave ids, parents and dates but no score to choose a version by. A retrain
    round's version shows its held-out images' Dice (the parent's and its own) and the original-domain check; a
    trained run its validation Dice; a JSON whose scores are not numbers shows none, and lists."""
    from napari_unetv2.checkpoints import load_checkpoint

    model, config = load_checkpoint(small_checkpoint)
    rounds = {"held_out_before": {"n": 12, "dice": 0.8123}, "held_out_after": {"n": 12, "dice": 0.8456},
              "reference": {"set": "samples", "parent": {"n": 4, "dice": 0.9011}, "new": {"n": 4, "dice": 0.8977}}}
    for name, metrics in (("round", rounds), ("trained", {"selected_on": "validation", "epoch": 7, "val_dice": 0.8491}),
                          ("hostile", {"held_out_after": {"dice": "high", "n": "x"}, "val_dice": [1]})):
        config.metrics, config.name = metrics, f"{name}-model"
        with torch.no_grad():  # other weights: the version is the weights' hash
            next(model.parameters()).add_(0.001)
        path = tmp_path / f"{name}.safetensors"
        save_checkpoint(model, path, config)
        assert main(["models", "add", str(path)]) == 0
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if "-model" in line}
    assert "round-model" in lines, out
    assert "Dice 0.812 (parent) -> 0.846 on 12 held-out images; original-domain samples 0.901 -> 0.898" in lines["round-model"]
    assert "validation Dice 0.849 (the epoch chosen on it)" in lines["trained-model"]
    assert "Dice" not in lines["hostile-model"], lines


def test_evaluate_on_the_images_a_model_was_fine_tuned_on_says_so_ancestors_included(tmp_path, isolated_home, capsys,
                                                                                      small_checkpoint):
    """Trial of session 30: `evaluate --data frames --checkpoint in-use` printed Dice 0.82 for a version whose rounds had
    trained on every one of those frames (through the correction set), with no word; the note came only when --data
    was the correction set itself. The images are known by their pixels, also through the version it came from."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.checkpoints import load_checkpoint
    from napari_unetv2.corrections.correction_set import image_hash
    from napari_unetv2.files import write_png_atomic

    image, mask, _ = load_sample("polyp")
    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    crops = {"a": (image[:96, :96], mask[:96, :96]), "b": (image[-96:, -96:], mask[-96:, -96:])}
    for name, (pixels, labels) in crops.items():
        write_png_atomic(data / "images" / f"{name}.png", pixels)
        write_png_atomic(data / "masks" / f"{name}.png", labels * 255)
    model, config = load_checkpoint(small_checkpoint)
    config.training = {"trained_on": ["20261128-000000-a"], "trained_images": [image_hash(crops["a"][0])]}
    tuned = tmp_path / "tuned.safetensors"
    save_checkpoint(model, tuned, config)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(tuned), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "trained on 1 of these 2 images" in err and "a.png" in err, err
    # a version fine-tuned from it, with nothing of its own: the parent's images are still learned
    assert main(["models", "add", str(tuned)]) == 0
    parent = load_checkpoint(tuned)[1].version
    with torch.no_grad():
        next(model.parameters()).add_(0.001)
    config.training, config.parent = {"trained_on": []}, parent
    child = tmp_path / "child.safetensors"
    save_checkpoint(model, child, config)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(child), "--device", "cpu"]) == 0
    assert "trained on 1 of these 2 images" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(data), "--device", "cpu"]) == 0  # the bundled model: nothing to say
    assert "trained on" not in capsys.readouterr().err


def test_predict_takes_its_two_folders_as_plain_words_too(tmp_path, isolated_home, capsys):
    """Trial of session 30: `unetv2 predict DIR OUT` was refused ("the following arguments are required"). Now it runs
    as -i DIR -o OUT does; half or both ways at once are refused in one line, before the model loads."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.files import read_mask, write_png_atomic

    image, _, _ = load_sample("polyp")
    (tmp_path / "in").mkdir()
    write_png_atomic(tmp_path / "in" / "a.png", image[:96, :96])
    assert main(["predict", str(tmp_path / "in"), str(tmp_path / "plain"), "--device", "cpu"]) == 0
    assert main(["predict", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "flags"), "--device", "cpu"]) == 0
    assert np.array_equal(read_mask(tmp_path / "plain" / "a.png"), read_mask(tmp_path / "flags" / "a.png"))
    capsys.readouterr()
    for argv in (["predict", str(tmp_path / "in")], ["predict"], ["predict", "-i", str(tmp_path / "in"), str(tmp_path / "x")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr()
        assert "unetv2 predict IMAGES OUT" in err.err and "model:" not in err.out, argv
    assert not (tmp_path / "x").exists()


def test_predicts_folders_may_have_options_between_them(tmp_path, isolated_home, capsys):
    """Stop 30's list: `unetv2 predict IN --device cpu OUT` was refused (argparse took only the words before the first
    option). The folders may come anywhere; an unknown option is still refused, for predict and for the others."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.files import write_png_atomic

    image, _, _ = load_sample("polyp")
    (tmp_path / "in").mkdir()
    write_png_atomic(tmp_path / "in" / "a.png", image[:96, :96])
    assert main(["predict", str(tmp_path / "in"), "--device", "cpu", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a.png").is_file()
    for argv in (["predict", str(tmp_path / "in"), "--device", "cpu", str(tmp_path / "o2"), "--no-such-option"],
                 ["evaluate", "--data", str(tmp_path / "in"), "stray-word"]):
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err, argv
    assert not (tmp_path / "o2").exists()


def test_models_scores_that_are_no_finite_numbers_are_left_out():
    """Review of session 30: a JSON's val_dice of 1e400 crashed `unetv2 models` (float() overflowed); NaN printed."""
    from napari_unetv2.cli import scores_note

    assert scores_note({"val_dice": 10**400}) == "" and scores_note({"val_dice": float("nan")}) == ""
    assert scores_note({"held_out_after": {"dice": float("inf"), "n": 3}}) == ""
    assert scores_note({"val_dice": 0.5}) == "; validation Dice 0.500"
