"""The fast CPU path: an inference-only copy of a network, rewritten for the CPU.

Each rewrite is kept only because its logits match eager float32 within 1e-4 (``tests/test_fast_path.py``,
random and real inputs, the paper's PVT-v2-b2 network and the bundled EfficientNet-Lite0 one; on the bundled
model's saturated logits, |logit| > 50, no rewrite stays within 1e-4 and the bound is relative there:
``benchmarks/bench_fast_path.py`` measures each part):

- ``nn.Linear`` run by oneDNN with the bias fused (PyTorch's ``addmm`` first copies the broadcast bias
  into the output, a full extra pass over PVT-v2's wide MLP activations);
- PVT-v2's MLP: the depthwise 3x3 conv and the GELU in one oneDNN call (one pass less over the widest
  tensor of the network);
- weights in ``channels_last`` (the predictor feeds ``channels_last`` inputs): PVT-v2's token layout
  (B, N, C) viewed as an image *is* NHWC, so its depthwise convs stop reordering memory;
- BatchNorm (and timm's BatchNormAct2d activation) run in place over the conv output they follow: the same
  kernel on the same values, so bit-identical, without a fresh tensor per layer (on the bundled
  EfficientNet-Lite0 model the BN layers were a fifth of the forward, mostly page faults and cache misses
  on the large early feature maps).

Conv + BatchNorm folding (found by watching which conv's output feeds which BN, so timm's ``BatchNormAct2d``
folds too and keeps its activation) is available (``fold_bn=True``) but not the default, because it breaks
the 1e-4 rule: on the bundled EfficientNet-Lite0 model it moves logits by up to 1.1e-3 (1.7e-4 without it,
on the saturated background only) and by 4.5e-4 where |logit| <= 50 over the 150 PolypGen validation frames;
it would buy 0-14% there (three runs), and nothing measurable on the paper's PVT-v2-b2 network. Eager float32 itself is
5.2e-4 from the float64 logits on that model, and folding 6.9e-4; the default path and folding each change one
of the 42 M full-size mask pixels of those frames
(``benchmarks/bench_fast_path.py``, tables in ``benchmarks/results/fast_path_*.md``).

The model that training, saving and the model store see is never touched: everything happens on a deep
copy. Without oneDNN (``torch.backends.mkldnn``), only ``channels_last`` (and folding, if asked) applies.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

PROBE_SIDE = 64  # a small input is enough to see which layer feeds which


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def conv_bn_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, BN name) pairs where the BN's input is exactly the conv's output, seen in one forward pass.

    A conv or BN used more than once in a pass is left alone: folding assumes one producer and one consumer.
    """
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # the tensor is kept: a freed one's id could be reused
    calls: dict[str, int] = {}
    fed_by: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def record(mod, args, out, name=name):
                calls[name] = calls.get(name, 0) + 1
                outputs[id(out)] = (name, out)
            handles.append(module.register_forward_hook(record))
        elif isinstance(module, nn.BatchNorm2d):
            def look(mod, args, name=name):
                calls[name] = calls.get(name, 0) + 1
                source = outputs.get(id(args[0]))
                if source is not None and source[1] is args[0]:
                    fed_by[name] = source[0]
            handles.append(module.register_forward_pre_hook(look))
    try:
        with torch.no_grad():
            keep_alive = model(probe)  # noqa: F841 (outputs must live until the ids are compared)
    finally:
        for handle in handles:
            handle.remove()
    return [(conv, bn) for bn, conv in fed_by.items() if calls.get(bn) == 1 and calls.get(conv) == 1]


