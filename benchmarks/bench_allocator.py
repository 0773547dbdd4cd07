"""Forward-pass latency with glibc's default malloc and with the predictor's memory reuse, eager and default path.

    .venv/bin/python benchmarks/bench_allocator.py [--nets "U-Net v2" bundled] [--sizes 256 352] [--rounds 5]
        [--threads 2] [--json benchmarks/results/allocator.json]

``inference/allocator.py`` makes ``Predictor`` keep freed memory for reuse; the setting is process-wide, so an
interleaved comparison inside one process (``bench_compare.py``) cannot see it: there eager runs with it too.
Here every cell runs in a fresh process, and the four cells — {eager float32, the default path} x {glibc's
default malloc (``NAPARI_UNETV2_MALLOC=default``), reuse (the predictor's default)} — alternate round after
round. Each process builds its network through ``Predictor`` as users do (``Predictor(model=...)`` for the
paper's network with random weights, ``Predictor()`` for the bundled model; ``fast=False`` for eager), runs
two warm-up passes, then times ``--calls`` forward passes at batch 1 (median) and counts minor page faults.
"Before" is eager with glibc's default malloc: what this project ran before it had a fast path.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASE = r"""
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
net_name, side, path, threads, calls = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
from napari_unetv2.inference import Predictor
from napari_unetv2.inference.fast import as_channels_last
fast = path == "default path"
if net_name == "bundled":
    predictor = Predictor(device="cpu", fast=fast)
else:
    from benchmarks.bench_compare import build
    predictor = Predictor(model=build(net_name), device="cpu", fast=fast)
x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
x = as_channels_last(x) if fast else x
times = []
with torch.inference_mode():
    predictor.network(x)
    predictor.network(x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        start = time.perf_counter()
        predictor.network(x)
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"ms": 1e3 * statistics.median(times), "faults_per_pass": faults / calls,
                  "malloc": predictor.malloc_state, "model": predictor.description}))
"""

PATHS = ("eager", "default path")
MALLOCS = ("glibc default", "reuse")


def run_cell(net: str, side: int, path: str, malloc: str, threads: int, calls: int) -> dict:
    env = dict(os.environ)
    env.pop("NAPARI_UNETV2_MALLOC", None)
    if malloc == "glibc default":
        env["NAPARI_UNETV2_MALLOC"] = "default"
    out = subprocess.run([sys.executable, "-c", CASE, str(REPO), net, str(side), path, str(threads), str(calls)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["U-Net v2", "bundled"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 352], help="sides for the paper's network")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "allocator.json")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks.bench_compare import cpu_name
    from napari_unetv2.checkpoints.checkpoint import read_config, resolve_checkpoint

    bundled = resolve_checkpoint(None)
    if bundled is None and "bundled" in args.nets:
        parser.error("no bundled model in this install: leave 'bundled' out of --nets")
    bundled_side = read_config(bundled).input_size[0] if bundled is not None else 0
    cases = [(net, side) for net in args.nets for side in ([bundled_side] if net == "bundled" else args.sizes)]
    cells = [(path, malloc) for path in PATHS for malloc in MALLOCS]
    results: dict = {}
    for round_index in range(args.rounds):
        for net, side in cases:
            order = cells if round_index % 2 == 0 else cells[::-1]
            for path, malloc in order:
                r = run_cell(net, side, path, malloc, args.threads, args.calls)
                results.setdefault((net, side, path, malloc), []).append(r)
                print(f"round {round_index + 1} {net} {side} {path} / {malloc}: {r['ms']:.1f} ms, "
                      f"{r['faults_per_pass']:.0f} faults", file=sys.stderr, flush=True)
    rows = []
    for net, side in cases:
        before = statistics.median(r["ms"] for r in results[(net, side, "eager", "glibc default")])
        for path, malloc in cells:
            runs = results[(net, side, path, malloc)]
            ms = statistics.median(r["ms"] for r in runs)
            rows.append({"net": net, "side": side, "path": path, "malloc": malloc, "ms": ms,
                         "ms_runs": [r["ms"] for r in runs], "speedup_vs_before": before / ms,
                         "faults_per_pass": statistics.median(r["faults_per_pass"] for r in runs),
                         "model": runs[0]["model"], "malloc_state": runs[0]["malloc"]})
    lines = [f"{cpu_name()}, {args.threads} torch threads; "
             f"batch 1; medians of {args.rounds} rounds, each cell in a fresh process ({args.calls} passes each)", "",
             "| network | input | path | malloc | ms per pass | speed-up vs eager + glibc default | page faults per pass |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['net']} | {r['side']}x{r['side']} | {r['path']} | {r['malloc']} | {r['ms']:.1f} | "
                     f"{r['speedup_vs_before']:.2f}x | {r['faults_per_pass']:.0f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(sys.argv)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": command, "rows": rows},
                                    indent=1) + "\n")
    args.json.with_suffix(".md").write_text(f"`{command}` ({time.strftime('%Y-%m-%d %H:%M')})\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
