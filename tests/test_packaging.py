import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from npe2 import PluginManifest


def test_wheel_carries_manifest_recipes_and_samples(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("napari_unetv2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        zf.extract("napari_unetv2/napari.yaml", tmp_path / "x")
    assert "napari.manifest" in entry_points and "napari_unetv2:napari.yaml" in entry_points
    assert {"napari_unetv2/recipes/paper.yaml", "napari_unetv2/sample_data/ATTRIBUTION.md"} <= names
    # Both bundled models travel in the wheel, which stays under 50 MB.
    assert {"napari_unetv2/weights/polyp_default.safetensors", "napari_unetv2/weights/skin_default.safetensors"} <= names
    assert wheel.stat().st_size < 50e6
    manifest = PluginManifest.from_file(tmp_path / "x" / "napari_unetv2" / "napari.yaml")
    assert manifest.name == "napari-unetv2" and manifest.contributions.widgets


def test_editable_install_manifest_is_discovered():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-unetv2")
    assert {w.display_name for w in manifest.contributions.widgets} >= {"Segment"}


def test_gpu_script_without_cuda_says_so_and_exits_cleanly(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the script would run for real")
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(["bash", str(repo / "scripts" / "gpu_run.sh"), str(tmp_path / "out")], cwd=repo,
                            capture_output=True, text=True, timeout=120, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "no CUDA device here" in result.stdout
    assert (tmp_path / "out" / "no_cuda.txt").is_file()
