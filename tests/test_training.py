"""Training through the CLI: every test runs on 8 small synthetic pairs (so it runs on any clone), and the
end-to-end run is repeated on 8 real PolypGen pairs where ../shared/data is present."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import make_synthetic_pairs, shared_data

from napari_unetv2.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eight_pairs(tmp_path_factory):
    """Eight synthetic pairs (96x96): what every clone can make."""
    return make_synthetic_pairs(tmp_path_factory.mktemp("synthetic8"))


@pytest.fixture(scope="module")
def eight_real_pairs(tmp_path_factory):
    source = shared_data("polypgen", "train")
    root = tmp_path_factory.mktemp("polyp8")
    names = sorted(p.stem for p in (source / "images").iterdir())
    # Eight frames that all show a polyp (masks non-empty), taken in a fixed order.
    chosen = [n for n in names if (source / "masks" / f"{n}.png").stat().st_size > 2000][:8]
    for sub, ext in (("images", ".jpg"), ("masks", ".png")):
        (root / sub).mkdir()
        for name in chosen:
            shutil.copy(source / sub / f"{name}{ext}", root / sub / f"{name}{ext}")
    return root


TRAIN = ["train", "--recipe", "cpu", "--input-size", "64", "64", "--batch-size", "2", "--device", "cpu",
         "--set", "val_fraction=0.25", "--set", "schedule=constant", "--set", "augment.rotate_degrees=0",
         "--set", "augment.color_jitter=0"]


def read_log(out):
    with open(out / "log.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("source", ["synthetic", "polypgen"])
def test_train_resume_evaluate_predict(source, request, tmp_path):
    eight_pairs = request.getfixturevalue("eight_pairs" if source == "synthetic" else "eight_real_pairs")
    out = tmp_path / "run"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "2"]) == 0
    log = read_log(out)
    assert [int(r["epoch"]) for r in log] == [1, 2]
    assert all(0 < float(r["train_loss"]) < 10 for r in log)  # finite, sane (learning: test below)
    for name in ("best.safetensors", "best.json", "curves.png", "log.json", "last/model.safetensors",
                 "last/optimizer.safetensors", "last/state.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "best.json").read_text())
    assert config["metrics"]["selected_on"] == "validation" and config["training"]["n_train"] == 6

    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "3", "--resume"]) == 0
    log = read_log(out)
    assert [int(r["epoch"]) for r in log] == [1, 2, 3]  # continued from epoch 2, did not start over

    result = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--data", str(eight_pairs),
                 "--json", str(result), "--device", "cpu"]) == 0
    scores = json.loads(result.read_text())
    assert scores["n"] == 8 and 0 <= scores["dice"] <= 1 and {"iou", "mae"} <= set(scores)

    masks = tmp_path / "masks"
    assert main(["predict", "-i", str(eight_pairs / "images"), "-o", str(masks),
                 "--checkpoint", str(out / "best.safetensors"), "--device", "cpu"]) == 0
    assert len(list(masks.glob("*.png"))) == 8 and (masks / "summary.csv").is_file()


def test_training_learns(eight_pairs, tmp_path):
    """Eight epochs on the synthetic lesions: the loss comes down clearly (two epochs of three steps are
    within noise, so the end-to-end test above does not judge learning)."""
    out = tmp_path / "learn"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "8"]) == 0
    losses = [float(r["train_loss"]) for r in read_log(out)]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.05, losses


def test_resume_without_checkpoint_is_an_error(eight_pairs, tmp_path):
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(tmp_path / "empty"), "--resume"]) == 2


@pytest.mark.parametrize("damage", [("epoch", None), ("history", None), ("epoch", "2"), ("best_val_dice", True)])
def test_resume_from_a_damaged_state_is_one_line_and_changes_nothing(eight_pairs, tmp_path, capsys, damage):
    import json

    out = tmp_path / "run"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "1"]) == 0
    state_file = out / "last" / "state.json"
    state = json.loads(state_file.read_text())
    field, value = damage
    if value is None:
        del state[field]
    else:
        state[field] = value
    state_file.write_text(json.dumps(state))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "2", "--resume"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "damaged" in error[0] and field in error[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def train_under_torchrun(processes: int, port: int, data, out) -> subprocess.CompletedProcess:
    """One epoch of the test recipe through torchrun on the CPU (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(port),
           "-m", "napari_unetv2.cli", *TRAIN, "--data", str(data), "--out", str(out), "--epochs", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_ddp_two_cpu_processes(eight_pairs, tmp_path):
    out = tmp_path / "ddp"
    train_under_torchrun(2, 29517, eight_pairs, out)
    log = read_log(out)
    # 6 training pairs split over 2 ranks = 3 each; batch 2 -> 2 steps per rank (single process: 3).
    assert int(log[0]["world_size"]) == 2 and int(log[0]["steps"]) == 2
    assert (out / "best.safetensors").is_file() and (out / "last" / "model.safetensors").is_file()


def test_torchrun_with_one_process_trains_through_ddp(eight_pairs, tmp_path):
    """World size 1 under torchrun still starts the process group and wraps the model in DDP (the
    GPU script runs the same with NCCL)."""
    out = tmp_path / "ddp1"
    result = train_under_torchrun(1, 29519, eight_pairs, out)
    assert "(world size 1, DDP over gloo)" in result.stdout
    assert int(read_log(out)[0]["world_size"]) == 1 and (out / "best.safetensors").is_file()


def test_finetune_cli_writes_a_child_version(eight_pairs, tmp_path, small_checkpoint):
    out = tmp_path / "ft"
    assert main(["finetune", "--checkpoint", str(small_checkpoint), "--data", str(eight_pairs), "--out", str(out),
                 "--epochs", "1", "--device", "cpu", "--replay", str(eight_pairs)]) == 0
    summary = json.loads((out / "finetune.json").read_text())
    parent = json.loads(small_checkpoint.with_suffix(".json").read_text())
    child = json.loads((out / "best.json").read_text())
    assert child["parent"] == parent["version"] and child["version"] != parent["version"]
    # 8 corrections: all train (no held-out part below 10 images), the last epoch is kept
    assert child["recipe"]["train_parts"] == "sdi-decoder" and summary["held_out"] == [] and len(summary["trained_on"]) == 8
    assert child["metrics"]["selected_on"].startswith("last epoch") and child["training"]["replay"] == 8
    assert child["input_size"] == [64, 64]


def test_train_init_starts_from_a_checkpoint_and_keeps_it(eight_pairs, tmp_path, small_checkpoint, capsys):
    """`unetv2 train --init` (the warm start behind the bundled polyp model's second stage): the run
    starts from the checkpoint's weights (its encoder and width, not the recipe's), records it as the
    parent, trains at the recipe's input size, and leaves the starting checkpoint untouched."""
    from napari_unetv2.checkpoints import load_checkpoint

    before = small_checkpoint.read_bytes()
    parent = json.loads(small_checkpoint.with_suffix(".json").read_text())
    out = tmp_path / "warm"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "1", "--init", str(small_checkpoint),
                         "--encoder", "pvt_v2_b0", "--input-size", "96", "96"]) == 0
    assert f"starting weights: checkpoint {parent['version']}" in capsys.readouterr().out
    child = json.loads((out / "best.json").read_text())
    assert child["parent"] == parent["version"] and child["encoder"] == "tf_efficientnet_lite0"
    assert child["channels"] == 16 and child["input_size"] == [96, 96] and "--init" in child["training"]["command"]
    assert small_checkpoint.read_bytes() == before
    # the weights moved from the starting point, by one epoch's worth, not from a fresh initialisation
    start, _ = load_checkpoint(small_checkpoint)
    trained, _ = load_checkpoint(out / "best.safetensors")
    key = "encoder.conv_stem.weight" if "encoder.conv_stem.weight" in start.state_dict() else next(iter(start.state_dict()))
    drift = (trained.state_dict()[key] - start.state_dict()[key]).abs().max().item()
    assert 0 < drift < 0.05, drift


