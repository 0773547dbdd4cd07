"""Copy a trained checkpoint into the package as the bundled default model.

    .venv/bin/python training/bundle.py training/runs/lite0-256/best.safetensors [--half]

Writes napari_unetv2/weights/polyp_default.safetensors + .json (the config keeps its metrics, recipe,
data and command; the version id is recomputed from the stored tensors).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_unetv2.checkpoints import BUNDLED_DIR, BUNDLED_NAME, load_checkpoint, save_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--half", action="store_true", help="store float16 tensors (half the size)")
    args = parser.parse_args()
    model, config = load_checkpoint(args.checkpoint)
    config.name = "polyp-default"
    config.training = {**config.training, "bundled_from": str(args.checkpoint), "stored_as": "float16" if args.half else "float32"}
    saved = save_checkpoint(model, BUNDLED_DIR / BUNDLED_NAME, config, half=args.half)
    size = (BUNDLED_DIR / BUNDLED_NAME).stat().st_size / 1e6
    print(f"bundled {saved.version} ({size:.1f} MB) -> {BUNDLED_DIR / BUNDLED_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