class _AfterNorm(nn.Module):
    """What is left of timm's BatchNormAct2d once its normalisation is folded into the conv before it."""

    def __init__(self, bn: nn.Module):
        super().__init__()
        self.drop = getattr(bn, "drop", nn.Identity())
        self.act = getattr(bn, "act", nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def fold_conv_bn(model: nn.Module, probe: torch.Tensor) -> int:
    """Fold every BatchNorm that directly follows a conv into that conv (eval mode); returns how many."""
    pairs = conv_bn_pairs(model, probe)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        # In float64, rounded once to float32: folding then adds no error beyond that rounding.
        dtype = conv.weight.dtype
        weight, bias = fuse_conv_bn_weights(
            conv.weight.double(), None if conv.bias is None else conv.bias.double(), bn.running_mean.double(),
            bn.running_var.double(), bn.eps, bn.weight.double(), bn.bias.double(),
        )
        conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
        conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        _set_submodule(model, bn_name, nn.Identity() if type(bn) is nn.BatchNorm2d else _AfterNorm(bn))
    return len(pairs)


class InPlaceNorm(nn.Module):
    """An eval BatchNorm (timm's BatchNormAct2d with its activation) that writes over the conv output it is fed.

    ``aten::native_batch_norm.out`` with ``out`` = its input runs the very kernel ``F.batch_norm`` runs, so the
    values are bit-identical; what goes is a fresh output tensor per BN (and the activation's), whose page
    faults and cache misses cost more than the arithmetic on the large early feature maps. Only for a BN whose
    input is a conv's output that nothing else reads (:func:`normalise_in_place` checks this on a probe).
    Training, or an input or BN parameter that needs its gradient, falls back to the BN module itself.
    """

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.bn = bn
        self.act = getattr(bn, "act", nn.Identity())
        self.drop = getattr(bn, "drop", nn.Identity())
        # eval BN leaves these empty (never written); one pair per module, so calls allocate nothing
        self.register_buffer("_save_mean", torch.empty(0), persistent=False)
        self.register_buffer("_save_invstd", torch.empty(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p is not None and p.requires_grad for p in (bn.weight, bn.bias)))
        if bn.training or bn.running_mean is None or needs_grad:
            return bn(x)
        torch.ops.aten.native_batch_norm.out(
            x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0, bn.eps,
            out=x, save_mean=self._save_mean, save_invstd=self._save_invstd,
        )
        return self._activate(self.drop(x))

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        """The activation, in place where it has an in-place form (x is our own tensor here); same values."""
        act = self.act
        if isinstance(act, nn.Hardtanh):  # ReLU6 included
            return F.hardtanh(x, act.min_val, act.max_val, inplace=True)
        if isinstance(act, nn.ReLU):
            return F.relu(x, inplace=True)
        if isinstance(act, nn.SiLU):
            return F.silu(x, inplace=True)
        return act(x)


def _output_tensors(out) -> list[torch.Tensor]:
    """Every tensor a network returned (U-Net v2's output: all heads' logits and the attention maps)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _output_tensors(item)]
    if isinstance(out, dict):
        return [t for item in out.values() for t in _output_tensors(item)]
    if dataclasses.is_dataclass(out):
        return [t for f in dataclasses.fields(out) for t in _output_tensors(getattr(out, f.name))]
    return []


def _probe_outputs(model: nn.Module, probe: torch.Tensor) -> list[torch.Tensor]:
    """Every output tensor for ``probe``, U-Net v2's attention maps included."""
    if "return_attention" in inspect.signature(model.forward).parameters:
        try:
            return _output_tensors(model(probe, return_attention=True))
        except ValueError:  # a network without attention maps (the U-Net and UNet++ baselines)
            pass
    return _output_tensors(model(probe))


def normalise_in_place(model: nn.Module, probe: torch.Tensor) -> int:
    """Make every BN that directly follows a conv an :class:`InPlaceNorm`; returns how many.

    The pair finder sees that a BN's input is a conv's output, not that nothing else reads that output (a
    residual branch could): the probe's outputs (every head and, for U-Net v2, the attention maps) must stay
    bit-identical, or every BN is put back.
    """
    pairs = conv_bn_pairs(model, probe)
    if not pairs:
        return 0
    with torch.no_grad():
        before = _probe_outputs(model, probe)
        originals = [(bn_name, model.get_submodule(bn_name)) for _, bn_name in pairs]
        for bn_name, bn in originals:
            _set_submodule(model, bn_name, InPlaceNorm(bn))
        after = _probe_outputs(model, probe)
    if before and len(before) == len(after) and all(torch.equal(a, b) for a, b in zip(before, after)):
        return len(pairs)
    for bn_name, bn in originals:
        _set_submodule(model, bn_name, bn)
    return 0


class OneDNNLinear(nn.Module):
    """nn.Linear with the bias added inside oneDNN's matmul (float32 CPU tensors; F.linear otherwise)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cpu and x.dtype == torch.float32 and x.dim() >= 2:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


class DepthwiseGeluMlp(nn.Module):
    """timm's PVT-v2 ``MlpWithDepthwiseConv`` (eval) with the depthwise conv and exact GELU fused."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.fc1, self.fc2, self.dwconv = mlp.fc1, mlp.fc2, mlp.dwconv

    @staticmethod
    def fits(mlp: nn.Module) -> bool:
        act, dw = getattr(mlp, "act", None), getattr(mlp, "dwconv", None)
        return (
            type(mlp).__name__ == "MlpWithDepthwiseConv"
            and isinstance(getattr(mlp, "relu", None), nn.Identity)  # no extra ReLU before the conv
            and isinstance(act, nn.GELU) and act.approximate == "none"
            and type(dw) is nn.Conv2d and dw.padding_mode == "zeros" and isinstance(dw.padding, tuple)
        )

    def forward(self, x: torch.Tensor, feat_size: list[int]) -> torch.Tensor:
        x = self.fc1(x)
        batch, tokens, channels = x.shape
        x = x.transpose(1, 2).view(batch, channels, feat_size[0], feat_size[1])  # NHWC memory, no copy
        dw = self.dwconv
        if x.is_cpu and x.dtype == torch.float32:
            x = torch.ops.mkldnn._convolution_pointwise(
                x, dw.weight, dw.bias, list(dw.padding), list(dw.stride), list(dw.dilation), dw.groups, "gelu", [], "none"
            )
        else:
            x = F.gelu(dw(x))
        return self.fc2(x.flatten(2).transpose(1, 2))  # dropout is the identity at inference


def use_onednn(model: nn.Module) -> int:
    """Swap Linear layers and PVT-v2 MLPs for their oneDNN forms; returns how many modules changed."""
    changed = 0
    for name, module in list(model.named_modules()):
        if DepthwiseGeluMlp.fits(module):
            _set_submodule(model, name, DepthwiseGeluMlp(module))
            changed += 1
    for name, module in list(model.named_modules()):
        if type(module) is nn.Linear:
            _set_submodule(model, name, OneDNNLinear(module))
            changed += 1
    return changed


def optimize_for_cpu(model: nn.Module, onednn: bool = True, fold_bn: bool = False, in_place: bool = True) -> nn.Module:
    """An inference-only copy of ``model`` for float32 CPU inference (see the module docstring).

    ``onednn``: oneDNN's fused Linear and PVT-v2 MLP; ``in_place``: BatchNorm over the conv output it follows
    (both bit-identical or within float32 rounding of eager); ``fold_bn``: Conv+BN folding (not within 1e-4
    of eager on a trained model, so not the predictor's default).

    The copy's parameters do not require grad and share no storage with ``model``. Call it with
    ``channels_last`` inputs for full speed (any layout gives the same result).
    """
    fast = copy.deepcopy(model).cpu().float().eval()
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if fold_bn:
        fold_conv_bn(fast, torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE))
    if in_place:
        generator = torch.Generator().manual_seed(0)
        normalise_in_place(fast, torch.randn(1, 3, PROBE_SIDE, PROBE_SIDE, generator=generator))
    if onednn and onednn_available():
        use_onednn(fast)
    return fast.to(memory_format=torch.channels_last)


def as_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
