"""Play a clinician on a domain the polyp model has never seen (PH2 dermoscopy), on the users' path.

A fixed evaluation set (``--n-eval`` images, seeded) is set aside first; the corrections are drawn from
the remaining images only. For k = 1, 3, 5, 10 and each of ``--draws`` random draws of which k images
are corrected, the widget's path without the GUI: the k images, their ground truth as the corrected
masks and the bundled model's masks as shown go into a fresh correction set (prospective scores
recorded at accept time), then one round of ``retrain_events`` with the widget's defaults, which runs
``finetune_events`` (the function behind ``unetv2 finetune`` too: this script passes the data only).
Reported per k, mean +- sd over the draws: the Dice gain on the evaluation images (never corrected in
any draw), the round's wall time, and the prospective score: the starting model's Dice on each image
before it was corrected. Prints a markdown table; writes JSON.

    nice -n 10 .venv/bin/python benchmarks/bench_correct_retrain.py [--data ../shared/data/ph2/dev] \
        [--json benchmarks/results/ph2_rounds.json] [--threads 2]
    .venv/bin/python benchmarks/bench_correct_retrain.py --stall   # event-loop lateness during a GUI round
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, wherever the script is started from
KS = (1, 3, 5, 10)


def split_for_evaluation(pairs: list, n_eval: int, seed: int) -> tuple[list, list]:
    """(evaluation set, pool to draw corrections from): seeded, independent of file-system order."""
    ordered = sorted(pairs, key=lambda p: p.stem)
    random.Random(seed).shuffle(ordered)
    return ordered[:n_eval], ordered[n_eval:]


def draw_corrections(pool: list, k: int, draw: int, seed: int) -> list:
    """Draw ``draw`` of k images: seeded, and never the same set as an earlier draw of the same k."""
    earlier = {frozenset(p.stem for p in draw_corrections(pool, k, d, seed)) for d in range(draw)}
    rng = random.Random(f"{seed}-{k}-{draw}")
    chosen = rng.sample(pool, k)
    while frozenset(p.stem for p in chosen) in earlier and len(earlier) < len(pool):
        chosen = rng.sample(pool, k)
    return chosen


def per_image_dice(checkpoint: Path, pairs: list) -> dict[str, float]:
    from napari_unetv2.engine.evaluate import evaluate_pairs
    from napari_unetv2.inference import Predictor

    result = evaluate_pairs(Predictor(checkpoint, device="cpu"), pairs, with_hd95=False)
    return {s["name"]: s["dice"] for s in result["images"]}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def shown_masks(checkpoint: Path, pairs: list) -> dict:
    """{stem: (image, ground truth, the starting model's mask as the widget shows it)}."""
    from napari_unetv2.files import read_image, read_mask
    from napari_unetv2.inference import Predictor

    predictor = Predictor(checkpoint, device="cpu")
    found = {}
    for pair in pairs:
        image = read_image(pair.image)
        found[pair.stem] = (image, read_mask(pair.mask), predictor.predict(image, rgb=True).mask)
    return found


def one_round(start: Path, corrections: list, masks: dict, overrides: dict | None = None):
    """What a clinician does: accept k corrections (with the mask that was shown) into a new correction
    set, press Retrain with the widget's defaults; returns (outcome, the set's entries, seconds)."""
    from napari_unetv2.checkpoints import ModelStore, read_config
    from napari_unetv2.corrections import CorrectionSet
    from napari_unetv2.corrections.retrain import retrain_events

    home = Path(tempfile.mkdtemp(prefix="ph2-round-"))
    try:
        store = ModelStore(home / "models")
        store.use(store.add(start).version)
        correction_set = CorrectionSet(home / "corrections")
        version = read_config(start).version
        for pair in corrections:
            image, truth, shown = masks[pair.stem]
            correction_set.add(image, truth, source=pair.stem, model_version=version, predicted_mask=shown)
        t0, cpu0 = time.perf_counter(), time.process_time()
        events, skipped = retrain_events(store, correction_set, overrides=overrides), 0
        while True:
            try:
                event = next(events)
            except StopIteration as finished:
                outcome = finished.value
                break
            if event.kind == "epoch":  # float16 updates GradScaler skipped (CUDA only)
                skipped += event.metrics.get("skipped_steps", 0)
        seconds = (time.perf_counter() - t0, time.process_time() - cpu0)
        outcome.skipped_steps = skipped
        # the evaluation reads the new version from the store, so keep the folder until the caller is done
        return outcome, correction_set.entries(), seconds, store, home
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise


def rounds(args) -> int:
    from napari_unetv2.checkpoints import bundled_checkpoint
    from napari_unetv2.engine.intervals import mean_interval
    from napari_unetv2.engine.pairs import find_pairs
    from napari_unetv2.engine.recipes import parse_override

    torch.set_num_threads(args.threads)
    evaluation, pool = split_for_evaluation(find_pairs(args.data).pairs, args.n_eval, args.seed)
    if len(pool) < max(args.k):
        raise SystemExit(f"{args.data}: {len(pool)} images left after the evaluation set, fewer than k={max(args.k)}")
    start = args.checkpoint or bundled_checkpoint()
    overrides = dict(parse_override(s) for s in args.set) or None
    base_eval = per_image_dice(start, evaluation)
    base = statistics.fmean(base_eval.values())
    masks = shown_masks(start, pool)
    print(f"starting model {start}: Dice {base:.4f} on the {len(evaluation)} evaluation images", flush=True)
    runs = []
    for k in args.k:
        for draw in range(args.draws):
            corrections = draw_corrections(pool, k, draw, args.seed)
            outcome, entries, (seconds, cpu_seconds), store, home = one_round(start, corrections, masks, overrides)
            try:
                after = per_image_dice(store.path_of(outcome.config.version), evaluation)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            result, dice_after = outcome.result, statistics.fmean(after.values())
            reference = result.reference
            runs.append({
                "k": k, "draw": draw, "corrections": [p.stem for p in corrections],
                "trained_on": len(result.trained_on), "held_out": len(result.held_out),
                "dice_after": dice_after, "gain": dice_after - base, "round_seconds": round(seconds, 1),
                "round_cpu_seconds": round(cpu_seconds, 1), "skipped_steps": outcome.skipped_steps,
                "prospective_dice": [e.prospective_dice for e in entries],
                "parent_prospective": outcome.parent_prospective.as_dict(),
                "adoption": outcome.adoption.reason,
                "reference_dice_parent": reference.get("parent", {}).get("dice"),
                "reference_dice_new": reference.get("new", {}).get("dice"),
            })
            print(f"k={k} draw {draw}: Dice {base:.4f} -> {dice_after:.4f} ({dice_after - base:+.4f}) "
                  f"in {seconds:.1f} s ({cpu_seconds:.1f} s CPU, {outcome.skipped_steps} float16 updates skipped); "
                  f"trained on {len(result.trained_on)}, held out {len(result.held_out)}; "
                  f"prospective {outcome.parent_prospective.describe()}", flush=True)

    rows = []
    for k in args.k:
        mine = [r for r in runs if r["k"] == k]
        gain, gain_sd = _mean_sd([r["gain"] for r in mine])
        after, after_sd = _mean_sd([r["dice_after"] for r in mine])
        secs, secs_sd = _mean_sd([r["round_seconds"] for r in mine])
        cpu = statistics.fmean(r["round_cpu_seconds"] for r in mine)
        prospective = mean_interval([d for r in mine for d in r["prospective_dice"]])
        forgetting = [r["reference_dice_new"] - r["reference_dice_parent"] for r in mine if r["reference_dice_new"] is not None]
        rows.append({"k": k, "draws": len(mine), "dice_before": base, "dice_after_mean": after, "dice_after_sd": after_sd,
                     "gain_mean": gain, "gain_sd": gain_sd, "gain_min": min(r["gain"] for r in mine),
                     "round_seconds_mean": secs, "round_seconds_sd": secs_sd, "round_cpu_seconds_mean": cpu,
                     "prospective": prospective.as_dict(), "prospective_text": prospective.describe(),
                     "reference_dice_change_mean": statistics.fmean(forgetting) if forgetting else None})

    from napari_unetv2.devices import resolve_device

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    machine = (f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, {platform.node()}; rounds on "
               f"{resolve_device('auto')}{f' ({gpu})' if gpu else ''} (the widget's device auto), scoring on the CPU")
    print(f"\nmodel: {start}; data: {args.data}; {len(evaluation)} evaluation images (never corrected), "
          f"corrections drawn from the other {len(pool)}; {args.draws} draws per k; {machine}"
          f"{f'; recipe changed (not the widget default): {overrides}' if overrides else ''}\n")
    print("| k | Dice before | Dice after (mean ± sd) | gain (mean ± sd) | worst draw | round s (mean ± sd) | round CPU s "
          "| prospective Dice of the starting model | polyp samples Dice change |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = r["reference_dice_change_mean"]
        print(f"| {r['k']} | {r['dice_before']:.3f} | {r['dice_after_mean']:.3f} ± {r['dice_after_sd']:.3f} "
              f"| {r['gain_mean']:+.3f} ± {r['gain_sd']:.3f} | {r['gain_min']:+.3f} "
              f"| {r['round_seconds_mean']:.1f} ± {r['round_seconds_sd']:.1f} | {r['round_cpu_seconds_mean']:.1f} "
              f"| {r['prospective_text']} "
              f"| {'-' if ref is None else f'{ref:+.3f}'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": " ".join(sys.argv), "machine": machine, "overrides": overrides, "model": str(start), "data": str(args.data),
            "evaluation": [p.stem for p in evaluation], "pool": [p.stem for p in pool], "dice_before": base,
            "rows": rows, "runs": runs}, indent=1) + "\n")
        print(f"wrote {args.json}")
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
    if args.epochs is not None:
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
    parser.add_argument("--k", type=int, nargs="+", default=list(KS))
    parser.add_argument("--draws", type=int, default=5, help="random draws of the corrected images per k")
    parser.add_argument("--n-eval", type=int, default=60, help="size of the fixed evaluation set")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--epochs", type=int, default=None, help="--stall only: the widget's epochs (default: its own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of the finetune recipe (a design comparison, not the widget's path)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--stall", action="store_true", help="measure event-loop lateness during a GUI round")
    args = parser.parse_args()
    return stall(args) if args.stall else rounds(args)


if __name__ == "__main__":
    sys.exit(main())