def test_save_epochs_keeps_each_epoch_s_weights(eight_pairs, tmp_path, small_checkpoint):
    """`--save-epochs` (for weight averaging across epochs): one checkpoint per epoch, the last equal to
    last/'s weights; without it, no epochs/ folder."""
    from napari_unetv2.checkpoints import read_tensors

    args = TRAIN + ["--data", str(eight_pairs), "--epochs", "2", "--init", str(small_checkpoint),
                    "--input-size", "64", "64"]
    assert main(args + ["--out", str(tmp_path / "kept"), "--save-epochs"]) == 0
    saved = sorted(p.name for p in (tmp_path / "kept" / "epochs").glob("*.safetensors"))
    assert saved == ["epoch-001.safetensors", "epoch-002.safetensors"]
    last = read_tensors(tmp_path / "kept" / "last" / "model.safetensors")
    second = read_tensors(tmp_path / "kept" / "epochs" / "epoch-002.safetensors")
    assert all(torch.equal(last[k], second[k]) for k in last)
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "epochs").exists()


@pytest.mark.parametrize("recipe", ["authors-polyp", "authors-isic", "paper"])
def test_every_recipe_runs_a_real_epoch(eight_pairs, tmp_path, recipe):
    """Multi-scale with a step per scale, gradient clamp, AdamW; SGD + CE/Dice + z-score + norm clip; the paper's."""
    out = tmp_path / recipe
    args = ["train", "--recipe", recipe, "--data", str(eight_pairs), "--out", str(out), "--encoder", "pvt_v2_b0",
            "--epochs", "1", "--batch-size", "4", "--input-size", "64", "64", "--device", "cpu",
            "--set", "pretrained=false", "--set", "val_fraction=0.25", "--set", "channels=16"]
    assert main(args) == 0
    log = read_log(out)
    assert len(log) == 1 and float(log[0]["train_loss"]) > 0
    config = json.loads((out / "best.json").read_text())
    assert config["recipe"]["name"] == recipe
    assert config["normalization"]["mode"] == ("zscore" if recipe == "authors-isic" else "fixed")


