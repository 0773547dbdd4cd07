"""What each part of the fast CPU path (``inference/fast.py``) does to speed and to the logits.

    .venv/bin/python benchmarks/bench_fast_path.py [--net bundled|pvt_v2_b2] [--every 1] [--rounds 9]
        [--threads 1] [--json benchmarks/results/fast_path_<net>.json] [--compile]

For each configuration — eager; ``channels_last`` only; + oneDNN fusions; + in-place BN (the default); + Conv+BN folding;
all three (``fold_bn=True``); the default with everything after the encoder back in eager's layout; the default
with the SDI's 3x3 convs (all, or those at strides 8-32) back in eager's layout; all three with
the first k Conv+BN pairs left unfolded — the largest absolute difference
from eager float32 over *every* logit of every head, on every ``--every``-th PolypGen validation frame
(prepared as the predictor prepares it) plus random inputs; the same against the network run in float64 (how far
each configuration, eager float32 included, is from the exact computation: the floor any float32 path works
against); and the time per forward pass at the model's
input size, batch 1, configurations alternating round after round (medians). Time is given as wall and
as process CPU time (less disturbed when the machine is shared). ``bundled`` is the shipped polyp model;
``pvt_v2_b2`` is the paper's network with random weights and non-trivial BatchNorm statistics (no trained
PVT-v2 U-Net v2 is available offline). ``--compile`` adds torch.compile of eager (inductor with freezing) as a
configuration, with the time its first call took.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from napari_unetv2.files import IMAGE_SUFFIXES, read_image  # noqa: E402
from napari_unetv2.inference import Predictor, fast  # noqa: E402
from napari_unetv2.inference.preprocess import to_rgb, to_unit_range  # noqa: E402
from napari_unetv2.model import UNetV2  # noqa: E402


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


def variant(model: torch.nn.Module, fold: bool, onednn: bool, in_place: bool = True,
            skip_first: int = 0) -> torch.nn.Module:
    """optimize_for_cpu with parts switched off (folding restricted by wrapping its pair finder; the pairs
    left unfolded are then left out of place too, which changes no value)."""
    original = fast.conv_bn_pairs
    if skip_first:
        fast.conv_bn_pairs = lambda m, probe: original(m, probe)[skip_first:]
    try:
        return fast.optimize_for_cpu(model, onednn=onednn, fold_bn=fold, in_place=in_place)
    finally:
        fast.conv_bn_pairs = original


class ContiguousFeatures(torch.nn.Module):
    """An encoder whose feature maps leave it in eager's (NCHW) layout."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f.contiguous() for f in self.encoder(x)]


def decoder_in_eager_layout(model: torch.nn.Module) -> torch.nn.Module:
    """The default path with everything after the encoder (attention, reduce, SDI, decoder, heads) back in NCHW.

    Where the bundled model's logits move under ``channels_last`` (a measurement, not a product path): its
    encoder in ``channels_last`` computes the same bits as eager, and the decoder's 3x3 and 1x1 convs in
    ``channels_last`` do not (oneDNN picks other kernels for the other layout).
    """
    net = variant(model, fold=False, onednn=True)
    encoder = net.encoder
    net.to(memory_format=torch.contiguous_format)
    net.encoder = ContiguousFeatures(encoder.to(memory_format=torch.channels_last))
    return net


class EagerLayoutConv(torch.nn.Module):
    """A conv run in eager's (NCHW) layout inside a ``channels_last`` network: its input converted, its output
    converted back."""

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.conv = conv.to(memory_format=torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.contiguous()).contiguous(memory_format=torch.channels_last)


def sdi_convs_in_eager_layout(model: torch.nn.Module, levels: range) -> torch.nn.Module:
    """The default path with the SDI's 3x3 convs at the given levels (0: stride 4 ... 3: stride 32) back in NCHW.

    The smallest change found (2026-11-27, ad hoc, per module) that brings the bundled model's saturated logits
    within 1e-4 of eager: no single conv does it, the Hadamard product of the four at each level does. A measurement,
    not a product path."""
    net = variant(model, fold=False, onednn=True)
    for level in levels:
        convs = net.sdi[level].convs
        for j in range(len(convs)):
            convs[j] = EagerLayoutConv(convs[j])
    return net


SATURATED = 50.0  # beyond |logit| 50 the probability is 0 or 1 to float32 (sigmoid(-50) = 2e-22)


def largest_difference(outputs: list, reference: list, below: float = float("inf")) -> float:
    """The largest absolute difference over every logit of every head of every input, where |reference| <= below."""
    return max(
        max(((a - b).abs() * (b.abs() <= below)).max().item() for a, b in zip(out, ref))
        for out, ref in zip(outputs, reference)
    )


def mask_pixels_differing(outputs: list, reference: list, shapes: list[tuple[int, int]], threshold: float) -> int:
    """Pixels of the masks the predictor would give (main head's probability resized back to each frame's own
    size, then thresholded) that differ, summed over the frames."""
    total = 0
    for out, ref, (height, width) in zip(outputs, reference, shapes):
        a, b = Predictor._resize_output([torch.sigmoid(out[0]), torch.sigmoid(ref[0])], height, width)
        total += int(((a >= threshold) != (b >= threshold)).sum())
    return total


