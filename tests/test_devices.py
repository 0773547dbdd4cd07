import pytest
import torch

from napari_unetv2.devices import resolve_device


def test_auto_picks_an_available_device():
    device = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device.type in (expected, "mps")


def test_cpu_is_always_available():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the error path cannot be reached")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_nonsense_device_is_a_clear_error():
    with pytest.raises(ValueError, match="auto"):
        resolve_device("tpu9")
