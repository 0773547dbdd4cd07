"""The paper's computation comparison on this machine: U-Net v2, U-Net and UNet++ on PVT-v2-b2.

    .venv/bin/python benchmarks/bench_compare.py [--sizes 256 352] [--rounds 9] [--threads 1] [--cuda-only]
        [--json benchmarks/results/compare.json]

Per network and input (1, 3, S, S): parameters, FLOPs (torch.utils.flop_counter, eager graph: the
fast path computes the same), peak memory of one forward pass, and latency of the eager float32 network
against the default path (what ``Predictor`` runs: ``Predictor(model=...).network``), measured
interleaved — eager, default, eager, default, ... in one process — so that a busy machine slows both
alike; medians of ``--rounds``. Wall time and the process's CPU time are both reported: on a shared
machine the CPU time is the steadier of the two. On CUDA (when present) the predictor's default is eager
float32 itself, so the second column there is its explicit float16 autocast option (``precision="float16"``).

Peak memory on the CPU: how far the resident set rises above its level before the first forward pass
(Linux: the peak is reset through /proc/self/clear_refs), each (network, size, path) in a fresh process.
On CUDA: torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NETWORKS = ("U-Net v2", "U-Net", "UNet++")

MEMORY_CASE = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[5]))
from benchmarks.bench_compare import build, default_path, status_kb
name, size, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = build(name)
net, prepare = default_path(model) if path == "default" else (model, lambda t: t)
x = prepare(torch.randn(1, 3, size, size))
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak resident set (VmHWM) to the current one
before = status_kb("VmRSS")
with torch.inference_mode():
    net(x)
print((status_kb("VmHWM") - before) / 1024)
"""


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(name: str):
    import torch

    from napari_unetv2.model import UNet, UNetPlusPlus, UNetV2

    torch.manual_seed(0)
    cls = {"U-Net v2": lambda: UNetV2("pvt_v2_b2", channels=32), "U-Net": lambda: UNet("pvt_v2_b2"),
           "UNet++": lambda: UNetPlusPlus("pvt_v2_b2")}[name]
    return cls().eval()


def default_path(model, device: str = "cpu"):
    """The network the predictor runs for ``model`` and how it prepares the input."""
    from napari_unetv2.inference import Predictor
    from napari_unetv2.inference.fast import as_channels_last

    predictor = Predictor(model=model, device=device)
    if predictor.fast:
        return predictor.network, as_channels_last
    return predictor.network, lambda t: t


def count_flops(model, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, size, size, device=next(model.parameters()).device))
    return counter.get_total_flops()


def cpu_peak_mb(name: str, size: int, path: str, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", MEMORY_CASE, str(REPO), name, str(size), path, str(threads)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def interleaved_latency(runs: dict, rounds: int, sync=lambda: None) -> dict:
    """{label: (median wall ms, median CPU ms)}, the callables run in turn, round after round."""
    import torch

    wall = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up (oneDNN picks and caches its kernels)
            fn()
            sync()
        for _ in range(rounds):
            for label, fn in runs.items():
                w, c = time.perf_counter(), time.process_time()
                fn()
                sync()
                wall[label].append((time.perf_counter() - w) * 1000)
                cpu[label].append((time.process_time() - c) * 1000)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in runs}


