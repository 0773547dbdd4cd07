"""A seeded three-way split of PH2 (../shared/data/ph2/dev) for the bundled skin model.

train (fits the weights) / val (selects the epoch) / test (reported, never used for any choice).
The split is written as folders of symbolic links (``images/`` + ``masks/``) so that ``unetv2 train``
and ``unetv2 evaluate`` read it like any other data folder; the lists go to training/card/ph2_split.json.

    .venv/bin/python training/split_ph2.py --out training/runs/ph2-split
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ph2" / "dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--val", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    stems = sorted(p.stem for p in (args.source / "images").iterdir() if p.suffix == ".jpg")
    random.Random(args.seed).shuffle(stems)
    parts = {"test": sorted(stems[: args.test]), "val": sorted(stems[args.test: args.test + args.val]),
             "train": sorted(stems[args.test + args.val:])}
    for part, names in parts.items():
        for sub, ext in (("images", ".jpg"), ("masks", ".png")):
            folder = args.out / part / sub
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                link = folder / f"{name}{ext}"
                if not link.exists():
                    link.symlink_to((args.source / sub / f"{name}{ext}").resolve())
    card = Path(__file__).resolve().parent / "card" / "ph2_split.json"
    card.write_text(json.dumps({"source": "ph2/dev", "seed": args.seed, **parts}, indent=1) + "\n")
    print({part: len(names) for part, names in parts.items()}, "->", args.out)


if __name__ == "__main__":
    main()
