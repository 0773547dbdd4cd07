"""The fast CPU path equals eager float32 (within 1e-4 on the logits), leaves the model alone, and the
predictor's thread setting is restored after each prediction."""
import threading

import numpy as np
import pytest
import torch
from torch import nn

from napari_unetv2._sample_data import load_sample
from napari_unetv2.inference import Predictor
from napari_unetv2.inference.fast import (
    DepthwiseGeluMlp,
    InPlaceNorm,
    OneDNNLinear,
    as_channels_last,
    normalise_in_place,
    onednn_available,
    optimize_for_cpu,
)
from napari_unetv2.inference.preprocess import normalize, to_unit_range
from napari_unetv2.inference.threads import cpu_threads, default_cpu_threads
from napari_unetv2.model import UNetV2

TOLERANCE = 1e-4  # max abs logit difference allowed for any fast path, on every logit of every head.
# The one exception is the bundled model's saturated background (benchmarks/bench_fast_path.py, README):
# its logits reach about -250, where float32's spacing is 1.5e-5; there no rewrite stays within 1e-4 of
# eager (the default, channels_last: 1.7e-4; with Conv+BN folding: 1.1e-3 over the 150 PolypGen validation
# frames, bench_fast_path.py --net bundled --every 1; eager at 2 threads against 1 thread: 1.1e-4), so beyond
# |logit| 50 (sigmoid(-50) = 2e-22) its difference is bounded relative to the logit instead.
SATURATED = 50.0
RELATIVE_TOLERANCE = 1e-5


def trained_looking(model: nn.Module) -> nn.Module:
    """Random but non-trivial BatchNorm statistics, so that folding them is really exercised."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=[("pvt_v2_b2", False), ("tf_efficientnet_lite0", False),
                                        ("pvt_v2_b2", True), ("tf_efficientnet_lite0", True)],
                ids=["pvt-default", "lite0-default", "pvt-folded", "lite0-folded"])
def eager_and_fast(request):
    """The default fast path, and the one with Conv+BN folding (an option, not the default)."""
    encoder, fold_bn = request.param
    torch.manual_seed(0)
    model = trained_looking(UNetV2(encoder, channels=32))
    return model, optimize_for_cpu(model, fold_bn=fold_bn)


def real_input(image: np.ndarray, side_h: int, side_w: int, normalization: dict) -> torch.Tensor:
    image = to_unit_range(image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(side_h, side_w), mode="bilinear", antialias=True)
    return normalize(x, normalization)


def logit_differences(eager: nn.Module, fast: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max |difference| where |logit| <= SATURATED, max |difference| / |logit| beyond), over every head."""
    with torch.inference_mode():
        a, b = eager(x), fast(as_channels_last(x))
    inside, beyond = 0.0, 0.0
    for p, q in zip(a.all_logits, b.all_logits):
        diff, saturated = (p - q).abs(), p.abs() > SATURATED
        inside = max(inside, diff[~saturated].max().item() if (~saturated).any() else 0.0)
        beyond = max(beyond, (diff[saturated] / p.abs()[saturated]).max().item() if saturated.any() else 0.0)
    return inside, beyond


def assert_logits_match(eager: nn.Module, fast: nn.Module, x: torch.Tensor) -> None:
    """Every logit of every head within TOLERANCE: no exemption."""
    with torch.inference_mode():
        a, b = eager(x), fast(as_channels_last(x))
    worst = max((p - q).abs().max().item() for p, q in zip(a.all_logits, b.all_logits))
    assert worst < TOLERANCE, worst


def assert_saturated_logits_match(eager: nn.Module, fast: nn.Module, x: torch.Tensor) -> None:
    """The bundled model's rule: TOLERANCE up to |logit| 50, RELATIVE_TOLERANCE beyond (see above)."""
    inside, beyond = logit_differences(eager, fast, x)
    assert inside < TOLERANCE and beyond < RELATIVE_TOLERANCE, (inside, beyond)


def test_fast_path_matches_eager_on_random_inputs(eager_and_fast):
    eager, fast = eager_and_fast
    x = torch.randn(2, 3, 96, 136, generator=torch.Generator().manual_seed(0))  # batch 2, padded inside
    assert_logits_match(eager, fast, x)


def test_fast_path_matches_eager_on_a_real_image(eager_and_fast):
    eager, fast = eager_and_fast
    x = real_input(load_sample("polyp")[0], 160, 192, eager.normalization)
    assert_logits_match(eager, fast, x)


def test_fast_path_is_really_rewritten(eager_and_fast, request):
    eager, fast = eager_and_fast
    folded = not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # every BN followed a conv
    assert any(isinstance(m, nn.BatchNorm2d) for m in eager.modules())
    assert folded == request.node.callspec.id.endswith("folded")
    if onednn_available():
        assert not any(type(m) is nn.Linear for m in fast.modules())
        if eager.encoder_name.startswith("pvt"):
            assert sum(isinstance(m, OneDNNLinear) for m in fast.modules()) > 0
            assert sum(isinstance(m, DepthwiseGeluMlp) for m in fast.modules()) == 16  # 3 + 4 + 6 + 3 blocks


