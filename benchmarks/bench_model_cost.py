"""CPU cost per frame of several models through the user's path, against the first one (issue 15's 2x rule).

    .venv/bin/python benchmarks/bench_model_cost.py REFERENCE MODEL [MODEL ...] [--rounds 5] [--threads N]
        [--json benchmarks/results/model_cost.json]

A model is a checkpoint file, a bundled model's name (``polyp``, ``skin``), or ``ENCODER@SIDE`` (for example
``tf_efficientnet_lite1@320``): that encoder's U-Net v2 (c = 32) with random weights, resized to SIDE x SIDE,
which costs what a trained one would (the same operations on the same shapes), so a configuration can be
priced before hours go into training it. Each model runs ``Predictor(device="cpu")`` with its defaults
and ``predict`` on a random 1232x1048 RGB frame, as the widget and ``unetv2 predict`` call it: the median
of 9 calls after a warm-up, each model in a fresh process, models alternating round after round; the
table gives medians over rounds and each model's ratio to the first. Every other round runs the models in
reverse order, so that none always goes first.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import REPO, run_in_tree  # noqa: E402

CASE = r"""
import json, statistics, sys, time
import numpy as np, torch
spec, threads = sys.argv[1], sys.argv[2]
if threads != "default":
    torch.set_num_threads(int(threads))
from napari_unetv2.inference import Predictor
if "@" in spec:
    from napari_unetv2.checkpoints import ModelConfig, build_unetv2
    encoder, side = spec.split("@")
    torch.manual_seed(0)
    model = build_unetv2(encoder, channels=32, pretrained=False).eval()
    p = Predictor(model=model, config=ModelConfig.for_model(model, input_size=(int(side), int(side))), device="cpu")
else:
    p = Predictor(spec, device="cpu")
image = np.random.default_rng(0).integers(0, 255, (1048, 1232, 3), dtype=np.uint8)
p.predict(image)
times = []
for _ in range(9):
    start = time.perf_counter()
    p.predict(image)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "model": p.description}))
"""


def run_model(spec: str, threads: str) -> dict:
    return json.loads(run_in_tree(REPO, CASE, spec, threads).strip().splitlines()[-1])


def resolved(spec: str) -> str:
    """A checkpoint path as an absolute path (the cases run in the repository root); names and ENCODER@SIDE as given."""
    return str(Path(spec).resolve()) if "@" not in spec and Path(spec).is_file() else spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="checkpoint file, bundled name, or ENCODER@SIDE; the first is the reference")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="default", help="torch threads (default: the Predictor's own choice)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "model_cost.json")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give a reference model and at least one other")
    runs: dict[str, list[dict]] = {m: [] for m in args.models}
    for round_ in range(args.rounds):
        for spec in (args.models if round_ % 2 == 0 else args.models[::-1]):
            runs[spec].append(run_model(resolved(spec), args.threads))
            print(f"round {round_ + 1}/{args.rounds}: {spec} {runs[spec][-1]['seconds'] * 1e3:.1f} ms", file=sys.stderr)
    reference = statistics.median(r["seconds"] for r in runs[args.models[0]])
    rows = [{"model": spec, "description": runs[spec][0]["model"],
             "ms": 1e3 * statistics.median(r["seconds"] for r in runs[spec]),
             "ms_runs": [1e3 * r["seconds"] for r in runs[spec]],
             "ratio": statistics.median(r["seconds"] for r in runs[spec]) / reference} for spec in args.models]
    print(f"Predictor.predict on a 1232x1048 frame, CPU, threads: {args.threads}; medians of {args.rounds} rounds, "
          "each model in a fresh process\n")
    print("| model | what | ms per frame | vs the first |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| `{row['model']}` | {row['description']} | {row['ms']:.1f} | {row['ratio']:.2f}x |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    command = "benchmarks/bench_model_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": command,
                                     "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
