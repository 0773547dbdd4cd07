"""Where the time of ``unetv2 predict`` goes, per image, stage by stage, on the CLI's default path.

    .venv/bin/python benchmarks/profile_predict_stages.py [--data ../shared/data/polypgen/val/images]
        [--images 40] [--json benchmarks/results/predict_stages.json]

Each stage is the very call ``predict_folder`` makes (bundled model, resize mode, the fast network), run
one after another in this thread with 1 torch thread and timed as this thread's CPU time
(``time.thread_time``: what the stage costs a core, hardly disturbed by other work on the machine).
The PNG rows compare zlib levels on the same masks (the pixels read back are the same at every level).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from napari_unetv2.files import IMAGE_SUFFIXES, read_image, write_png_atomic  # noqa: E402
from napari_unetv2.inference import Predictor  # noqa: E402
from napari_unetv2.inference.batch import MASK_PNG_LEVEL  # noqa: E402
from napari_unetv2.inference.fast import as_channels_last  # noqa: E402
from napari_unetv2.inference.preprocess import to_rgb, to_unit_range  # noqa: E402
from napari_unetv2.inference.summary import merge_summary, write_summary  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "polypgen" / "val" / "images")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "predict_stages.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    predictor = Predictor(device="auto")
    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.images]
    cost: dict[str, list[float]] = {}

    def timed(stage: str, fn, *a):
        start = time.thread_time()
        result = fn(*a)
        cost.setdefault(stage, []).append((time.thread_time() - start) * 1e3)
        return result

    def png(level: int):
        return lambda m: write_png_atomic(out / f"level{level}.png", m, compress_level=level)

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        out = Path(folder)
        for path in paths:
            image = timed("decode (read_image)", read_image, path)
            unit = timed("to_unit_range", to_unit_range, image)
            rgb = timed("to_rgb + float32", lambda u: to_rgb(u).astype(np.float32, copy=False), unit)
            x = timed("resize to the input size + normalise", predictor._resize_input, rgb)
            x = timed("channels_last", as_channels_last, x)
            logits = timed("forward (1 thread)", lambda t: predictor.network(t).logits, x)
            prob = timed("sigmoid", torch.sigmoid, logits)
            full = timed("probability back to full size", predictor._resize_output, [prob], *rgb.shape[:2])
            result = timed("threshold + clip (_assemble)", predictor._assemble, full, [[]], False, 0.5, "resize", False,
                           None, False)
            mask255 = timed("mask to 0/255", lambda m: np.multiply(m, 255, dtype=np.uint8), result.mask)
            levels = sorted({MASK_PNG_LEVEL, 6})
            for level in levels if len(rows) % 2 else levels[::-1]:  # alternate which level goes first
                timed(f"PNG write, zlib level {level}{' (now)' if level == MASK_PNG_LEVEL else ' (before)'}", png(level),
                      mask255)
            rows.append({"file": path.name, "status": "done", "height": image.shape[0], "width": image.shape[1]})
            # Before: after every image (cost grows with the rows); now: at most once a second.
            timed("summary.csv rewrite (1..N rows)", write_summary, out, merge_summary([], rows))
    table = [{"stage": k, "median_ms": statistics.median(v), "mean_ms": statistics.mean(v)} for k, v in cost.items()]
    print(f"{len(paths)} frames of {args.data} ({predictor.description}); CPU time of this thread per image, 1 torch thread\n")
    print("| stage | median ms | mean ms |")
    print("|---|---|---|")
    for r in table:
        print(f"| {r['stage']} | {r['median_ms']:.2f} | {r['mean_ms']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                                     "images": len(paths), "rows": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
