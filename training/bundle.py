"""Copy a trained checkpoint into the package as a bundled model.

    .venv/bin/python training/bundle.py training/runs/lite0-256/best.safetensors [--half]
    .venv/bin/python training/bundle.py training/runs/skin-lite0-256/best.safetensors --name skin

Writes napari_unetv2/weights/<name>_default.safetensors + .json (the config keeps its metrics, recipe,
data and command; the version id is recomputed from the stored tensors). Users load it by name:
`--checkpoint skin`, `Predictor("skin")`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_unetv2.checkpoints import BUNDLED_DIR, BUNDLED_MODELS, load_checkpoint, save_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--half", action="store_true", help="store float16 tensors (half the size)")
    parser.add_argument("--name", choices=sorted(BUNDLED_MODELS), default="polyp", help="which bundled model to write")
    args = parser.parse_args()
    model, config = load_checkpoint(args.checkpoint)
    config.name = f"{args.name}-default"
    config.training = {**config.training, "bundled_from": str(args.checkpoint), "stored_as": "float16" if args.half else "float32"}
    target = BUNDLED_DIR / BUNDLED_MODELS[args.name]
    saved = save_checkpoint(model, target, config, half=args.half)
    print(f"bundled {saved.version} ({target.stat().st_size / 1e6:.1f} MB) -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