def add_arguments(parser: argparse.ArgumentParser, every: int) -> None:
    """The options this benchmark and ``bench_runtimes.py`` share."""
    parser.add_argument("--net", choices=["bundled", "pvt_v2_b2"], default="bundled")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "polypgen" / "val" / "images")
    parser.add_argument("--every", type=int, default=every, help="use every N-th frame of --data")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)


def weights_and_threshold(net: str) -> tuple[str, float]:
    """Which weights ran (the bundled model's version, or the random network's seed) and the mask threshold."""
    if net != "bundled":
        return "random weights, seed 0", 0.5
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config

    config = read_config(bundled_checkpoint())
    return f"version {config.version}", config.threshold


def network_and_frames(args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[int, int], list[Path], list[torch.Tensor]]:
    """(eager model, input size, frames used, their network inputs as the predictor prepares them)."""
    if args.net == "bundled":
        predictor = Predictor(device="cpu", fast=False)
    else:
        torch.manual_seed(0)
        predictor = Predictor(model=trained_looking(UNetV2("pvt_v2_b2", channels=32)), device="cpu", fast=False)
        predictor.config.input_size = (256, 256)
    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:: args.every]
    inputs = [predictor._resize_input(to_rgb(to_unit_range(read_image(p))).astype(np.float32, copy=False)).contiguous()
              for p in paths]
    return predictor.model, tuple(predictor.config.input_size), paths, inputs


def network_and_inputs(args: argparse.Namespace):
    """:func:`network_and_frames` at ``args.threads`` torch threads, with three seeded random inputs of the
    network's size after the frames; also returns the generator, for any further random inputs."""
    torch.set_num_threads(args.threads)
    model, size, paths, inputs = network_and_frames(args)
    generator = torch.Generator().manual_seed(0)
    inputs += [torch.randn(1, 3, *size, generator=generator) for _ in range(3)]
    return model, size, paths, inputs, generator


