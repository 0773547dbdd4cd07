import math

import pytest
import torch

from napari_unetv2.engine.losses import deep_supervision_loss
from napari_unetv2.model import ENCODERS, UNetV2


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_configuration_parameter_count():
    model = UNetV2("pvt_v2_b2", channels=32, num_classes=1)
    assert abs(n_params(model) - 25.13e6) / 25.13e6 < 0.005


def test_sdi_has_one_conv_per_level_pair_and_decoder_three_transposed_convs():
    model = UNetV2("pvt_v2_b0")
    assert sum(len(s.convs) for s in model.sdi) == 16
    assert len(model.up) == 3 and all(isinstance(u, torch.nn.ConvTranspose2d) for u in model.up)
    assert all(u.bias is None and u.kernel_size == (4, 4) and u.stride == (2, 2) for u in model.up)


@pytest.mark.parametrize("shape", [(1, 3, 256, 256), (2, 3, 352, 352), (1, 3, 200, 300), (1, 3, 33, 97)])
def test_output_shapes_any_size(shape):
    torch.manual_seed(0)
    model = UNetV2("pvt_v2_b2").eval()
    with torch.no_grad():
        out = model(torch.randn(*shape))
    b, _, h, w = shape
    assert out.logits.shape == (b, 1, h, w)
    assert [tuple(d.shape) for d in out.deep_logits] == [
        (b, 1, math.ceil(h / s), math.ceil(w / s)) for s in (2, 4, 8)
    ]
    assert out.attention is None


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_builds_four_levels(encoder):
    model = UNetV2(encoder, channels=8).eval()
    assert len(model.encoder.channels) == 4
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.logits.shape == (1, 1, 64, 96)


@pytest.mark.parametrize("encoder", ["pvt_v2_b0", "tf_efficientnet_lite0"])
def test_every_parameter_gets_a_gradient_from_deep_supervision(encoder):
    torch.manual_seed(0)
    model = UNetV2(encoder, channels=16).train()
    x = torch.randn(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    loss = deep_supervision_loss(model(x).all_logits, mask, (8, 4, 2, 1))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_eval_outputs_are_deterministic(tiny_model):
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        a, b = tiny_model(x).logits, tiny_model(x).logits
    assert torch.equal(a, b)


def test_attention_maps_in_unit_range_with_documented_shapes():
    model = UNetV2("pvt_v2_b0", channels=32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 200, 300), return_attention=True)
    assert [a.stride for a in out.attention] == [4, 8, 16, 32]
    for level, channels in zip(out.attention, model.encoder.channels):
        h, w = math.ceil(200 / level.stride), math.ceil(300 / level.stride)
        assert level.channel.shape == (2, channels)
        assert level.spatial.shape == (2, 1, h, w)
        assert level.sdi.shape == (2, 32, h, w)
        for t in (level.channel, level.spatial):
            assert t.min() >= 0 and t.max() <= 1


def test_attention_comes_from_the_same_pass():
    model = UNetV2("pvt_v2_b0", channels=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain, with_attention = model(x), model(x, return_attention=True)
    assert torch.equal(plain.logits, with_attention.logits)


def test_grayscale_input_is_accepted(tiny_model):
    with torch.no_grad():
        assert tiny_model(torch.rand(1, 1, 64, 64)).logits.shape == (1, 1, 64, 64)


@pytest.mark.parametrize(
    "x, words",
    [
        (torch.rand(64, 64), "4-D"),
        (torch.rand(1, 4, 64, 64), "channels"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
        (torch.rand(1, 3, 31, 64), "at least 32"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(tiny_model, x, words):
    with pytest.raises(ValueError, match=words):
        tiny_model(x)


def test_one_infinity_or_nan_among_finite_values_is_refused_and_huge_finite_values_are_not(tiny_model):
    for bad in (float("inf"), float("-inf"), float("nan")):
        x = torch.rand(1, 3, 64, 64)
        x[0, 1, 30, 40] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            tiny_model(x)
    with torch.no_grad():  # finite, though their sum overflows: checked value by value, and taken
        tiny_model(torch.full((1, 3, 64, 64), 3e38))


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ValueError, match="pvt_v2_b2"):
        UNetV2("resnet50")


def test_the_network_loads_no_weights_itself():
    # Weights come from the builder outside model/; asking the module for them says where to go.
    with pytest.raises(ValueError, match="build_unetv2"):
        UNetV2("tf_efficientnet_lite0", pretrained=True)
    assert UNetV2("tf_efficientnet_lite0", pretrained=False).encoder_weights == "random initialisation"


def test_the_lite_encoder_has_the_same_tensors_whatever_timm_does_with_its_head(monkeypatch):
    """timm before 1.0.31 kept EfficientNet's conv_head/bn2 after pruning (seen on a lent GPU machine with timm
    1.0.29: the bundled checkpoint then failed to load). The encoder drops them itself."""
    from timm.models.efficientnet import EfficientNet

    from napari_unetv2.model.encoders import TimmEncoder

    expected = set(TimmEncoder("tf_efficientnet_lite0").state_dict())
    prune = EfficientNet.prune_intermediate_layers

    def prune_like_older_timm(self, indices, prune_norm=False, prune_head=True, **kw):
        conv_head, bn2 = self.conv_head, self.bn2
        taken = prune(self, indices, prune_norm=prune_norm, prune_head=prune_head, **kw)
        self.conv_head, self.bn2 = conv_head, bn2  # what timm 1.0.29 left in place
        return taken

    monkeypatch.setattr(EfficientNet, "prune_intermediate_layers", prune_like_older_timm)
    older = TimmEncoder("tf_efficientnet_lite0")
    assert set(older.state_dict()) == expected
    assert not any(k.startswith(("net.conv_head", "net.bn2")) for k in older.state_dict())
