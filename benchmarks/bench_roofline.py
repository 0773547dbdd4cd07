"""How close the default CPU path already is to what float32 arithmetic allows on this machine (issue 13).

    .venv/bin/python benchmarks/bench_roofline.py [--net pvt_v2_b2|bundled] [--size 256] [--threads 2]
        [--rounds 9] [--json benchmarks/results/roofline_<net>_<size>.json]

Prints a markdown table and writes JSON:

- the network's float32 work by kind (``torch.utils.flop_counter`` on eager: matrix products of the Linear
  layers, convolutions);
- this machine's matrix-product rate: a 2048x2048x2048 float32 ``matmul`` at ``--threads`` threads, the
  best of ``--rounds`` (the most the CPU's vector units give PyTorch's GEMM here);
- the default path's time (``Predictor``'s CPU network, ``inference/fast.py``, fed ``channels_last`` as
  the predictor feeds it) split by kind of operator with ``torch.profiler`` (self time per forward pass);
- eager and default wall time per forward, interleaved, medians;
- the floor: the Linear layers' FLOPs at the matmul rate, and what the 2.0x goal leaves for everything else.

The default path is the one users get (``Predictor(..., fast=True)``, the default); nothing here is tuned.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_fast_path import trained_looking  # noqa: E402

from napari_unetv2.inference import Predictor  # noqa: E402
from napari_unetv2.inference.fast import as_channels_last  # noqa: E402
from napari_unetv2.model import UNetV2  # noqa: E402

GEMM_SIDE = 2048

# Profiler operator names by kind (self time is attributed to the innermost operator).
KINDS = {
    "matrix products (Linear)": ("_linear_pointwise", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"),
    "convolutions": ("convolution", "conv2d", "_slow_conv2d"),
    "attention (SDPA)": ("scaled_dot_product", "_flash_attention"),
    "normalisation": ("layer_norm", "batch_norm"),
    "resizing": ("upsample", "interpolate", "adaptive_avg_pool"),
}


def kind_of(name: str) -> str:
    for kind, needles in KINDS.items():
        if any(needle in name for needle in needles):
            return kind
    return "everything else (adds, copies, views, activations)"


def matmul_rate(rounds: int) -> float:
    """GFLOP/s of the best of ``rounds`` float32 GEMMs of side GEMM_SIDE."""
    a, b = torch.randn(GEMM_SIDE, GEMM_SIDE), torch.randn(GEMM_SIDE, GEMM_SIDE)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_SIDE**3 / best / 1e9


def flops_by_kind(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    totals: dict[str, float] = {}
    for op, flops in counter.get_flop_counts()["Global"].items():
        name = str(op)
        kind = "convolutions" if "convolution" in name else "matrix products (Linear)" if "mm" in name else name
        totals[kind] = totals.get(kind, 0.0) + flops / 1e9
    return totals


def profile_by_kind(network: torch.nn.Module, x: torch.Tensor, passes: int) -> dict[str, float]:
    """Self CPU milliseconds per forward pass, by kind of operator."""
    with torch.inference_mode():
        for _ in range(3):
            network(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(passes):
                network(x)
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        kind = kind_of(event.key)
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total / 1e3 / passes
    return totals


def interleaved_ms(networks: dict[str, tuple[torch.nn.Module, torch.Tensor]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in networks}
    with torch.inference_mode():
        for net, x in networks.values():
            net(x)
        for _ in range(rounds):
            for name, (net, x) in networks.items():
                start = time.perf_counter()
                net(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=["pvt_v2_b2", "bundled"], default="pvt_v2_b2")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.net == "bundled":
        predictor = Predictor(device="cpu")
    else:
        torch.manual_seed(0)
        predictor = Predictor(model=trained_looking(UNetV2("pvt_v2_b2", channels=32)), device="cpu")
    eager, default = predictor.model.eval(), predictor.network
    x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))

    gflops = flops_by_kind(eager, x)
    rate = matmul_rate(args.rounds)
    split = profile_by_kind(default, as_channels_last(x), args.rounds)
    wall = interleaved_ms({"eager": (eager, x), "default": (default, as_channels_last(x))}, args.rounds)

    linear_gflop = gflops.get("matrix products (Linear)", 0.0)
    linear_floor_ms = linear_gflop / rate * 1e3
    goal_ms = wall["eager"] / 2.0
    linear_ms = split.get("matrix products (Linear)", 0.0)
    result = {
        "net": args.net, "input": [args.size, args.size], "threads": args.threads, "rounds": args.rounds,
        "torch": torch.__version__, "gflop_by_kind": gflops, "matmul_gflops_per_s": rate,
        "default_path_ms_by_kind": split, "wall_ms": wall, "speed_up": wall["eager"] / wall["default"],
        "linear_floor_ms": linear_floor_ms, "goal_ms_at_2x": goal_ms,
        "left_for_the_rest_at_2x_ms": goal_ms - linear_floor_ms,
        "rest_now_ms": sum(split.values()) - linear_ms,
    }

    print(f"{args.net} at {args.size}x{args.size}, batch 1, {args.threads} torch threads, torch {torch.__version__}\n")
    print(f"float32 matmul rate ({GEMM_SIDE}^3, best of {args.rounds}): **{rate:.0f} GFLOP/s**\n")
    print("| kind | GFLOP (eager) | default path ms per pass (profiler, self) | GFLOP/s there |")
    print("|---|---|---|---|")
    for kind in sorted(split, key=split.get, reverse=True):
        work = gflops.get(kind)
        per_s = f"{work / split[kind] * 1e3:.0f}" if work and split[kind] else "-"
        print(f"| {kind} | {'-' if work is None else f'{work:.2f}'} | {split[kind]:.1f} | {per_s} |")
    print(f"| all | {sum(gflops.values()):.2f} | {sum(split.values()):.1f} | |")
    print()
    print("| | ms |")
    print("|---|---|")
    print(f"| eager, wall (median of {args.rounds}, interleaved) | {wall['eager']:.1f} |")
    print(f"| default path, wall | {wall['default']:.1f} ({result['speed_up']:.2f}x eager) |")
    print(f"| the 2.0x goal | {goal_ms:.1f} |")
    print(f"| Linear layers at the matmul rate (floor) | {linear_floor_ms:.1f} |")
    print(f"| left for everything else at 2.0x | {result['left_for_the_rest_at_2x_ms']:.1f} |")
    print(f"| everything else in the default path now (profiler) | {result['rest_now_ms']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