def test_offline_pretrained_pvt_is_a_clear_cli_error(eight_pairs, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = ["train", "--recipe", "paper", "--data", str(eight_pairs), "--out", str(tmp_path / "x"),
            "--encoder", "pvt_v2_b0", "--epochs", "1"]
    assert main(args) == 2
    assert "pretrained='/path" in capsys.readouterr().err


def test_resume_refuses_another_plan_or_data_and_changes_nothing(eight_pairs, tmp_path, capsys):
    """--resume accepted any command line: other data, input size and learning rate went into one run unsaid, and
    the checkpoint recorded the new settings as the whole run's (trial of session 28)."""
    fewer = tmp_path / "fewer"
    for sub in ("images", "masks"):
        (fewer / sub).mkdir(parents=True)
        for path in sorted((eight_pairs / sub).iterdir())[:6]:
            shutil.copy(path, fewer / sub / path.name)
    constant, poly = tmp_path / "constant", tmp_path / "poly"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(constant), "--epochs", "1"]) == 0
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(poly), "--epochs", "1", "--set", "schedule=poly"]) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    refused = [
        (constant, ["--data", str(eight_pairs), "--epochs", "2", "--input-size", "96", "96"], "input_size [96, 96]"),
        (constant, ["--data", str(eight_pairs), "--epochs", "2", "--set", "lr=0.01"], "lr 0.01"),
        (constant, ["--data", str(fewer), "--epochs", "2"], "the training data (4 pairs; the run: 6 pairs)"),
        (constant, ["--data", str(eight_pairs), "--epochs", "2", "--name", "other"], "--name other"),
        (constant, ["--data", str(eight_pairs), "--epochs", "1"], "nothing to resume"),
        (poly, ["--data", str(eight_pairs), "--epochs", "2", "--set", "schedule=poly"], "poly learning-rate schedule"),
    ]
    for out, options, words in refused:
        assert main(TRAIN + options + ["--out", str(out), "--resume"]) == 2, options
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and words in error[0] and "Nothing was changed" in error[0], (options, error[0][-300:])
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(constant), "--epochs", "2", "--resume"]) == 0
    said = capsys.readouterr()
    assert "resuming" in said.out + said.err


