"""Inference speed and peak memory on this machine: prints a table and writes JSON.

    .venv/bin/python benchmarks/bench_inference.py [--sizes 1024 4096] [--json out.json]

Each case runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASE = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from napari_unetv2.inference import Predictor
size, mode, tile = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
p = Predictor(device="cpu")
load_seconds = time.perf_counter() - t0
image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
start = time.perf_counter()
pred = p.predict(image, mode=mode, tile_size=tile)
seconds = time.perf_counter() - start
print(json.dumps({"size": size, "mode": mode, "tile": tile, "seconds": round(seconds, 2),
                  "load_seconds": round(load_seconds, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "model": p.description}))
"""


def run_case(size: int, mode: str, tile: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, str(size), mode, str(tile), str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        for mode in ("resize", "tile"):
            rows.append(run_case(size, mode, args.tile, args.threads))
    print(f"model: {rows[0]['model']}; CPU threads: {args.threads}")
    print(f"loading the model (Predictor construction, after imports): {min(r['load_seconds'] for r in rows):.2f} s "
          f"(best of {len(rows)})")
    print(f"{'image':>11} {'mode':>7} {'tile':>5} {'seconds':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['size']:>5}x{r['size']:<5} {r['mode']:>7} {r['tile'] if r['mode'] == 'tile' else '-':>5} "
              f"{r['seconds']:>8.2f} {r['peak_rss_mb']:>12}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"time": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
