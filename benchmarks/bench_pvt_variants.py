"""Rewrites of the paper's network tried against the default fast path for issue 13's 2.0x at 256x256.

    .venv/bin/python benchmarks/bench_pvt_variants.py [--size 256] [--rounds 11] [--threads 2]
        [--json benchmarks/results/pvt_variants.json]

Each configuration is the default fast path (``inference/fast.py``) with one change, none of them a product path:

- Linear and conv weights prepacked for oneDNN once (``mkldnn._reorder_linear_weight``,
  ``mkldnn._reorder_convolution_weight``), instead of oneDNN taking the plain weights on every call;
- the Linear layers through MKL's prepacked sgemm (``mkl._mkl_linear``: what inductor's freezing uses for float32);
- both: the Linear layers through MKL, the convs prepacked for oneDNN;
- PVT-v2's MLP at the first stage run in bands of 16 rows (fc1, depthwise conv + GELU and fc2 per band, with a
  one-row halo), so that its 8 MB hidden tensor stays in the core's cache.

The paper's network with random weights and non-trivial BatchNorm statistics (as ``bench_fast_path.py``), batch 1,
``channels_last`` input, configurations alternating round after round in one process with this project's memory
reuse on (medians of 5 passes per round, then of the rounds). Differences are max abs logit differences from eager
float32 over every head on two random inputs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_fast_path import trained_looking  # noqa: E402

from napari_unetv2.inference import fast  # noqa: E402
from napari_unetv2.inference.allocator import reuse_freed_memory  # noqa: E402
from napari_unetv2.model import UNetV2  # noqa: E402


class PrepackedLinear(nn.Module):
    def __init__(self, linear: nn.Module, rows: int):
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


class PrepackedConv(nn.Module):
    def __init__(self, conv: nn.Conv2d, input_size: list[int]):
        super().__init__()
        self.geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(conv.weight.detach(), *self.geometry, input_size)
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, *self.geometry, "none", [], "")


class MklLinear(nn.Module):
    def __init__(self, linear: nn.Module, rows: int):
        super().__init__()
        self.plain, self.bias, self.rows = linear.weight.detach(), linear.bias, rows
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(self.plain, rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkl._mkl_linear(x, self.packed, self.plain, self.bias, self.rows)


class BandedMlp(nn.Module):
    """fast.DepthwiseGeluMlp over bands of ``rows`` rows (each with a one-row halo for the 3x3 depthwise conv)."""

    def __init__(self, mlp: fast.DepthwiseGeluMlp, rows: int):
        super().__init__()
        self.mlp, self.rows = mlp, rows

    def forward(self, x: torch.Tensor, feat_size: list[int]) -> torch.Tensor:
        mlp, (height, width) = self.mlp, feat_size
        if height <= self.rows:
            return mlp(x, feat_size)
        batch, _, channels = x.shape
        dw = mlp.dwconv
        hidden = dw.weight.shape[0]
        grid = x.view(batch, height, width, channels)
        out = x.new_empty(batch, height, width, mlp.fc2.weight.shape[0])
        for top in range(0, height, self.rows):
            bottom = min(top + self.rows, height)
            first, last = max(top - 1, 0), min(bottom + 1, height)
            h = mlp.fc1(grid[:, first:last].reshape(batch, (last - first) * width, channels))
            h = h.transpose(1, 2).view(batch, hidden, last - first, width)
            h = torch.ops.mkldnn._convolution_pointwise(h, dw.weight, dw.bias, list(dw.padding), list(dw.stride),
                                                        list(dw.dilation), dw.groups, "gelu", [], "none")
            h = h[:, :, top - first: top - first + bottom - top]
            out[:, top:bottom] = mlp.fc2(h.flatten(2).transpose(1, 2)).view(batch, bottom - top, width, -1)
        return out.view(batch, height * width, -1)


def input_shapes(net: nn.Module, kinds: tuple, x: torch.Tensor) -> dict[str, tuple]:
    seen: dict[str, tuple] = {}

    def record(module, args, name):
        seen.setdefault(name, tuple(args[0].shape))  # returns None: the input is left as it is

    handles = [m.register_forward_pre_hook(lambda m, a, n=n: record(m, a, n))
               for n, m in net.named_modules() if isinstance(m, kinds)]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return seen


def rows_of(shape: tuple) -> int:
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows


def with_linears(model: nn.Module, x: torch.Tensor, make) -> nn.Module:
    net = fast.optimize_for_cpu(model)
    for name, shape in input_shapes(net, (fast.OneDNNLinear,), x).items():
        fast._set_submodule(net, name, make(net.get_submodule(name), rows_of(shape)))
    return net


def with_prepacked(model: nn.Module, x: torch.Tensor) -> nn.Module:
    net = with_linears(model, x, PrepackedLinear)
    for name, shape in input_shapes(net, (nn.Conv2d,), x).items():
        fast._set_submodule(net, name, PrepackedConv(net.get_submodule(name), list(shape)))
    return net


def with_mkl_and_prepacked_convs(model: nn.Module, x: torch.Tensor) -> nn.Module:
    net = with_linears(model, x, MklLinear)
    for name, shape in input_shapes(net, (nn.Conv2d,), x).items():
        fast._set_submodule(net, name, PrepackedConv(net.get_submodule(name), list(shape)))
    return net


def with_bands(model: nn.Module, rows: int) -> nn.Module:
    net = fast.optimize_for_cpu(model)
    for name, module in list(net.named_modules()):
        if isinstance(module, fast.DepthwiseGeluMlp) and ".stages.0." in name:
            fast._set_submodule(net, name, BandedMlp(module, rows))
    return net


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "pvt_variants.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    torch.manual_seed(0)
    model = trained_looking(UNetV2("pvt_v2_b2", channels=32))
    x = fast.as_channels_last(torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)))
    configs = {
        "eager": model,
        "default fast path": fast.optimize_for_cpu(model),
        "+ oneDNN weights prepacked (Linear and conv)": with_prepacked(model, x),
        "+ Linear through MKL's prepacked sgemm": with_linears(model, x, MklLinear),
        "+ Linear through MKL, convs prepacked for oneDNN": with_mkl_and_prepacked_convs(model, x),
        "+ first stage's MLP in 16-row bands": with_bands(model, 16),
    }
    generator = torch.Generator().manual_seed(1)
    checks = [torch.randn(1, 3, args.size, args.size, generator=generator) for _ in range(2)]
    times: dict[str, list[float]] = {name: [] for name in configs}
    with torch.inference_mode():
        reference = [model(c).all_logits for c in checks]
        diffs = {name: max(max((a - b).abs().max().item() for a, b in zip(net(c if net is model else fast.as_channels_last(c))
                                                                              .all_logits, ref))
                           for c, ref in zip(checks, reference)) for name, net in configs.items()}
        for net in configs.values():
            net(x.contiguous() if net is model else x)
        for _ in range(args.rounds):
            for name, net in configs.items():
                xi = x.contiguous() if net is model else x
                passes = []
                for _ in range(5):
                    start = time.perf_counter()
                    net(xi)
                    passes.append(time.perf_counter() - start)
                times[name].append(statistics.median(passes) * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    default = medians["default fast path"]
    lines = [f"U-Net v2 (PVT-v2-b2, random weights) at {args.size}x{args.size}, batch 1, {args.threads} torch thread(s); "
             f"medians of {args.rounds} alternating rounds", "",
             "| configuration | max abs logit diff vs eager | ms per pass | vs eager | vs the default fast path |",
             "|---|---|---|---|---|"]
    for name, ms in medians.items():
        lines.append(f"| {name} | {diffs[name]:.2e} | {ms:.1f} | {medians['eager'] / ms:.2f}x | {default / ms:.2f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                                     "size": args.size, "threads": args.threads, "rounds": args.rounds,
                                     "rows": [{"config": n, "max_abs_logit_diff": diffs[n], "ms": medians[n],
                                               "ms_rounds": times[n]} for n in configs]}, indent=1) + "\n")
    args.json.with_suffix(".md").write_text(f"`{' '.join(sys.argv)}` ({time.strftime('%Y-%m-%d %H:%M')})\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
