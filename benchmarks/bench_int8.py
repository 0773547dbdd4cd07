"""Would an int8 path pay? The bundled model quantised to int8 with ONNX Runtime against the default fast path:
validation Dice through the predictor's own path, and time per forward pass. A measurement, not a shipped path.

    .venv/bin/pip install -e ".[runtimes]"      # onnxruntime, onnx, onnxscript (optional extra)
    .venv/bin/python benchmarks/bench_int8.py [--calibration 64] [--rounds 9] [--threads 2]
        [--json benchmarks/results/int8_bundled.json]

Issue 13 allows an int8 path as an explicit option if Dice on ``polypgen/val`` drops by at most 0.005. Steps:
the network's final logits exported with ``torch.onnx.export(dynamo=True)``; ONNX Runtime's static
quantisation (QDQ, int8 weights per channel, uint8 activations, ``--method`` calibration) on ``--calibration``
frames of ``polypgen/train``, prepared exactly as ``Predictor.prepare`` prepares a frame; then every
``polypgen/val`` pair scored with ``engine.evaluate.evaluate_pairs`` through a ``Predictor`` whose network is
swapped for each ONNX Runtime session (same pre- and post-processing, threshold and metrics as
``unetv2 evaluate``), and the default fast path scored the same way. Timing: forward passes on one prepared
frame, the three backends alternating round after round.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_runtimes import export_onnx  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "polypgen"


class OnnxNetwork:
    """Stands in for ``Predictor.network``: the ONNX session's logits, no attention maps."""

    def __init__(self, session):
        self.session, self.input_name = session, session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor, return_attention: bool = False):
        if return_attention:
            raise ValueError("the ONNX export has no attention maps")
        logits = self.session.run(None, {self.input_name: x.contiguous().numpy()})[0]
        return SimpleNamespace(logits=torch.from_numpy(logits), attention=[])


class FinalLogits(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).logits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=64, help="polypgen/train frames for calibration")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax",
                        help="ONNX Runtime's calibration method")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "int8_bundled.json")
    args = parser.parse_args()
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from napari_unetv2.engine.evaluate import evaluate_pairs
    from napari_unetv2.engine.pairs import find_pairs
    from napari_unetv2.files import read_image
    from napari_unetv2.inference import Predictor

    torch.set_num_threads(args.threads)
    predictor = Predictor(device="cpu", threads=args.threads)
    train = find_pairs(DATA / "train").pairs
    chosen = train[:: max(1, len(train) // args.calibration)][: args.calibration]
    calibration = [predictor.prepare(read_image(p.image)).batch.contiguous().numpy() for p in chosen]

    class Reader(CalibrationDataReader):
        def __init__(self, input_name: str):
            self.input_name, self.items = input_name, iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {self.input_name: item}

    val = find_pairs(DATA / "val").pairs
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        fp32_path, int8_path = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        export_onnx(FinalLogits(predictor.model), torch.from_numpy(calibration[0]), fp32_path)
        input_name = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        start = time.perf_counter()
        quantize_static(str(fp32_path), str(int8_path), Reader(input_name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                          "entropy": CalibrationMethod.Entropy}[args.method])
        quantise_s = time.perf_counter() - start
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        # ONNX Runtime's threads spin after each run by default, taking the cores from the PyTorch rounds.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {n: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for n, p in (("ONNX Runtime float32", fp32_path), ("ONNX Runtime int8", int8_path))}
        networks = {"default fast path (PyTorch)": predictor.network,
                    **{n: OnnxNetwork(s) for n, s in sessions.items()}}
        for label, network in networks.items():
            predictor.network = network
            scores = evaluate_pairs(predictor, val, with_hd95=False)
            results[label] = {"dice": scores["dice"], "iou": scores["iou"], "n": scores["n"]}
            print(f"{label}: val Dice {scores['dice']:.4f}", file=sys.stderr, flush=True)
        x = torch.from_numpy(calibration[0]).contiguous(memory_format=torch.channels_last)
        times = {n: [] for n in networks}
        with torch.inference_mode():
            for net in networks.values():
                net(x)
            for _ in range(args.rounds):
                for label, net in networks.items():
                    start = time.perf_counter()
                    net(x)
                    times[label].append((time.perf_counter() - start) * 1e3)
    base = results["default fast path (PyTorch)"]["dice"]
    rows = [{"backend": n, **results[n], "dice_change": results[n]["dice"] - base, "ms": statistics.median(times[n])}
            for n in networks]
    print(f"bundled model {predictor.config.version} at {predictor.config.input_size[0]}x{predictor.config.input_size[1]}, "
          f"{args.threads} thread(s); {len(chosen)} calibration frames ({args.method}) from polypgen/train "
          f"(quantised in {quantise_s:.0f} s); "
          f"Dice on the {results[next(iter(results))]['n']} polypgen/val frames; forward ms: median of {args.rounds} rounds\n")
    print("| backend | val Dice | change vs default | ms per forward | speed-up vs default |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['dice']:.4f} | {r['dice_change']:+.4f} | {r['ms']:.1f} | {rows[0]['ms'] / r['ms']:.2f}x |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                                     "model": predictor.config.version, "calibration_frames": len(chosen), "method": args.method,
                                     "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
