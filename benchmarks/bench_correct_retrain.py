"""Play a clinician on a domain the polyp model has never seen (PH2 dermoscopy).

Start from the bundled polyp model; for k = 1, 3, 5, 10 take the ground truth of k images as the
corrections, fine-tune (the `finetune` recipe: Adam 1e-3, poly 0.9, structure loss with deep
supervision, SDI + decoder + heads), and score Dice on the same held-out PH2 images (those never used
as corrections) before and after. Prints a table with each round's wall time; writes JSON.

    .venv/bin/python benchmarks/bench_correct_retrain.py [--data ../shared/data/ph2/dev] [--json out.json]
    .venv/bin/python benchmarks/bench_correct_retrain.py --stall   # event-loop lateness during a GUI round
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def rounds(args) -> int:
    from napari_unetv2.checkpoints import bundled_checkpoint
    from napari_unetv2.engine.data import find_pairs
    from napari_unetv2.engine.evaluate import evaluate_pairs
    from napari_unetv2.engine.finetune import finetune_events
    from napari_unetv2.engine.recipes import load_recipe
    from napari_unetv2.inference import Predictor

    pairs = sorted(find_pairs(args.data).pairs, key=lambda p: p.stem)
    random.Random(args.seed).shuffle(pairs)
    pool, held_out = pairs[: max(args.k)], pairs[max(args.k):]
    start = args.checkpoint or bundled_checkpoint()
    base = evaluate_pairs(Predictor(start, device="cpu"), held_out, with_hd95=False)
    rows = []
    for k in args.k:
        out = Path(tempfile.mkdtemp(prefix=f"ph2-k{k}-"))
        recipe = load_recipe("finetune", {"train_parts": args.train_parts, "epochs": args.epochs})
        t0 = time.perf_counter()
        for _ in finetune_events(start, pool[:k], out, recipe, holdout_fraction=0.0, device="cpu"):
            pass
        seconds = time.perf_counter() - t0
        after = evaluate_pairs(Predictor(out / "best.safetensors", device="cpu"), held_out, with_hd95=False)
        rows.append({"k": k, "dice_before": base["dice"], "dice_after": after["dice"], "iou_after": after["iou"],
                     "round_seconds": round(seconds, 1)})
        shutil.rmtree(out, ignore_errors=True)
        print(f"k={k}: Dice {base['dice']:.4f} -> {after['dice']:.4f} in {seconds:.1f} s", flush=True)
    print(f"\nmodel: {start}; data: {args.data}; {len(held_out)} held-out images; train parts: {args.train_parts}; "
          f"epochs: {args.epochs}; torch threads: {torch.get_num_threads()}")
    print(f"{'k':>3} {'Dice before':>12} {'Dice after':>11} {'gain':>7} {'round s':>8}")
    for r in rows:
        print(f"{r['k']:>3} {r['dice_before']:>12.4f} {r['dice_after']:>11.4f} "
              f"{r['dice_after'] - r['dice_before']:>+7.4f} {r['round_seconds']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "held_out": [p.stem for p in held_out],
                                               "corrections": [p.stem for p in pool]}, indent=1))
    return 0


def stall(args) -> int:
    """One retrain round (k=5) driven through the widget in a real viewer; a 20 ms QTimer measures lateness."""
    import os

    os.environ["NAPARI_UNETV2_HOME"] = tempfile.mkdtemp(prefix="unetv2-home-")
    import napari
    from qtpy.QtCore import QElapsedTimer, QTimer

    import napari_unetv2.widgets  # noqa: F401
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.engine.data import find_pairs, load_pair_arrays
    from napari_unetv2.widgets.retrain import RetrainWidget

    pairs = sorted(find_pairs(args.data).pairs, key=lambda p: p.stem)
    random.Random(args.seed).shuffle(pairs)
    cs = CorrectionSet(Path(os.environ["NAPARI_UNETV2_HOME"]) / "corrections")
    for pair in pairs[:5]:
        image, mask = load_pair_arrays(pair)
        cs.add((image * 255).astype("uint8"), mask, source=pair.stem)
    from napari_unetv2.checkpoints import ModelStore

    if args.checkpoint is not None:
        store = ModelStore(Path(os.environ["NAPARI_UNETV2_HOME"]) / "models")
        store.use(store.add(args.checkpoint).version)
    viewer = napari.Viewer(show=True)
    widget = RetrainWidget(viewer, corrections_dir=cs.root)
    viewer.window.add_dock_widget(widget)
    widget.epochs.value = args.epochs
    lateness, spikes, clock, interval = [], [], QElapsedTimer(), 20
    timer = QTimer()
    timer.setInterval(interval)
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        lateness.append(now - last[0] - interval)
        if lateness[-1] > 50:
            spikes.append((round(now / 1000, 2), lateness[-1]))
        last[0] = now

    timer.timeout.connect(tick)
    worker = widget.retrain()
    marks = []
    worker.yielded.connect(lambda e: marks.append((e.kind, round(clock.elapsed() / 1000, 2))) if e.kind != "step" else None)
    started = time.perf_counter()
    timer.start()
    final = {}

    def finish():
        final.update(status=widget.status.value, scores=widget.scores.value)
        viewer.close()

    worker.finished.connect(timer.stop)  # measure the round, not the viewer's shutdown
    worker.finished.connect(lambda: QTimer.singleShot(100, finish))
    napari.run()
    seconds = time.perf_counter() - started
    lateness.sort()
    print(f"retrain round on 5 corrections through the widget: {seconds:.1f} s, {len(lateness)} timer ticks")
    print(f"event-loop lateness (ms): median {lateness[len(lateness) // 2]}, "
          f"p99 {lateness[int(len(lateness) * 0.99)]}, max {lateness[-1]}")
    print(f"events (kind, seconds): {marks}")
    print(f"ticks later than 50 ms (seconds since start, ms late): {spikes[:20]}")
    print(f"status: {final.get('status')}; held-out Dice: {final.get('scores')}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ph2" / "dev")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-parts", default="sdi-decoder", choices=["sdi-decoder", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--stall", action="store_true", help="measure event-loop lateness during a GUI round")
    args = parser.parse_args()
    return stall(args) if args.stall else rounds(args)


if __name__ == "__main__":
    sys.exit(main())