def test_a_resumed_run_fetches_no_encoder_weights_keeps_their_record_and_ctrl_c_says_resume(eight_pairs, tmp_path,
                                                                                             monkeypatch, capsys):
    """A resume of a `paper` run tried to download the ImageNet weights it then replaced (trial of session 28); built
    without them, it must still record where the weights began. An interrupted train says how to go on."""
    import napari_unetv2.cli as cli
    import napari_unetv2.engine.loop as loop

    out = tmp_path / "run"
    args = TRAIN + ["--data", str(eight_pairs), "--out", str(out)]
    assert main(args + ["--epochs", "1"]) == 0
    began = json.loads((out / "last" / "model.json").read_text())["encoder_weights"]
    assert "ImageNet" in began
    asked, build = [], loop.build_unetv2
    monkeypatch.setattr(loop, "build_unetv2", lambda *a, **k: asked.append(k.get("pretrained")) or build(*a, **k))
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    assert asked == [False]
    assert json.loads((out / "last" / "model.json").read_text())["encoder_weights"] == began
    assert json.loads((out / "best.json").read_text())["encoder_weights"] == began

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "drive_training", interrupted)
    capsys.readouterr()
    assert main(args + ["--epochs", "3", "--resume"]) == 130
    assert "the same command with --resume goes on" in capsys.readouterr().err


def test_ctrl_c_while_an_epochs_files_are_written_leaves_them_all(eight_pairs, tmp_path, monkeypatch, python_sigint):
    """Ctrl-C after best.* and before last/ left a run that neither --resume nor a new run into its folder would take
    (verification of session 28): an epoch's files are written as a set, then the interrupt comes."""
    import os
    import signal

    import napari_unetv2.engine.loop as loop

    save, pressed = loop.save_checkpoint, []

    def then_ctrl_c(*args, **kwargs):  # once, just after best.* is written
        config = save(*args, **kwargs)
        if not pressed:
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return config

    monkeypatch.setattr(loop, "save_checkpoint", then_ctrl_c)
    out = tmp_path / "run"
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "2"]) == 130
    assert (out / "best.safetensors").is_file() and (out / "last" / "state.json").is_file()
    assert json.loads((out / "last" / "state.json").read_text())["epoch"] == 1
    monkeypatch.undo()
    assert main(TRAIN + ["--data", str(eight_pairs), "--out", str(out), "--epochs", "2", "--resume"]) == 0


