import os
from pathlib import Path

import pytest
import torch

# One thread: CI and developers often share the two cores with a background training run.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A folder of ../shared/data, or skip (with the reason) where that collection is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data collection is only on project machines and CI)")
    return path


@pytest.fixture
def tiny_model():
    from napari_unetv2.model import UNetV2

    torch.manual_seed(0)
    return UNetV2("tf_efficientnet_lite0", channels=16).eval()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """User data (correction sets, model store) in a temporary folder: tests never touch the real one."""
    home = tmp_path / "home"
    monkeypatch.setenv("NAPARI_UNETV2_HOME", str(home))
    return home


@pytest.fixture
def small_checkpoint(tmp_path):
    """A small real checkpoint (ImageNet-initialised EfficientNet-Lite0, 64x64 input) for fast loops."""
    from napari_unetv2.checkpoint import ModelConfig, save_checkpoint
    from napari_unetv2.model import UNetV2

    torch.manual_seed(0)
    model = UNetV2("tf_efficientnet_lite0", channels=16, pretrained=True).eval()
    config = ModelConfig.for_model(model, input_size=(64, 64), name="small-test-model")
    path = tmp_path / "small.safetensors"
    save_checkpoint(model, path, config)
    return path
