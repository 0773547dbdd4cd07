"""Pack an image/mask folder at the training input size, small enough to travel to a lent GPU machine.

    .venv/bin/python scripts/pack_pairs.py SRC OUT --size 320 [--quality 92]

SRC holds images/ and masks/ (as ``unetv2 train --data`` reads them). Each pair is resized exactly as
``PairDataset`` resizes it (``engine.data.resized_pair``: antialiased bilinear for the image, bilinear +
0.5 threshold for the mask), so training on OUT at the same ``--input-size`` sees the same pixels except for
the JPEG re-encoding of the image (masks are written losslessly as PNG). Used by scripts/gpu_run.sh's callers:
the lent machine gets the working tree only (64 MiB in all), and PolypGen's train/ is 69 MB as shipped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import imageio.v3 as iio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from napari_unetv2.engine.data import resized_pair  # noqa: E402
from napari_unetv2.engine.pairs import find_pairs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args()
    pairs = find_pairs(args.src).pairs
    stems = [pair.image.stem for pair in pairs]
    if len(set(stems)) != len(stems):  # the copies are named by stem: one would overwrite another
        sys.exit(f"{args.src}: images in different folders share a name; cannot pack them into one folder.")
    (args.out / "images").mkdir(parents=True, exist_ok=False)
    (args.out / "masks").mkdir(parents=True, exist_ok=False)
    size = (args.size, args.size)
    for pair in pairs:
        image, mask = resized_pair(pair, size)
        iio.imwrite(args.out / "images" / f"{pair.image.stem}.jpg", image.permute(1, 2, 0).numpy(), quality=args.quality)
        iio.imwrite(args.out / "masks" / f"{pair.image.stem}.png", mask[0].numpy() * 255)
    print(f"{len(pairs)} pairs at {args.size}x{args.size} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
