"""CUDA paths: run by scripts/gpu_run.sh on a machine with a GPU; skipped (by nature) where there is none."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_synthetic_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_run.sh)")

# float16 autocast against float32 on the same weights: probabilities within 0.02, masks within 0.5% of
# pixels (measured differences are written by scripts/gpu_run.sh into its output folder).
AUTOCAST_MAX_ABS_P = 0.02
AUTOCAST_MASK_FRACTION = 0.005


def test_autocast_prediction_matches_float32():
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.inference import Predictor

    image = load_sample("polyp")[0]
    on_gpu = Predictor(device="cuda", precision="float16").predict(image)  # the explicit autocast option
    on_cpu = Predictor(device="cpu").predict(image)  # float32
    diff = np.abs(on_gpu.probability - on_cpu.probability)
    print(f"autocast vs fp32: max |dp| {diff.max():.5f}, mask pixels differing {np.mean(on_gpu.mask != on_cpu.mask):.5f}")
    assert diff.max() < AUTOCAST_MAX_ABS_P
    assert np.mean(on_gpu.mask != on_cpu.mask) < AUTOCAST_MASK_FRACTION


def test_the_default_on_cuda_is_float32():
    """float32 is the default on CUDA (faster than autocast at batch 1 on an H100); cuDNN's TF32 convolutions
    keep it from equalling the CPU exactly, so the bounds are autocast's."""
    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.inference import Predictor

    image = load_sample("polyp")[0]
    predictor = Predictor(device="cuda")
    assert predictor.precision == "float32"
    on_gpu, on_cpu = predictor.predict(image), Predictor(device="cpu").predict(image)
    diff = np.abs(on_gpu.probability - on_cpu.probability)
    print(f"cuda float32 vs cpu: max |dp| {diff.max():.6f}, mask pixels differing {np.mean(on_gpu.mask != on_cpu.mask):.5f}")
    assert diff.max() < AUTOCAST_MAX_ABS_P
    assert np.mean(on_gpu.mask != on_cpu.mask) < AUTOCAST_MASK_FRACTION


# Random encoder weights in the two training tests: a GPU machine need not have the ImageNet weight packages.
def test_a_training_epoch_on_cuda(tmp_path):
    from napari_unetv2.cli import main

    data = make_synthetic_pairs(tmp_path / "pairs")
    out = tmp_path / "run"
    assert main(["train", "--recipe", "cpu", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--input-size", "64", "64", "--batch-size", "4", "--device", "cuda", "--set", "pretrained=false"]) == 0
    assert (out / "best.safetensors").is_file()


def test_ddp_with_nccl_at_world_size_one(tmp_path):
    data = make_synthetic_pairs(tmp_path / "pairs")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29521",
           "-m", "napari_unetv2.cli", "train", "--recipe", "cpu", "--data", str(data), "--out", str(out),
           "--epochs", "1", "--input-size", "64", "64", "--batch-size", "4", "--device", "cuda", "--set", "pretrained=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP over nccl" in result.stdout


# The user's path on a GPU machine: device "auto" picks CUDA for the Retrain button, the folder session and
# `unetv2 predict`, so those paths must run there, not only the engine's.
def test_a_retrain_round_with_the_widgets_defaults_runs_on_cuda(tmp_path):
    """The Retrain button's call (``retrain_events`` with its defaults: device auto, the finetune recipe's epochs)
    on the bundled model: it trains on CUDA, the new version enters the store, and it runs on the CPU."""
    from napari_unetv2._sample_data import SAMPLES, load_sample
    from napari_unetv2.checkpoints import ModelStore
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.corrections.retrain import retrain_events
    from napari_unetv2.inference import Predictor

    store, corrections = ModelStore(tmp_path / "models"), CorrectionSet(tmp_path / "corrections")
    for key in list(SAMPLES)[:3]:
        image, truth, stem = load_sample(key)
        corrections.add(image, truth, source=stem, predicted_mask=np.zeros_like(truth))
    events, messages = retrain_events(store, corrections), []
    try:
        while True:
            messages.append(next(events).message)
    except StopIteration as finished:
        outcome = finished.value
    print("retrain round on cuda:", next(m for m in messages if "steps per epoch" in m))
    assert any("steps per epoch on cuda" in m for m in messages)
    assert outcome is not None and outcome.config.version in {v.version for v in store.versions()}
    image = load_sample("polyp")[0]
    on_cpu = Predictor(store.path_of(outcome.config.version), device="cpu").predict(image)
    assert on_cpu.mask.shape == image.shape[:2] and np.isfinite(on_cpu.probability).all()
    assert not list((store.root / "runs").glob("round-*"))


def test_unetv2_predict_on_cuda_writes_the_cpus_masks(tmp_path, monkeypatch):
    """`unetv2 predict` with its defaults (device auto = CUDA here) against `--device cpu` on the same folder:
    every mask written, within the float32-on-CUDA bounds above; `--continue` then does nothing again."""
    import imageio.v3 as iio

    from napari_unetv2.cli import main

    monkeypatch.setenv("NAPARI_UNETV2_HOME", str(tmp_path / "home"))
    data = make_synthetic_pairs(tmp_path / "pairs", n=6, size=200)
    assert main(["predict", str(data / "images"), str(tmp_path / "gpu")]) == 0
    assert main(["predict", str(data / "images"), str(tmp_path / "cpu"), "--device", "cpu"]) == 0
    names = sorted(p.name for p in (tmp_path / "cpu").glob("*.png"))
    assert len(names) == 6 and names == sorted(p.name for p in (tmp_path / "gpu").glob("*.png"))
    differing = np.mean([np.mean(iio.imread(tmp_path / "gpu" / n) != iio.imread(tmp_path / "cpu" / n)) for n in names])
    print(f"unetv2 predict cuda vs cpu: mask pixels differing {differing:.5f}")
    assert differing < AUTOCAST_MASK_FRACTION
    summary = (tmp_path / "gpu" / "summary.csv").read_text()
    assert main(["predict", str(data / "images"), str(tmp_path / "gpu"), "--continue"]) == 0
    assert (tmp_path / "gpu" / "summary.csv").read_text().count("\n") == summary.count("\n")
