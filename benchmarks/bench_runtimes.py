"""ONNX Runtime and OpenVINO against eager PyTorch float32 on the CPU: do their logits match within 1e-4,
and are they faster?

    .venv/bin/pip install -e ".[runtimes]"      # onnxruntime, openvino, onnx, onnxscript (optional extra)
    .venv/bin/python benchmarks/bench_runtimes.py [--net bundled|pvt_v2_b2] [--every 15] [--rounds 9]
        [--threads 1] [--onnxruntime-levels] [--json benchmarks/results/runtimes_<net>.json]

The network (``all_logits``: every head) is exported with ``torch.onnx.export(dynamo=True)`` at the
model's input size, batch 1; ONNX Runtime runs it on its CPU provider, OpenVINO compiles it for the CPU
with float32 inference precision; both with ``--threads`` intra-op threads. Differences are the largest
absolute logit difference from eager over every ``--every``-th PolypGen validation frame plus 3 random
inputs; time per forward (wall and process CPU) alternates between the backends, round after round.
The predictor's default fast path is measured beside them.
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
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_fast_path import SATURATED, add_arguments, largest_difference, network_and_inputs  # noqa: E402

from napari_unetv2.inference import fast  # noqa: E402
from napari_unetv2.model import baselines as baselines_module  # noqa: E402
from napari_unetv2.model import unetv2 as unetv2_module  # noqa: E402


class AllLogits(torch.nn.Module):
    """The network with a plain tuple of tensors as output (what exporters take)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net(x).all_logits


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """``module`` (returning tensors) to an ONNX file with ``torch.onnx.export(dynamo=True)``, batch 1.

    The input check (``if not isfinite(x).all()``) depends on the data, which torch.export cannot trace;
    it is no part of the computation, so the exported graph goes without it."""
    checks = {m: m.validate_input for m in (unetv2_module, baselines_module)}
    for m in checks:
        m.validate_input = lambda x: x
    try:
        program = torch.onnx.export(module.eval(), (example,), None, dynamo=True, external_data=False)
    finally:
        for m, check in checks.items():
            m.validate_input = check
    path.write_bytes(program.model_proto.SerializeToString())


# ONNX Runtime's graph optimisation levels below its default (ORT_ENABLE_ALL), for --onnxruntime-levels: where
# does its difference from eager come from, and does any level keep within 1e-4?
ORT_LEVELS = {"onnxruntime, graph optimisations off": "ORT_DISABLE_ALL",
              "onnxruntime, basic optimisations": "ORT_ENABLE_BASIC",
              "onnxruntime, extended optimisations": "ORT_ENABLE_EXTENDED"}


def runtimes(onnx_path: Path, threads: int, levels: bool = False) -> tuple[dict, dict]:
    runners, failures = {}, {}
    try:
        import onnxruntime as ort

        def ort_runner(level: str = "ORT_ENABLE_ALL"):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            return lambda x: [torch.from_numpy(a) for a in session.run(None, {session.get_inputs()[0].name: x.numpy()})]

        for name, level in {"onnxruntime": "ORT_ENABLE_ALL", **(ORT_LEVELS if levels else {})}.items():
            try:
                runners[name] = ort_runner(level)
            except Exception as err:  # noqa: BLE001 (reported in the table, under this session's name)
                failures[name] = f"{type(err).__name__}: {err}"[:200]
    except ImportError as err:
        failures["onnxruntime"] = f"{type(err).__name__}: {err}"[:200]
    try:
        import openvino as ov

        compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                   "INFERENCE_PRECISION_HINT": "f32",
                                                                   "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        runners["openvino"] = lambda x: [torch.from_numpy(np.array(request.infer({0: x.numpy()})[o])) for o in compiled.outputs]
    except Exception as err:  # noqa: BLE001
        failures["openvino"] = f"{type(err).__name__}: {err}"[:200]
    return runners, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, every=15)
    parser.add_argument("--onnxruntime-levels", action="store_true",
                        help="also run ONNX Runtime at its lower graph optimisation levels (off, basic, extended)")
    args = parser.parse_args()
    model, size, paths, inputs, _ = network_and_inputs(args)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "net.onnx"
        start = time.perf_counter()
        export_onnx(AllLogits(model), inputs[0], onnx_path)
        export_s = time.perf_counter() - start
        runners, failures = runtimes(onnx_path, args.threads, args.onnxruntime_levels)
        fast_net = fast.optimize_for_cpu(model)
        runners["default fast path (PyTorch)"] = lambda x: fast_net(fast.as_channels_last(x)).all_logits
        diffs, unsaturated = {}, {}
        with torch.inference_mode():
            reference = [model(x).all_logits for x in inputs]
            for name, run in runners.items():
                outputs = [run(x) for x in inputs]
                diffs[name] = largest_difference(outputs, reference)
                # The rule the default fast path is held to: 1e-4 where |logit| <= 50 (sigmoid is 0 or 1 beyond).
                unsaturated[name] = largest_difference(outputs, reference, SATURATED)
                print(f"{name}: max abs logit difference {diffs[name]:.3g} ({unsaturated[name]:.3g} where |logit| <= 50)",
                      file=sys.stderr, flush=True)
            runners = {"eager (PyTorch)": lambda x: model(x).all_logits, **runners}
            diffs["eager (PyTorch)"] = unsaturated["eager (PyTorch)"] = 0.0
            x, wall, cpu = inputs[-1], {n: [] for n in runners}, {n: [] for n in runners}
            for run in runners.values():
                run(x)
            for _ in range(args.rounds):
                for name, run in runners.items():
                    w, c = time.perf_counter(), time.process_time()
                    run(x)
                    cpu[name].append((time.process_time() - c) * 1e3)
                    wall[name].append((time.perf_counter() - w) * 1e3)
    rows = [{"backend": n, "max_abs_logit_diff": diffs[n], "max_abs_diff_logit_le_50": unsaturated[n],
             "wall_ms": statistics.median(wall[n]),
             "cpu_ms": statistics.median(cpu[n])} for n in runners]
    rows += [{"backend": n, "failed": why} for n, why in failures.items()]
    print(f"{args.net} at {size[0]}x{size[1]}, batch 1, {args.threads} thread(s); differences over every logit of every head on "
          f"{len(paths)} frames + 3 random inputs; ONNX export {export_s:.0f} s; medians of {args.rounds} alternating rounds\n")
    print("| backend | max abs logit diff vs eager | within 1e-4 | same where \\|logit\\| <= 50 | within 1e-4 there | "
          "wall ms | CPU ms (process) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['backend']} | failed: {r['failed']} | no | - | - | - | - |")
        else:
            print(f"| {r['backend']} | {r['max_abs_logit_diff']:.2e} | {'yes' if r['max_abs_logit_diff'] <= 1e-4 else 'no'} | "
                  f"{r['max_abs_diff_logit_le_50']:.2e} | {'yes' if r['max_abs_diff_logit_le_50'] <= 1e-4 else 'no'} | "
                  f"{r['wall_ms']:.1f} | {r['cpu_ms']:.1f} |")
    target = args.json or REPO / "benchmarks" / "results" / f"runtimes_{args.net}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv), "net": args.net,
                                  "frames": len(paths), "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
