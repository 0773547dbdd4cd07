"""Average the weights of checkpoints of one network (a "model soup", Wortsman et al. 2022; SWA's averaging).

    .venv/bin/python training/average_checkpoints.py A.safetensors B.safetensors [--weights 0.5 0.5]
        [--input-size H W] --out training/runs/soup/soup.safetensors

Checkpoints fine-tuned from one another or from a common one (``unetv2 train --init``) lie in one basin, and their average is
often better than either at no cost at inference. Every floating tensor, BatchNorm running statistics
included, is the weighted mean; integer tensors (BatchNorm's step counters) are taken from the first.
The config is the first checkpoint's (``--input-size`` overrides the size frames are resized to), its
parent the first's version, and the command and sources are recorded in ``training``. Choose among
soups on the validation set only, as for any checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_unetv2.checkpoints import load_checkpoint, save_derived_checkpoint


def average(paths: list[Path], weights: list[float]):
    """(model with the weighted mean of the checkpoints' tensors, the first's config, every checkpoint's config)."""
    if len(paths) < 2 or len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError("Give two or more checkpoints and as many non-negative weights (not all zero).")
    total = sum(weights)
    loaded = [load_checkpoint(p) for p in paths]  # each file read once
    (model, config), configs = loaded[0], [c for _, c in loaded]
    states = [m.state_dict() for m, _ in loaded]
    for other in configs[1:]:
        if (other.arch, other.encoder, other.channels, other.num_classes) != (
                config.arch, config.encoder, config.channels, config.num_classes):
            raise ValueError("The checkpoints are different networks; only one network's weights can be averaged.")
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            averaged[key] = sum(w / total * state[key].double() for w, state in zip(weights, states)).to(tensor.dtype)
        else:
            averaged[key] = tensor
    model.load_state_dict(averaged)
    return model, config, configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="one per checkpoint (default: equal)")
    parser.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    weights = args.weights or [1.0] * len(args.checkpoints)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new name (nothing was overwritten).")
    model, config, configs = average(args.checkpoints, weights)
    if args.input_size:
        config.input_size = tuple(args.input_size)
    sources = [f"{p} ({c.version}, weight {w})" for p, c, w in zip(args.checkpoints, configs, weights)]
    command = "training/average_checkpoints.py " + " ".join(argv if argv is not None else sys.argv[1:])
    saved = save_derived_checkpoint(model, args.out, config, configs[0].version,
                                    {"averaged_from": sources, "command": command})
    print(f"averaged {len(args.checkpoints)} checkpoints -> {args.out} (version {saved.version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
