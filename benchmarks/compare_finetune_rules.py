"""Design measurement behind the fine-tuning defaults (engine/finetune.py): which checkpoint to keep
when a round has only a few corrections. Not a user path: the rules other than the default are
rebuilt here from the engine's parts to compare them on equal terms.

Rules, each from the bundled polyp model on k corrected PH2 images (same draws, same evaluation set as
bench_correct_retrain.py: a fixed set of --n-eval images never corrected):
  holdout-best   the former default: 20% of the corrections held out (when 3+), the epoch with the best
                 Dice on them kept
  all-best-loss  all corrections train, the epoch with the lowest train loss kept (the former benchmark)
  all-last       all corrections train, the last epoch of the fixed schedule kept (finetune_events' default)

    nice -n 10 .venv/bin/python benchmarks/compare_finetune_rules.py --k 5 --draws 4 \\
        --json benchmarks/results/finetune_rules.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_correct_retrain import REPO, draw_corrections, per_image_dice, split_for_evaluation  # noqa: E402

RULES = ("holdout-best", "all-best-loss", "all-last")


def train_with_rule(rule: str, start: Path, corrections: list, out: Path) -> Path:
    from napari_unetv2.checkpoints import read_config
    from napari_unetv2.engine.finetune import finetune_events, finetune_recipe
    from napari_unetv2.engine.loop import BEST, TrainJob, run_training
    from napari_unetv2.engine.pairs import split_pairs

    if rule == "all-last":
        events = finetune_events(start, corrections, out)
        while True:
            try:
                next(events)
            except StopIteration as finished:
                return finished.value.checkpoint
    recipe = finetune_recipe()
    parent = read_config(start)
    if rule == "holdout-best" and len(corrections) >= 3:
        train, held_out = split_pairs(corrections, 0.2, recipe.seed)
    else:
        train, held_out = list(corrections), []
    job = TrainJob(recipe=recipe.with_overrides({"input_size": list(parent.input_size)}), train_pairs=train,
                   val_pairs=held_out, out_dir=out, device="cpu", init_checkpoint=start, keep="best", resumable=False)
    for _ in run_training(job):
        pass
    return out / BEST


def main() -> int:
    from napari_unetv2.checkpoints import bundled_checkpoint
    from napari_unetv2.engine.pairs import find_pairs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ph2" / "dev")
    parser.add_argument("--k", type=int, nargs="+", default=[5])
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--n-eval", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    evaluation, pool = split_for_evaluation(find_pairs(args.data).pairs, args.n_eval, args.seed)
    start = bundled_checkpoint()
    base_images = per_image_dice(start, evaluation)
    base = statistics.fmean(base_images.values())
    runs = []
    for k in args.k:
        for draw in range(args.draws):
            corrections = draw_corrections(pool, k, draw, args.seed)
            for rule in args.rules:
                out = Path(tempfile.mkdtemp(prefix=f"rule-{rule}-"))
                t0 = time.perf_counter()
                checkpoint = train_with_rule(rule, start, corrections, out)
                seconds = time.perf_counter() - t0
                after = per_image_dice(checkpoint, evaluation)
                runs.append({"rule": rule, "k": k, "draw": draw, "gain": statistics.fmean(after.values()) - base,
                             "seconds": round(seconds, 1), "per_image_dice": after})
                shutil.rmtree(out, ignore_errors=True)
                print(f"k={k} draw {draw} {rule}: gain {runs[-1]['gain']:+.4f} ({seconds:.0f} s)", flush=True)
    print(f"\nbase Dice {base:.4f} on {len(evaluation)} evaluation images; per-image sd of the base model "
          f"{statistics.stdev(base_images.values()):.3f}\n")
    print("| rule | k | gain mean ± sd | worst draw | per-image Dice sd after (mean over draws) |")
    print("|---|---|---|---|---|")
    summary = []
    for k in args.k:
        for rule in args.rules:
            mine = [r for r in runs if r["rule"] == rule and r["k"] == k]
            gains = [r["gain"] for r in mine]
            sd_images = statistics.fmean(statistics.stdev(r["per_image_dice"].values()) for r in mine)
            row = {"rule": rule, "k": k, "gain_mean": statistics.fmean(gains),
                   "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0, "gain_min": min(gains),
                   "per_image_sd_after": sd_images}
            summary.append(row)
            print(f"| {rule} | {k} | {row['gain_mean']:+.3f} ± {row['gain_sd']:.3f} | {row['gain_min']:+.3f} | {sd_images:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "base_dice": base,
                                               "summary": summary, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