def compiled(model: torch.nn.Module, example: torch.Tensor) -> tuple[torch.nn.Module, float]:
    """(torch.compile of a channels_last copy with inductor's freezing, seconds its first call took).

    Freezing treats the weights as constants, so inductor folds them and prepacks them for oneDNN; without it
    torch.compile gained nothing on this network (issue 13's measurement). Measured, not a product path: the
    compile happens again in every new process and for every new input shape.
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    # dynamic=False: one static graph per input shape (a dynamic-shape recompile failed in inductor here, torch 2.14)
    net = torch.compile(copy.deepcopy(model).to(memory_format=torch.channels_last), dynamic=False)
    start = time.perf_counter()
    with torch.inference_mode():
        net(fast.as_channels_last(example))
    return net, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, every=1)
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile (inductor, freezing) of eager in channels_last as a configuration "
                             "and report its compile time")
    args = parser.parse_args()
    model, size, paths, inputs, generator = network_and_inputs(args)
    inputs.append(torch.rand(2, 3, 96, 136, generator=generator) * 4 - 2)
    pairs = len(fast.conv_bn_pairs(copy.deepcopy(model), torch.zeros(1, 3, 64, 64)))
    configs = {
        "eager": model,
        "channels_last only": variant(model, fold=False, onednn=False, in_place=False),
        "channels_last + oneDNN fusions": variant(model, fold=False, onednn=True, in_place=False),
        "channels_last + oneDNN fusions + in-place BN (the default)": variant(model, fold=False, onednn=True),
        "channels_last + Conv+BN folding": variant(model, fold=True, onednn=False),
        "all three (fold_bn=True)": variant(model, fold=True, onednn=True),
        "the default with the decoder in eager's layout (NCHW)": decoder_in_eager_layout(model),
    }
    if hasattr(model, "sdi"):
        configs["the default with the SDI's convs in eager's layout (NCHW)"] = sdi_convs_in_eager_layout(model, range(4))
        configs["the default with the SDI's convs at strides 8-32 in eager's layout"] = sdi_convs_in_eager_layout(model, range(1, 4))
    for k in (4, 16):
        if k < pairs:
            configs[f"all three, first {k} of {pairs} pairs unfolded"] = variant(model, fold=True, onednn=True, skip_first=k)
    compile_seconds = None
    if args.compile:
        configs["torch.compile (inductor, freezing) of eager in channels_last"], compile_seconds = compiled(model, inputs[0])
        print(f"torch.compile: first call {compile_seconds:.1f} s", file=sys.stderr, flush=True)
    diffs, exact_diffs, unsaturated, flips, largest = {}, {}, {}, {}, 0.0
    weights, threshold = weights_and_threshold(args.net)
    shapes = [read_image(p).shape[:2] for p in paths]  # zip stops at the frames: random inputs have no frame size
    with torch.inference_mode():
        reference = [model(x).all_logits for x in inputs]
        exact_model = copy.deepcopy(model).double()
        exact = [[t.float() for t in exact_model(x.double()).all_logits] for x in inputs]  # float64, rounded at the end
        largest = max(t.abs().max().item() for r in reference for t in r)
        for name, net in configs.items():
            outputs = [net(x if net is model else fast.as_channels_last(x)).all_logits for x in inputs]
            diffs[name] = largest_difference(outputs, reference)
            exact_diffs[name] = largest_difference(outputs, exact)
            unsaturated[name] = (largest_difference(outputs, reference, SATURATED),
                                 largest_difference(outputs, exact, SATURATED))
            flips[name] = (mask_pixels_differing(outputs, reference, shapes, threshold),
                           mask_pixels_differing(outputs, exact, shapes, threshold))
            print(f"{name}: max abs logit difference {diffs[name]:.3g} (vs float64 {exact_diffs[name]:.3g}; "
                  f"where |logit| <= {SATURATED:g}: {unsaturated[name][0]:.3g}, {unsaturated[name][1]:.3g})",
                  file=sys.stderr, flush=True)
        # Eager against itself: the same model at one thread more (PyTorch picks other conv kernels by thread count).
        torch.set_num_threads(args.threads + 1)
        more_threads = [model(x).all_logits for x in inputs]
        torch.set_num_threads(args.threads)
        eager_threads = (largest_difference(more_threads, reference), largest_difference(more_threads, reference, SATURATED))
        x = torch.randn(1, 3, *size, generator=generator)
        wall = {n: [] for n in configs}
        cpu = {n: [] for n in configs}
        for net in configs.values():
            net(fast.as_channels_last(x))
        for _ in range(args.rounds):
            for name, net in configs.items():
                xi = x if net is model else fast.as_channels_last(x)
                w, c = time.perf_counter(), time.process_time()
                net(xi)
                cpu[name].append((time.process_time() - c) * 1e3)
                wall[name].append((time.perf_counter() - w) * 1e3)
    rows = [{"config": n, "max_abs_logit_diff": diffs[n], "max_abs_logit_diff_vs_float64": exact_diffs[n],
             "unsaturated_diff_vs_eager": unsaturated[n][0], "unsaturated_diff_vs_float64": unsaturated[n][1],
             "mask_pixels_differing_from_eager": flips[n][0], "mask_pixels_differing_from_float64": flips[n][1],
             "wall_ms": statistics.median(wall[n]), "cpu_ms": statistics.median(cpu[n])} for n in configs]
    eager_wall, eager_cpu = rows[0]["wall_ms"], rows[0]["cpu_ms"]
    pixels = sum(height * width for height, width in shapes)  # the frames' masks at their own size
    lines = [f"{args.net} ({weights}) at {size[0]}x{size[1]}, batch 1, {args.threads} torch thread(s); "
                 f"differences over every logit of "
                 f"every head on {len(paths)} frames of {args.data} + 4 random inputs (largest |logit| {largest:.1f}); "
                 f"medians of {args.rounds} alternating rounds", ""]
    lines.append(f"| configuration | max abs logit diff vs eager | within 1e-4 | max abs logit diff vs float64 | the same two "
                 f"where \\|logit\\| <= {SATURATED:g} | full-size mask pixels differing from eager / float64 (of {pixels}) "
                 "| wall ms | speed-up (wall) | CPU ms | speed-up (CPU) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(f"| {r['config']} | {r['max_abs_logit_diff']:.2e} | {'yes' if r['max_abs_logit_diff'] <= 1e-4 else 'no'} | "
                     f"{r['max_abs_logit_diff_vs_float64']:.2e} | {r['unsaturated_diff_vs_eager']:.2e} / "
                     f"{r['unsaturated_diff_vs_float64']:.2e} | {r['mask_pixels_differing_from_eager']} / "
                     f"{r['mask_pixels_differing_from_float64']} | "
                     f"{r['wall_ms']:.1f} | {eager_wall / r['wall_ms']:.2f}x | {r['cpu_ms']:.1f} | {eager_cpu / r['cpu_ms']:.2f}x |")
    if compile_seconds is not None:
        lines += ["", f"torch.compile's first call (compiling, at {size[0]}x{size[1]}) took {compile_seconds:.1f} s; each "
                      "new input shape compiles again, and so does every new process."]
    lines += ["", f"Eager float32 at {args.threads + 1} torch threads against eager at {args.threads}: max abs logit difference "
                  f"{eager_threads[0]:.2e} ({eager_threads[1]:.2e} where \\|logit\\| <= {SATURATED:g})."]
    table = "\n".join(lines) + "\n"
    print(table)
    target = args.json or REPO / "benchmarks" / "results" / f"fast_path_{args.net}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv), "net": args.net,
                                  "model": weights, "frames": len(paths), "largest_abs_logit": largest,
                                  "threads": args.threads, "compile_seconds": compile_seconds,
                                  "rows": rows, "eager_one_thread_more": {"max_abs_logit_diff": eager_threads[0],
                                                                          "unsaturated_diff": eager_threads[1]}},
                                 indent=1) + "\n")
    target.with_suffix(".md").write_text(f"`{' '.join(sys.argv)}` ({time.strftime('%Y-%m-%d %H:%M')})\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
