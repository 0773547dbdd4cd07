"""U-Net and UNet++ on the PVT-v2 encoder: UNetV2's output type and shapes, trainable by the engine's
loss, and the fast CPU path applies to them too."""
import pytest
import torch

from napari_unetv2.checkpoints import ModelConfig
from napari_unetv2.engine.losses import deep_supervision_loss
from napari_unetv2.inference.fast import as_channels_last, optimize_for_cpu
from napari_unetv2.model import UNet, UNetPlusPlus, UNetV2Output


@pytest.fixture(scope="module", params=[UNet, UNetPlusPlus])
def network(request):
    torch.manual_seed(0)
    return request.param("pvt_v2_b2")


def test_outputs_match_unetv2s_contract(network):
    network.eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 72, 100))
    assert isinstance(out, UNetV2Output) and out.attention is None
    assert [tuple(t.shape) for t in out.all_logits] == [(2, 1, 72, 100), (2, 1, 36, 50), (2, 1, 18, 25), (2, 1, 9, 13)]
    with pytest.raises(ValueError, match="no attention"):
        network(torch.randn(1, 3, 64, 64), return_attention=True)


def test_parameter_counts(network):
    expected = {"U-Net": 28_096_644, "UNet++": 29_314_180}  # PVT-v2-b2 encoder: 24.85 M of each
    assert sum(p.numel() for p in network.parameters()) == expected[network.architecture]


def test_one_training_step_reaches_encoder_and_decoder(network):
    network.train()
    x, mask = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    loss = deep_supervision_loss(network(x).all_logits, mask, (8, 4, 2, 1))
    loss.backward()
    named = dict(network.named_parameters())
    decoder = [n for n in named if not n.startswith("encoder.")]
    assert all(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in decoder)
    assert named["encoder.net.patch_embed.proj.weight"].grad.abs().sum() > 0
    config = ModelConfig.for_model(network, input_size=(64, 64))
    assert config.encoder == "pvt_v2_b2" and config.channels == 64
    network.zero_grad()


@pytest.mark.parametrize("fold_bn", [False, True], ids=["default", "folded"])
def test_fast_path_matches_eager(network, fold_bn):
    network.eval()
    fast = optimize_for_cpu(network, fold_bn=fold_bn)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        a, b = network(x).all_logits, fast(as_channels_last(x)).all_logits
    assert max((p - q).abs().max().item() for p, q in zip(a, b)) < 1e-4
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules()) != fold_bn  # folding removes every BN


# ---- the baselines in the training engine, checkpoints and the predictor (arch field) ------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch, cls", [("unet", UNet), ("unetpp", UNetPlusPlus)])
def test_train_save_load_predict_each_baseline(arch, cls, tmp_path):
    import json

    import numpy as np
    from conftest import make_synthetic_pairs

    from napari_unetv2.checkpoints import load_checkpoint
    from napari_unetv2.cli import main
    from napari_unetv2.inference import Predictor

    data, out = make_synthetic_pairs(tmp_path / "pairs"), tmp_path / "run"
    assert main(["train", "--recipe", "cpu", "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "4", "--input-size", "64", "64", "--device", "cpu", "--set", f"arch={arch}",
                 "--set", "channels=8", "--set", "val_fraction=0.25", "--set", "pretrained=false"]) == 0
    config = json.loads((out / "best.json").read_text())
    assert config["arch"] == arch and config["recipe"]["arch"] == arch and config["channels"] == 8
    model, loaded = load_checkpoint(out / "best.safetensors")
    assert type(model) is cls and model.decoder_channels == (8, 16, 32) and loaded.arch == arch
    predictor = Predictor(out / "best.safetensors", device="cpu")
    assert f"[{cls.architecture}, " in predictor.description  # the model line says it is a baseline
    image = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    prediction = predictor.predict(image)
    assert prediction.mask.shape == (70, 90)
    eager = Predictor(out / "best.safetensors", device="cpu", fast=False).predict(image)
    assert np.abs(prediction.probability - eager.probability).max() < 1e-4 / 4
    # the widget's attention box ticked: said in the words of the widget (it said "call it with return_attention=False")
    with pytest.raises(ValueError, match="untick 'compute SDI attention maps'"):
        predictor.predict(image, return_attention=True)
    masks = tmp_path / "masks"
    assert main(["predict", "-i", str(data / "images"), "-o", str(masks), "--checkpoint",
                 str(out / "best.safetensors"), "--device", "cpu"]) == 0
    assert len(list(masks.glob("*.png"))) == len(list((data / "images").iterdir()))


def test_arch_is_recorded_validated_and_defaults_to_unetv2(tmp_path):
    from napari_unetv2.checkpoints import load_checkpoint, save_checkpoint
    from napari_unetv2.engine.recipes import load_recipe
    from napari_unetv2.model import UNetV2, build_network

    model = build_network("unetv2", "tf_efficientnet_lite0", channels=8)
    assert type(model) is UNetV2 and ModelConfig.for_model(model).arch == "unetv2"
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, ModelConfig.for_model(model, input_size=(64, 64)))
    import json

    data = json.loads(path.with_suffix(".json").read_text())
    del data["arch"]  # a config written before the field existed
    path.with_suffix(".json").write_text(json.dumps(data))
    assert type(load_checkpoint(path)[0]) is UNetV2
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="segformer").validate()
    with pytest.raises(ValueError, match="sdi-decoder needs arch unetv2|'sdi-decoder' needs arch unetv2"):
        load_recipe("finetune", {"arch": "unet"})
    assert load_recipe("finetune", {"arch": "unet", "train_parts": "all"}).arch == "unet"