def test_resume_reproduces_an_uninterrupted_run(eight_pairs, tmp_path):
    from napari_unetv2.checkpoints import read_tensors

    straight, split = tmp_path / "straight", tmp_path / "split"
    common = TRAIN + ["--data", str(eight_pairs), "--set", "augment.rotate_degrees=10"]
    assert main(common + ["--out", str(straight), "--epochs", "2"]) == 0
    assert main(common + ["--out", str(split), "--epochs", "1"]) == 0
    assert main(common + ["--out", str(split), "--epochs", "2", "--resume"]) == 0
    a = read_tensors(straight / "last" / "model.safetensors")
    b = read_tensors(split / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_without_validation_the_lowest_loss_epoch_is_kept(eight_pairs, tmp_path):
    out = tmp_path / "noval"
    args = ["train", "--recipe", "cpu", "--data", str(eight_pairs), "--out", str(out), "--encoder", "pvt_v2_b0",
            "--set", "pretrained=false", "--set", "val_fraction=0", "--epochs", "1", "--input-size", "64", "64",
            "--device", "cpu"]
    assert main(args) == 0
    assert float(read_log(out)[0]["train_loss"]) > 1.0  # a loss above 1 once hid the best checkpoint
    config = json.loads((out / "best.json").read_text())
    assert config["metrics"]["selected_on"].startswith("train loss")


def test_loader_workers_feed_the_same_batches_and_stay_deterministic(eight_pairs, tmp_path):
    """``--workers``: worker processes (persistent, each with its own image cache) feed the same first epoch as
    in-process loading (no random augmentation here, so the weights are equal), and two runs with workers give
    the same weights after two epochs. (Later epochs' order differs from in-process loading: a persistent
    loader draws its worker seed from the shuffling generator once, not once per epoch.)"""
    from napari_unetv2.checkpoints import read_tensors

    no_random = TRAIN + ["--set", "augment.hflip=false", "--set", "augment.vflip=false",
                         "--set", "augment.scale_range=[1,1]", "--data", str(eight_pairs)]

    def weights(name, *extra):
        assert main(no_random + ["--out", str(tmp_path / name), *extra]) == 0
        return read_tensors(tmp_path / name / "last" / "model.safetensors")

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    assert same(weights("w0", "--epochs", "1"), weights("w2", "--epochs", "1", "--workers", "2"))
    flips = ["--set", "augment.hflip=true", "--set", "augment.vflip=true"]  # random draws in the workers
    assert same(weights("x1", "--epochs", "2", "--workers", "2", *flips),
                weights("x2", "--epochs", "2", "--workers", "2", *flips))
    with pytest.raises(SystemExit) as refused:
        main(no_random + ["--out", str(tmp_path / "bad"), "--workers", "-1"])
    assert refused.value.code == 2
    assert not (tmp_path / "bad").exists()


def test_a_training_that_fails_or_is_closed_ends_its_loader_workers(eight_pairs, tmp_path, monkeypatch):
    """Persistent loader workers (and their image caches) end with the training: when the GUI's cancel closes
    the event generator mid-epoch, and when an error escapes while the caller keeps the exception (whose
    traceback holds the training's frame, and with it the loader)."""
    import multiprocessing

    from napari_unetv2.engine import loop
    from napari_unetv2.engine.data import find_pairs
    from napari_unetv2.engine.recipes import load_recipe

    recipe = load_recipe("cpu", {"input_size": (64, 64), "batch_size": 2, "epochs": 3})

    def job(name):
        return loop.TrainJob(recipe=recipe, train_pairs=find_pairs(eight_pairs).pairs, val_pairs=[],
                             out_dir=tmp_path / name, device="cpu", num_workers=2)

    events = loop.run_training(job("closed"))
    assert next(e for e in events if e.kind == "step")
    assert len(multiprocessing.active_children()) == 2
    events.close()
    assert multiprocessing.active_children() == []

    def failing_step(run, images, masks):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(loop, "optimizer_step", failing_step)
    with pytest.raises(RuntimeError) as kept:
        for _ in loop.run_training(job("failed")):
            pass
    assert kept.value.__traceback__ is not None  # the frames stay referenced here
    assert multiprocessing.active_children() == []


class _ScalerStub:
    """torch.amp.GradScaler's contract as _apply_update uses it: after a step whose float16 gradients overflowed,
    the optimiser is not stepped and update() halves the scale."""

    def __init__(self):
        self.scale, self.overflow = 1024.0, True

    def unscale_(self, optimizer):
        pass

    def get_scale(self):
        return self.scale

    def step(self, optimizer):
        if not self.overflow:
            optimizer.step()

    def update(self):
        if self.overflow:
            self.scale /= 2


def test_a_skipped_float16_update_does_not_advance_the_schedule():
    """On CUDA the engine trains with float16 autocast; GradScaler skips the first updates while it finds its scale.
    The schedule went on regardless (PyTorch warned), so a retrain round of a few dozen steps lost its first,
    largest learning rates. Now the schedule waits for real updates, and the epoch's record counts the skips."""
    from types import SimpleNamespace

    from napari_unetv2.engine.loop import _apply_update

    weight = torch.nn.Parameter(torch.ones(1))
    weight.grad = torch.ones(1)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 10)
    run = SimpleNamespace(recipe=SimpleNamespace(grad_clamp=None, grad_norm_clip=None), params=[weight],
                          optimizer=optimizer, scheduler=schedule, scaler=_ScalerStub(), use_amp=True, skipped_steps=0)
    _apply_update(run)  # overflow: no update
    assert weight.item() == 1.0 and schedule.last_epoch == 0 and optimizer.param_groups[0]["lr"] == 0.1
    assert run.skipped_steps == 1
    run.scaler.overflow = False
    _apply_update(run)  # a real update at the schedule's first learning rate
    assert weight.item() == pytest.approx(0.9) and schedule.last_epoch == 1 and run.skipped_steps == 1
