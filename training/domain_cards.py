"""The bundled models' domain cards (``napari_unetv2/weights/domains.json``): what their training images look like,
as colour signatures (``napari_unetv2/inference/domain.py``), for the hint that another bundled model fits an image.

    .venv/bin/python training/domain_cards.py            # write the cards from the models' training images
    .venv/bin/python training/domain_cards.py --check    # how often the hint comes on held-out images

The polyp model's card is made from ``polypgen/train`` (all of it), the skin model's from the PH2 split's training
part (``training/card/ph2_split.json``): the images each model was fitted on. ``--check`` judges images neither card
was made from: ``polypgen/val``, ``kvasir_seg_samples`` and the PH2 split's test part.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
IMAGES = {".jpg", ".jpeg", ".png"}


def signatures(paths) -> np.ndarray:
    from napari_unetv2.files import read_image
    from napari_unetv2.inference.domain import colour_signature

    return np.array([colour_signature(read_image(p)) for p in paths])


def folder(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGES)


def ph2_part(part: str) -> list[Path]:
    names = json.loads((REPO / "training" / "card" / "ph2_split.json").read_text())[part]
    return [DATA / "ph2" / "dev" / "images" / f"{name}.jpg" for name in names]


def card(images: str, paths: list[Path], source: str) -> dict:
    found = signatures(paths)
    mean, cov = found.mean(0), np.cov(found.T) + 1e-6 * np.eye(found.shape[1])
    d = found - mean
    distances = np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))
    return {"images": images, "from": source, "n": len(paths), "mean": mean.tolist(), "cov": cov.tolist(),
            "limit": float(np.percentile(distances, 99))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="judge held-out images with the installed cards")
    args = parser.parse_args()
    from napari_unetv2.inference.domain import CARDS_FILE, better_bundled_model, domain_cards

    if not args.check:
        cards = {"polyp": card("colonoscopy frames (PolypGen)", folder(DATA / "polypgen" / "train" / "images"),
                               "polypgen/train"),
                 "skin": card("dermoscopy images (PH2)", ph2_part("train"), "ph2/dev, the split's train part")}
        text = {"what": "per-channel mean and std at 64x64 of each bundled model's training images: their mean, "
                        "covariance and the 99th percentile of their Mahalanobis distances (training/domain_cards.py)",
                "cards": cards}
        CARDS_FILE.write_text(json.dumps(text, indent=1) + "\n")
        print(f"wrote {CARDS_FILE}: " + ", ".join(f"{k} from {v['n']} images, limit {v['limit']:.2f}"
                                                  for k, v in cards.items()))
        return 0
    from napari_unetv2.checkpoints.lines import bundled_versions
    from napari_unetv2.files import read_image

    version = {name: v for v, name in bundled_versions().items()}
    domain_cards.cache_clear()
    held_out = {"polypgen/val": folder(DATA / "polypgen" / "val" / "images"),
                "kvasir_seg_samples": folder(DATA / "kvasir_seg_samples" / "images"),
                "ph2 split test": ph2_part("test")}
    print("| images | n | polyp model in use: hint 'skin' | skin model in use: hint 'polyp' |\n|---|---|---|---|")
    for name, paths in held_out.items():
        hints = {model: sum(better_bundled_model(read_image(p), version[model]) is not None for p in paths)
                 for model in ("polyp", "skin")}
        print(f"| {name} | {len(paths)} | {hints['polyp']} | {hints['skin']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
