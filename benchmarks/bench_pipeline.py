"""``unetv2 predict`` throughput against the bare forward rate, this checkout against a baseline commit.

    .venv/bin/python benchmarks/bench_pipeline.py --baseline aa6c2b4 [--data ../shared/data/polypgen/val/images]
        [--rounds 3] [--threads N] [--json benchmarks/results/pipeline.json]

Each run is a fresh process calling ``predict_folder`` — the function behind ``unetv2 predict`` — with
the CLI's defaults (bundled model, ``Predictor(device="auto")``, resize mode, masks and summary.csv
written) on every image of the folder, timed from the first image to the last file written. In the same
process, the bare forward rate: the network the predictor runs (the fast copy after, the model before)
on the same frames' network inputs, batch 1, nothing else timed, in the two layouts the thread budget
allows: one stream on all threads, and concurrent streams sharing them (one per thread, at most 4, as
``predict_folder``'s default). The ratio divides the pipeline's images/s by the *faster* of the two, so a
pipeline cannot look busy by running a slow layout. Variants alternate, round after round: ``before``
(the baseline), ``after (default)``, ``after --streams 1`` (one image at a time on every thread, reading
ahead and writing behind: the previous default) and ``after --sequential``.
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

RUN = r"""
import json, sys, tempfile, threading, time
from pathlib import Path
import torch, torch.nn.functional as F
if sys.argv[3] != "default":
    torch.set_num_threads(int(sys.argv[3]))
from napari_unetv2.files import IMAGE_SUFFIXES, read_image
from napari_unetv2.inference import Predictor
from napari_unetv2.inference.batch import predict_folder
from napari_unetv2.inference.preprocess import normalize, to_rgb, to_unit_range
from napari_unetv2.inference.threads import default_cpu_threads
source, extra = Path(sys.argv[1]), json.loads(sys.argv[2])
predictor = Predictor(device="auto")
with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    summary = predict_folder(predictor, source, Path(out) / "masks", **extra)
    wall = time.perf_counter() - start
done = summary.count("done")
network = getattr(predictor, "network", predictor.model)
layout = torch.channels_last if getattr(predictor, "fast", False) else torch.contiguous_format
inputs = []
for path in sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
    x = torch.from_numpy(to_rgb(to_unit_range(read_image(path))).astype("float32")).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=tuple(predictor.config.input_size), mode="bilinear", align_corners=False, antialias=True)
    inputs.append(normalize(x.clamp(0, 1), predictor.config.normalization).contiguous(memory_format=layout).to(predictor.device))
on_gpu = predictor.device.type == "cuda"

def bare_forward_rate(threads):
    # The network alone on every input, batch 1, in len(threads) concurrent streams (stream k on every
    # len(threads)-th input with threads[k] torch threads): nothing but forward passes.
    def stream(k):
        torch.set_num_threads(threads[k])
        with torch.inference_mode():
            for x in inputs[k::len(threads)]:
                network(x)
            if on_gpu:
                torch.cuda.synchronize()  # the last kernels finished, not only queued
    with torch.inference_mode():
        network(inputs[0])
    workers = [threading.Thread(target=stream, args=(k,)) for k in range(len(threads))]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(inputs) / (time.perf_counter() - start)

# The default layout of predict_folder (batch.cpu_streams / pipeline.split_threads), written out here
# because the baseline tree has neither.
budget = predictor.threads or default_cpu_threads()
streams = 1 if on_gpu else min(budget, 4)  # on a GPU, predict_folder runs one stream (batch.cpu_streams)
split = [budget // streams + (1 if i < budget % streams else 0) for i in range(streams)]
rates = {"one": bare_forward_rate([budget]), "split": bare_forward_rate(split) if streams > 1 else None}
print(json.dumps({"images": done, "seconds": wall, "images_per_s": done / wall, "forward_one_per_s": rates["one"],
                  "forward_split_per_s": rates["split"], "forward_per_s": max(r for r in rates.values() if r),
                  "threads": budget, "split": split, "model": predictor.description, "device": str(predictor.device)}))
"""

VARIANTS = {"before": ("before", {}), "after (default)": ("after", {}),
            "after --streams 1": ("after", {"streams": 1}), "after --sequential": ("after", {"overlap_io": False})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="git ref to compare against")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "polypgen" / "val" / "images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="default", help="torch threads (default: torch's own, as the CLI)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "pipeline.json")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="also run `unetv2 predict --batch-size N` (same-size frames through the network together)")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"bench_pipeline: {args.data} is not a folder (pass --data)", file=sys.stderr)
        return 2
    runs = trees(args.baseline)
    variants = {k: v for k, v in VARIANTS.items() if v[0] in runs}
    if args.batch_size:
        variants[f"after --batch-size {args.batch_size}"] = ("after", {"batch_size": args.batch_size})
    samples: dict = {k: [] for k in variants}
    for round_index in range(args.rounds):
        names = list(variants)
        names = names[round_index % len(names):] + names[: round_index % len(names)]  # rotate who goes first
        for name in names:
            tree, extra = variants[name]
            out = run_in_tree(runs[tree], RUN, str(args.data.resolve()), json.dumps(extra), args.threads)
            row = json.loads(out.strip().splitlines()[-1])
            samples[name].append(row)
            print(f"round {round_index + 1} {name}: {row['images_per_s']:.2f} images/s, forward {row['forward_per_s']:.2f}/s",
                  file=sys.stderr)
    rows = []
    for name, rs in samples.items():
        ratio = [r["images_per_s"] / r["forward_per_s"] for r in rs]
        rows.append({"variant": name, "images": rs[0]["images"], "images_per_s": statistics.median(r["images_per_s"] for r in rs),
                     "forward_per_s": statistics.median(r["forward_per_s"] for r in rs),
                     "forward_one_per_s": statistics.median(r["forward_one_per_s"] for r in rs),
                     "forward_split_per_s": (statistics.median(r["forward_split_per_s"] for r in rs)
                                             if rs[0]["forward_split_per_s"] else None),
                     "ratio": statistics.median(ratio), "threads": rs[0]["threads"], "model": rs[0]["model"]})
    print(f"{rows[0]['images']} images from {args.data}; device {samples[next(iter(samples))][0].get('device', 'cpu')}; "
          f"torch threads: {rows[0]['threads']}; medians of {args.rounds} "
          f"rounds, variants alternating (baseline {args.baseline or '-'})\n")
    split = samples[next(iter(samples))][0]["split"]
    print(f"bare forward: the network alone on the same inputs, batch 1, as one stream on all {rows[0]['threads']} "
          f"thread(s) and as {len(split)} concurrent streams of {split} thread(s); the ratio divides by the faster\n")
    print("| variant | images/s (unetv2 predict) | bare forward/s, one stream | bare forward/s, "
          f"{len(split)} streams | throughput / faster bare forward |")
    print("|---|---|---|---|---|")
    for r in rows:
        split_rate = f"{r['forward_split_per_s']:.2f}" if r["forward_split_per_s"] else "-"
        print(f"| {r['variant']} | {r['images_per_s']:.2f} | {r['forward_one_per_s']:.2f} | {split_rate} | {r['ratio']:.2f} |")
    if "before" in samples:
        before = next(r for r in rows if r["variant"] == "before")
        after = next(r for r in rows if r["variant"] == "after (default)")
        print(f"\nunetv2 predict: {after['images_per_s'] / before['images_per_s']:.2f}x the baseline's images/s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                                     "baseline": args.baseline, "data": str(args.data), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