@pytest.mark.parametrize("encoder", ["tf_efficientnet_lite0", "pvt_v2_b2"])
def test_in_place_normalisation_is_bit_identical(encoder):
    """In-place BN is not an approximation: the same kernel on the same values, in every grad mode."""
    torch.manual_seed(0)
    model = trained_looking(UNetV2(encoder, channels=16))
    plain, in_place = optimize_for_cpu(model, in_place=False), optimize_for_cpu(model)
    assert not any(isinstance(m, InPlaceNorm) for m in plain.modules())
    assert sum(isinstance(m, InPlaceNorm) for m in in_place.modules()) >= 4  # at least the decoder's BNs
    real = real_input(load_sample("polyp")[0], 96, 128, model.normalization)
    generator = torch.Generator().manual_seed(0)
    # batch 2; and 32x32, where the deepest maps are 1x1 and the layouts of conv output and eager BN could differ
    inputs = [real, torch.cat([real, real.flip(-1)]), torch.randn(1, 3, 32, 32, generator=generator)]
    for x in map(as_channels_last, inputs):
        for mode in (torch.inference_mode, torch.no_grad, torch.enable_grad):  # enable_grad: in place all the same
            with mode():
                a, b = plain(x, return_attention=True), in_place(x, return_attention=True)
            assert all(torch.equal(p, q) for p, q in zip(a.all_logits, b.all_logits)), (mode, x.shape)
            assert all(torch.equal(p.spatial, q.spatial) for p, q in zip(a.attention, b.attention)), (mode, x.shape)
    x = as_channels_last(real)
    needs_grad = x.clone().requires_grad_(True)  # autograd cannot write over a tensor it needs: the BN module runs
    a, b = plain(needs_grad), in_place(needs_grad)
    assert all(torch.equal(p, q) for p, q in zip(a.all_logits, b.all_logits))


class ConvOutputReadTwice(nn.Module):
    """A conv whose output feeds its BN and, past it, a residual sum: writing over it would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_in_place_normalisation_is_refused_where_the_conv_output_is_read_elsewhere():
    model = trained_looking(ConvOutputReadTwice())
    probe = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    expected = model(probe)
    assert normalise_in_place(model, probe) == 0
    assert isinstance(model.bn, nn.BatchNorm2d) and torch.equal(model(probe), expected)


def test_the_model_itself_is_untouched():
    torch.manual_seed(0)
    model = trained_looking(UNetV2("tf_efficientnet_lite0", channels=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_cpu(model, fold_bn=True)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    model_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert not model_storages & {p.untyped_storage().data_ptr() for p in fast.parameters()}


def test_bundled_predictor_fast_equals_eager_on_real_images():
    fast, eager = Predictor(device="cpu"), Predictor(device="cpu", fast=False)
    assert fast.network is not fast.model and eager.network is eager.model
    for key in ("polyp", "kvasir", "skin"):
        image = load_sample(key)[0]
        x = real_input(image, *fast.config.input_size, fast.config.normalization)
        assert_saturated_logits_match(eager.model, fast.network, x)
        a, b = fast.predict(image, return_attention=True), eager.predict(image, return_attention=True)
        assert np.abs(a.probability - b.probability).max() < TOLERANCE / 4, key  # sigmoid' <= 1/4
        for name in a.attention:
            assert np.abs(a.attention[name] - b.attention[name]).max() < TOLERANCE, (key, name)


def test_thread_count_is_set_for_the_call_and_restored(small_checkpoint):
    image = load_sample("polyp")[0][:96, :96]
    predictor = Predictor(small_checkpoint, device="cpu", threads=2)
    seen = []
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        predictor.predict(image, mode="tile", tile_size=64, progress=lambda done, total: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {2}
        assert torch.get_num_threads() == 1

        def worker(out: list) -> None:  # as in napari: the prediction runs in a worker thread
            before = torch.get_num_threads()
            predictor.predict(image)
            out.append((before, torch.get_num_threads()))

        results: list = []
        thread = threading.Thread(target=worker, args=(results,))
        thread.start()
        thread.join()
        assert results and results[0][0] == results[0][1]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_default_threads_leave_the_gui_a_core(monkeypatch):
    monkeypatch.setattr("napari_unetv2.inference.threads.usable_cores", lambda: 4)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert default_cpu_threads() == 4
        results: list = []
        thread = threading.Thread(target=lambda: results.append(default_cpu_threads()))
        thread.start()
        thread.join()
        assert results == [3]
        torch.set_num_threads(2)  # never more than the process already allows
        assert default_cpu_threads() == 2
        with pytest.raises(ValueError, match="at least 1"):
            with cpu_threads(0):
                pass
    finally:
        torch.set_num_threads(previous)


def test_no_attention_work_unless_asked(small_checkpoint, monkeypatch):
    """Attention maps are resized to the image only when asked (in tile mode: once per tile and level)."""
    import torch.nn.functional as F

    resized_maps = []
    interpolate = F.interpolate

    def spy(x, *args, size=None, **kwargs):
        if size is not None and x.shape[1] == 1:
            resized_maps.append(tuple(size))
        return interpolate(x, *args, size=size, **kwargs)

    monkeypatch.setattr(F, "interpolate", spy)
    predictor = Predictor(small_checkpoint, device="cpu")
    image = load_sample("polyp")[0][:160, :160]
    plain = predictor.predict(image, mode="tile", tile_size=96)
    assert plain.attention is None and resized_maps == []
    with_maps = predictor.predict(image, mode="tile", tile_size=96, return_attention=True)
    assert len(resized_maps) == 4 * predictor.count_steps(image.shape, False, "tile", 96, 0.25)
    assert np.array_equal(plain.probability, with_maps.probability)
