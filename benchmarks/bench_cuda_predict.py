"""``Predictor.predict`` on a CUDA GPU, the path users take, against its alternatives: the default (float32,
cuDNN's heuristic algorithm choice) vs the float16 autocast option, each with and without cuDNN autotuning
(``torch.backends.cudnn.benchmark``), for the bundled model and the paper's network (PVT-v2-b2, c = 32, 352x352,
random weights). Frame: the shipped polyp sample resized to 1232x1048 (PolypGen's full-resolution size).
Prints a markdown table and writes JSON; on a machine without CUDA it says so and exits 0.

    python benchmarks/bench_cuda_predict.py [--repeats 30] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to benchmark")
        return 0
    import numpy as np
    from skimage.transform import resize

    from napari_unetv2._sample_data import load_sample
    from napari_unetv2.inference import Predictor
    from napari_unetv2.model import UNetV2

    frame = (resize(load_sample("polyp")[0], (1048, 1232), preserve_range=True, anti_aliasing=True)).astype(np.uint8)
    torch.manual_seed(0)
    paper = UNetV2("pvt_v2_b2", channels=32).eval()
    models = {"bundled polyp": lambda **kw: Predictor(device="cuda", **kw),
              "paper PVT-v2-b2 352": lambda **kw: Predictor(model=paper, device="cuda", **kw)}
    rows = []
    for name, make in models.items():
        reference = None
        for precision, label in (("float32", "fp32 (default)"), ("float16", "fp16 autocast (option)")):
            predictor = make(precision=precision)
            for autotune in (False, True):
                torch.backends.cudnn.benchmark = autotune
                for _ in range(5):
                    out = predictor.predict(frame)
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    out = predictor.predict(frame)  # returns numpy arrays: the GPU work is done
                    times.append((time.perf_counter() - start) * 1000)
                if reference is None:
                    reference = out.probability
                rows.append({"model": name, "precision": label, "cudnn_benchmark": autotune,
                             "median_ms": round(statistics.median(times), 2),
                             "max_abs_dp_vs_first_row": float(np.abs(out.probability - reference).max())})
        torch.backends.cudnn.benchmark = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; Predictor.predict on a 1232x1048 "
          f"frame, median of {args.repeats} after 5 warm-up calls")
    print("| model | precision | cuDNN autotuning | ms / frame | max abs dp vs the first row |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['precision']} | {'on' if r['cudnn_benchmark'] else 'off (default)'} | "
              f"{r['median_ms']} | {r['max_abs_dp_vs_first_row']:.2g} |")
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                         "command": " ".join(sys.argv), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
