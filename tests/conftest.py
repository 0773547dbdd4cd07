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


def load_script(relative_path: str):
    """A script of the repository (e.g. ``training/average_checkpoints.py``) imported as a module, for its functions."""
    import importlib.util

    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_synthetic_pairs(root: Path, n: int = 8, size: int = 96, seed: int = 0) -> Path:
    """``root/images/*.jpg`` + ``root/masks/*.png``: textured pinkish frames, each with a darker red
    ellipse (the "lesion") whose mask is the ground truth. Small, deterministic, learnable in an epoch."""
    import imageio.v3 as iio
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.12, 0.25, 2) * size
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        base = np.array([200, 140, 130]) + rng.normal(0, 12, (size, size, 3))
        lesion = np.array([120, 50, 50]) + rng.normal(0, 12, (size, size, 3))
        image = np.where(mask[..., None], lesion, base).clip(0, 255).astype(np.uint8)
        iio.imwrite(root / "images" / f"synthetic_{i:02d}.jpg", image, quality=95)
        iio.imwrite(root / "masks" / f"synthetic_{i:02d}.png", mask.astype(np.uint8) * 255)
    return root


@pytest.fixture
def tiny_model():
    from napari_unetv2.model import UNetV2

    torch.manual_seed(0)
    return UNetV2("tf_efficientnet_lite0", channels=16).eval()


def pytest_collection_modifyitems(items):
    """Tests that open a napari viewer carry the ``gui`` marker (``-m "not gui"`` runs without a display)."""
    for item in items:
        if "make_napari_viewer" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """User data (correction sets, model store) in a temporary folder: tests never touch the real one."""
    home = tmp_path / "home"
    monkeypatch.setenv("NAPARI_UNETV2_HOME", str(home))
    return home


@pytest.fixture
def small_checkpoint(tmp_path):
    """A small real checkpoint (ImageNet-initialised EfficientNet-Lite0, 64x64 input) for fast loops. It stands
    for a version fine-tuned from the bundled polyp model (its parent), as the versions in a user's store are."""
    from napari_unetv2.checkpoints import ModelConfig, build_unetv2, bundled_checkpoint, read_config, save_checkpoint

    torch.manual_seed(0)
    model = build_unetv2("tf_efficientnet_lite0", channels=16, pretrained=True).eval()
    config = ModelConfig.for_model(model, input_size=(64, 64), name="small-test-model",
                                   parent=read_config(bundled_checkpoint()).version)
    path = tmp_path / "small.safetensors"
    save_checkpoint(model, path, config)
    return path


@pytest.fixture(scope="session")
def predictor():
    """The bundled model on the CPU (its default fast path), built once for the whole session (a test
    module may define its own ``predictor``)."""
    from napari_unetv2.inference import Predictor

    return Predictor(device="cpu")


@pytest.fixture
def sample_images(tmp_path):
    """A copy of the shipped sample images in ``tmp_path/in``."""
    import shutil

    from napari_unetv2._sample_data import sample_data_dir

    src = tmp_path / "in"
    shutil.copytree(sample_data_dir() / "images", src)
    return src


@pytest.fixture
def python_sigint():
    """Ctrl-C as a console process has it (Python's handler: KeyboardInterrupt). A napari test earlier in the run may
    leave another handler installed (napari's own, which quits Qt)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
