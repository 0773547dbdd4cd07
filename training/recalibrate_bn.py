"""Recompute a checkpoint's BatchNorm statistics on training frames (SWA's last step, Izmailov et al. 2018).

    .venv/bin/python training/recalibrate_bn.py SOUP.safetensors --data ../shared/data/polypgen/train
        --out training/runs/soups/soup-bn.safetensors

A weight average (``average_checkpoints.py``) averages BatchNorm's running statistics too, but the
averaged network's activations are not the average of its ingredients' activations, so those
statistics no longer describe it. This pass runs the averaged network over the training frames in
training mode, without updating a single weight, and stores for each BatchNorm layer the mean over
batches of its batch means and batch variances (``torch.optim.swa_utils.update_bn``, PyTorch's own
implementation: a cumulative average instead of training's exponential one). Those are the statistics
training keeps, so the batches are drawn as training draws them: shuffled (seeded), training's batch
size. In file-name order a batch would hold consecutive frames of one video, whose variance is far
smaller than a shuffled batch's. Frames are resized to the checkpoint's input size as training resizes
them and are not augmented: the statistics should describe the frames the network meets at inference.
Choose between the result and its source on the validation set only, as for any checkpoint.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from napari_unetv2.checkpoints import load_checkpoint, save_derived_checkpoint
from napari_unetv2.engine.data import PairDataset, find_pairs


def shuffled_batches(dataset, batch_size: int, seed: int) -> DataLoader:
    """The dataset in shuffled batches, the same order for the same seed (the test rebuilds it)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))


def recalibrate(model: torch.nn.Module, dataset: PairDataset, batch_size: int = 8, seed: int = 0) -> int:
    """Reset and recompute every BatchNorm layer's running statistics over ``dataset``; returns the layer count.

    Weights are untouched and the model is left in eval mode.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ValueError("The network has no BatchNorm layer; there is nothing to recalibrate.")
    update_bn(shuffled_batches(dataset, batch_size, seed), model)  # feeds each batch's images (no gradients)
    model.eval()
    return len(layers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="training folder (image/mask pairs)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the checkpoint's training batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batches' shuffle")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new name (nothing was overwritten).")
    model, config = load_checkpoint(args.checkpoint)
    pairs = find_pairs(args.data).pairs
    dataset = PairDataset(pairs, config.input_size, config.normalization, augment=None)
    batch_size = args.batch_size or int(config.recipe.get("batch_size", 8))
    count = recalibrate(model, dataset, batch_size, args.seed)
    how = f"{len(pairs)} frames, not augmented, shuffled batches of {batch_size}, seed {args.seed}"
    command = "training/recalibrate_bn.py " + " ".join(argv if argv is not None else sys.argv[1:])
    saved = save_derived_checkpoint(model, args.out, config, config.version,
                                    {"bn_recalibrated_on": f"{args.data} ({how})", "command": command})
    print(f"recomputed {count} BatchNorm layers on {len(pairs)} frames -> {args.out} (version {saved.version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
