"""Inference on a CUDA GPU: float32 against float16 autocast, batch 1 and 16, the paper's network
(PVT-v2-b2, c = 32, 352x352) and the bundled model (at its training size). Prints a markdown table and
writes JSON. Run by scripts/gpu_run.sh; on a machine without CUDA it says so and exits 0.

    python benchmarks/bench_cuda.py [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import torch


def time_forward(model, x: torch.Tensor, amp: bool, repeats: int = 20) -> tuple[float, float]:
    """(median milliseconds per batch, peak GPU memory in MB)."""
    ctx = torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()
    torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode(), ctx:
        for i in range(repeats + 5):
            torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            torch.cuda.synchronize()
            if i >= 5:  # warm-up (cuDNN autotuning, allocator)
                times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2], torch.cuda.max_memory_allocated() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to benchmark")
        return 0
    from napari_unetv2.checkpoints import bundled_checkpoint, load_checkpoint
    from napari_unetv2.model import UNetV2

    torch.backends.cudnn.benchmark = True
    bundled, config = load_checkpoint(bundled_checkpoint())
    cases = [("paper: PVT-v2-b2, c=32", UNetV2("pvt_v2_b2", channels=32), (352, 352)),
             (f"bundled: {config.encoder}", bundled, tuple(config.input_size))]
    rows = []
    for name, model, size in cases:
        model = model.cuda().eval()
        for batch in (1, 16):
            x = torch.randn(batch, 3, *size, device="cuda")
            for amp in (False, True):
                ms, mem = time_forward(model, x, amp)
                rows.append({"model": name, "size": list(size), "batch": batch, "precision": "fp16 autocast" if amp else "fp32",
                             "ms_per_batch": round(ms, 2), "images_per_s": round(batch * 1000 / ms, 1),
                             "peak_mem_mb": round(mem)})
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| model | input | batch | precision | ms / batch | images / s | peak GPU MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['size'][0]}x{r['size'][1]} | {r['batch']} | {r['precision']} | {r['ms_per_batch']} | "
              f"{r['images_per_s']} | {r['peak_mem_mb']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
