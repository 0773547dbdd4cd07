"""Predictor.predict speed and peak memory, this checkout against a baseline commit, in one run.

    .venv/bin/python benchmarks/bench_inference.py --baseline aa6c2b4 [--rounds 3] [--threads N]
        [--json benchmarks/results/inference.json]

Exactly the path users take: ``Predictor(device="cpu")`` with its defaults (the bundled model), then
``predict(image, mode=...)`` as the widget and ``unetv2 predict`` call it, on random RGB uint8 images.
Each case runs in a fresh process (its peak resident memory, ru_maxrss, is its own and includes ~1 GB of
torch/timm imports); before and after alternate, case by case, for ``--rounds`` rounds, and the table
gives medians. Resize-mode cases time the median of 9 calls after a warm-up call; tile-mode cases one
call. Without ``--baseline`` only this checkout is measured. ``--checkpoint FILE`` runs the same model in
both trees (each tree's own loader), so that the code is compared alone when the bundled model changed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import REPO, run_in_tree, trees  # noqa: E402

CASE = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
if sys.argv[5] != "default":
    torch.set_num_threads(int(sys.argv[5]))
from napari_unetv2.inference import Predictor
height, width, mode, tile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
checkpoint = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None  # None: this tree's bundled model
t0 = time.perf_counter()
p = Predictor(checkpoint, device="cpu")
load_seconds = time.perf_counter() - t0
image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
calls = 9 if mode == "resize" else 1
if mode == "resize":
    p.predict(image, mode=mode)
times = []
for _ in range(calls):
    start = time.perf_counter()
    p.predict(image, mode=mode, tile_size=tile)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "load_seconds": load_seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads(), "model": p.description}))
"""

CASES = [  # (height, width, mode)
    (1048, 1232, "resize"),
    (512, 512, "resize"),
    (1024, 1024, "tile"),
    (2048, 2048, "tile"),
    (4096, 4096, "tile"),
]


def run_case(size: int, mode: str, tile: int, threads: int | str = "default", tree: Path = REPO) -> dict:
    """One case (a size x size image) in a fresh process of ``tree``: seconds, peak_rss_mb, ..."""
    out = run_in_tree(tree, CASE, str(size), str(size), mode, str(tile), str(threads), "")
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="git ref to compare against (e.g. the commit before a change)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", default="default", help="torch threads in each case (default: torch's own)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "inference.json")
    parser.add_argument("--only", choices=["all", "resize", "tile"], default="all",
                        help="which cases (resize: the per-frame cost of the widget's and the CLI's default mode)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="one checkpoint file for both trees (default: each tree's own bundled model), to "
                             "compare the code alone when the bundled model changed in between")
    args = parser.parse_args()
    cases = [case for case in CASES if args.only in ("all", case[2])]
    runs = trees(args.baseline)
    results: dict = {}
    for round_index in range(args.rounds):
        for height, width, mode in cases:
            order = list(runs) if round_index % 2 == 0 else list(reversed(runs))  # alternate who goes first
            for label in order:
                out = run_in_tree(runs[label], CASE, str(height), str(width), mode, str(args.tile), args.threads,
                                  str(args.checkpoint.resolve()) if args.checkpoint else "")
                row = json.loads(out.strip().splitlines()[-1])  # run_case, for a non-square image
                results.setdefault((height, width, mode), {}).setdefault(label, []).append(row)
                print(f"round {round_index + 1} {height}x{width} {mode} {label}: {row['seconds']:.3f} s", file=sys.stderr)

    rows = []
    for (height, width, mode), by_label in results.items():
        row = {"image": f"{width}x{height}", "mode": mode if mode == "resize" else f"tile {args.tile}"}
        for label, samples in by_label.items():
            row[f"{label}_seconds"] = statistics.median(s["seconds"] for s in samples)
            row[f"{label}_peak_rss_mb"] = max(s["peak_rss_mb"] for s in samples)
            row[f"{label}_threads"] = samples[0]["threads"]
        if "before_seconds" in row:
            row["speedup"] = row["before_seconds"] / row["after_seconds"]
        rows.append(row)
    model = next(iter(results.values()))["after"][0]["model"]
    print(f"model: {model}; torch threads: {rows[0]['after_threads']}; medians of {args.rounds} alternating rounds "
          f"(baseline {args.baseline or '-'}); the machine was shared with other work\n")
    if args.baseline:
        print("| image | mode | before s | after s | speed-up | before peak RSS MB | after peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['image']} | {r['mode']} | {r['before_seconds']:.3f} | {r['after_seconds']:.3f} | {r['speedup']:.2f}x | "
                  f"{r['before_peak_rss_mb']:.0f} | {r['after_peak_rss_mb']:.0f} |")
    else:
        print("| image | mode | seconds | peak RSS MB |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['image']} | {r['mode']} | {r['after_seconds']:.3f} | {r['after_peak_rss_mb']:.0f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                                     "baseline": args.baseline, "model": model, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