def cpu_rows(sizes: list[int], rounds: int, threads: int, memory: bool) -> list[dict]:
    import torch

    rows = []
    for name in NETWORKS:
        model = build(name)
        params = sum(p.numel() for p in model.parameters())
        fast, prepare = default_path(model)
        for size in sizes:
            x = torch.randn(1, 3, size, size)
            xf = prepare(x)
            lat = interleaved_latency({"eager": partial(model, x), "default": partial(fast, xf)}, rounds)
            with torch.inference_mode():
                diff = (model(x).logits - fast(xf).logits).abs().max().item()
            row = {"network": name, "device": "cpu", "size": size, "params_m": params / 1e6,
                   "gflops": count_flops(model, size) / 1e9,
                   "eager_ms": lat["eager"][0], "default_ms": lat["default"][0],
                   "eager_cpu_ms": lat["eager"][1], "default_cpu_ms": lat["default"][1],
                   "max_abs_logit_diff": diff}
            if memory:
                row["eager_peak_mb"] = cpu_peak_mb(name, size, "eager", threads)
                row["default_peak_mb"] = cpu_peak_mb(name, size, "default", threads)
            rows.append(row)
            print(f"  {name} {size}: eager {row['eager_ms']:.1f} ms, default {row['default_ms']:.1f} ms", file=sys.stderr)
    return rows


def autocast_fp16(model, x):
    """The predictor's float16 option on CUDA (its default there is float32)."""
    import torch

    with torch.autocast("cuda", dtype=torch.float16):
        return model(x)


def cuda_rows(sizes: list[int], rounds: int) -> list[dict]:
    import torch

    rows = []
    for name in NETWORKS:
        model = build(name).cuda()
        params = sum(p.numel() for p in model.parameters())
        for size in sizes:
            x = torch.randn(1, 3, size, size, device="cuda")
            runs = {"eager": partial(model, x), "default": partial(autocast_fp16, model, x)}
            lat = interleaved_latency(runs, rounds, torch.cuda.synchronize)
            peaks = {}
            for label, fn in runs.items():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                with torch.inference_mode():
                    fn()
                torch.cuda.synchronize()
                peaks[label] = (torch.cuda.max_memory_allocated() - base) / 2**20
            rows.append({"network": name, "device": torch.cuda.get_device_name(), "size": size, "params_m": params / 1e6,
                         "gflops": count_flops(model, size) / 1e9,
                         "eager_ms": lat["eager"][0], "default_ms": lat["default"][0],
                         "eager_peak_mb": peaks["eager"], "default_peak_mb": peaks["default"]})
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({len(os.sched_getaffinity(0))} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(rows: list[dict]) -> str:
    lines = ["| network | device | input | params (M) | GFLOPs | peak MB eager / default | eager ms | default ms | "
             "speed-up (wall) | speed-up (CPU time) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = f"{r['eager_peak_mb']:.0f} / {r['default_peak_mb']:.0f}" if "eager_peak_mb" in r else "-"
        cpu = f"{r['eager_cpu_ms'] / r['default_cpu_ms']:.2f}x" if "eager_cpu_ms" in r else "-"
        lines.append(f"| {r['network']} | {r['device']} | {r['size']}x{r['size']} | {r['params_m']:.2f} | {r['gflops']:.2f} | "
                     f"{peak} | {r['eager_ms']:.1f} | {r['default_ms']:.1f} | {r['eager_ms'] / r['default_ms']:.2f}x | {cpu} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 352])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-case peak-memory processes")
    parser.add_argument("--cuda-only", action="store_true", help="only the CUDA rows (scripts/gpu_run.sh)")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: benchmarks/results/compare.json (compare_cuda.json with --cuda-only)")
    args = parser.parse_args()
    if args.json is None:
        args.json = REPO / "benchmarks" / "results" / ("compare_cuda.json" if args.cuda_only else "compare.json")

    import torch

    torch.set_num_threads(args.threads)
    if args.cuda_only and not torch.cuda.is_available():
        print("no CUDA device here: nothing to benchmark")
        return 0
    rows = [] if args.cuda_only else cpu_rows(args.sizes, args.rounds, args.threads, not args.no_memory)
    if torch.cuda.is_available():
        rows += cuda_rows(args.sizes, args.rounds)
    machine = f"{cpu_name()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"
    print(f"machine: {machine}; batch 1; medians of {args.rounds} interleaved rounds\n")
    print(markdown(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "machine": machine,
                                     "command": " ".join(sys.argv), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
