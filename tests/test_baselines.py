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


def test_fast_path_matches_eager(network):
    network.eval()
    fast = optimize_for_cpu(network)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        a, b = network(x).all_logits, fast(as_channels_last(x)).all_logits
    assert max((p - q).abs().max().item() for p, q in zip(a, b)) < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
