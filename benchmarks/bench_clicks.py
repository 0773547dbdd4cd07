"""The interactive-segmentation benchmark for click corrections (NoC, IoU after k clicks), with the plugin's defaults.

For each image: the model's proposal (the Segment widget's defaults: the checkpoint's mode and threshold),
then simulated clicks (``napari_unetv2.interactive.simulate``: the largest error region, at its pixel
farthest from the boundary; positive in a false negative, negative in a false positive), applied by the
same ``ClickSession`` the click widget uses, up to 20. Reported: NoC@85 / NoC@90 (clicks to reach the
IoU, 20 when never reached) and mean IoU after 0, 1, 3, 5 clicks; the same after a box first (the
ground truth's bounding box widened by ``--box-margin`` pixels each side, as box-prompt benchmarks do).

Clicks and retraining: the first ten PH2 dev images are corrected by clicks (until IoU 0.90, at most 20),
stored in a correction set with their click counts, one fine-tuning round runs on them
(``finetune_events`` with its defaults), and NoC@90 on the second half of PH2 dev is measured before
and after. Latency: each click on the 1232x1048 frames of ``polypgen_fullres`` is timed.

    nice -n 10 .venv/bin/python benchmarks/bench_clicks.py            # everything; table + JSON in benchmarks/results/
    .venv/bin/python benchmarks/bench_clicks.py --limit 20 --no-retrain   # a quick look
    xvfb-run -a .venv/bin/python benchmarks/bench_clicks.py --widget     # click latency through the widget
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout's code, not whichever copy the venv has installed

from napari_unetv2.corrections import CorrectionSet  # noqa: E402
from napari_unetv2.engine.metrics import dice_iou_mae  # noqa: E402
from napari_unetv2.engine.pairs import find_pairs  # noqa: E402
from napari_unetv2.files import read_image, read_mask  # noqa: E402
from napari_unetv2.inference import Predictor  # noqa: E402
from napari_unetv2.interactive import ClickSession, next_click  # noqa: E402
from napari_unetv2.interactive.box import box_probability, clip_box  # noqa: E402
from napari_unetv2.interactive.simulate import clicks_to_reach  # noqa: E402

DATA = REPO.parent / "shared" / "data"
MAX_CLICKS = 20
REPORTED_CLICKS = (0, 1, 3, 5)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return dice_iou_mae(mask > 0, truth > 0)[1]


def proposal_session(prediction) -> ClickSession:
    """What the user has after pressing Segment and opening the click tools: the proposal and its probability."""
    return ClickSession(prediction.mask.copy(), prediction.probability, threshold=prediction.info["threshold"])


def start_session(predictor: Predictor, image: np.ndarray) -> ClickSession:
    return proposal_session(predictor.predict(image))


def truth_box(truth: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(truth)
    return clip_box(truth.shape, rows.min() - margin, cols.min() - margin, rows.max() + 1 + margin, cols.max() + 1 + margin)


def click_until(session: ClickSession, truth: np.ndarray, clicks: int, stop_at: float = 1.1,
                timings: list | None = None) -> list[float]:
    """IoU after 0..clicks simulated clicks (stops early when the mask is perfect or reaches ``stop_at``)."""
    ious = [iou(session.mask, truth)]
    for _ in range(clicks):
        if ious[-1] >= stop_at:
            break
        click = next_click(session.mask, truth)
        if click is None:
            break
        started = time.perf_counter()
        (session.positive if click.positive else session.negative)(click.y, click.x)
        if timings is not None:
            timings.append((time.perf_counter() - started) * 1000)
        ious.append(iou(session.mask, truth))
    return ious + [ious[-1]] * (clicks + 1 - len(ious))  # a perfect mask stays perfect


def summarise(curves: list[list[float]]) -> dict:
    out = {"images": len(curves),
           "noc85": statistics.mean(clicks_to_reach(c, 0.85, MAX_CLICKS) for c in curves),
           "noc90": statistics.mean(clicks_to_reach(c, 0.90, MAX_CLICKS) for c in curves),
           "failed90": sum(clicks_to_reach(c, 0.90, MAX_CLICKS) == MAX_CLICKS and c[MAX_CLICKS] < 0.90 for c in curves)}
    for k in REPORTED_CLICKS:
        out[f"iou@{k}"] = statistics.mean(c[k] for c in curves)
    return out


def dataset_rows(predictor: Predictor, folder: Path, limit: int | None, box_margin: int) -> list[dict]:
    pairs = sorted(find_pairs(folder).pairs, key=lambda p: p.stem)[:limit]
    plain, boxed, box_ms = [], [], []
    for n, pair in enumerate(pairs, start=1):
        image, truth = read_image(pair.image), read_mask(pair.mask)
        prediction = predictor.predict(image)  # one proposal for both starts
        plain.append(click_until(proposal_session(prediction), truth, MAX_CLICKS))
        if truth.any():
            session = proposal_session(prediction)
            box = truth_box(truth, box_margin)
            started = time.perf_counter()
            session.box(*box, box_probability(predictor, image, box, session.probability))
            box_ms.append((time.perf_counter() - started) * 1000)
            boxed.append(click_until(session, truth, MAX_CLICKS))
        if n % 10 == 0:  # the running summary, so a stopped run still tells what it measured
            print(f"  {folder.name}: first {n}/{len(pairs)} images: proposal {summarise(plain)}; box {summarise(boxed)}", flush=True)
    name = f"{folder.parent.name}/{folder.name}"
    return [{"data": name, "start": "proposal", **summarise(plain)},
            {"data": name, "start": f"proposal + box (GT box + {box_margin} px)", **summarise(boxed),
             "box_ms_median": statistics.median(box_ms)}]


def retrain_rows(predictor: Predictor, folder: Path, work: Path, target: float = 0.90) -> tuple[list[dict], dict]:
    """Clicks on the first ten images -> correction set -> one fine-tuning round -> NoC@90 on the second half."""
    from napari_unetv2.checkpoints import bundled_checkpoint
    from napari_unetv2.engine.finetune import finetune_events

    pairs = sorted(find_pairs(folder).pairs, key=lambda p: p.stem)
    first, second = pairs[:10], pairs[len(pairs) // 2:]
    corrections = CorrectionSet(work / "corrections")
    spent = []
    for pair in first:
        image, truth = read_image(pair.image), read_mask(pair.mask)
        session = start_session(predictor, image)
        proposal = session.mask.copy()
        curve = click_until(session, truth, MAX_CLICKS, stop_at=target)  # a user stops once the mask is good
        spent.append(session.clicks)
        corrections.add(image, session.mask, source=pair.stem, model_version=predictor.config.version,
                        predicted_mask=proposal, clicks=session.clicks)
        print(f"  correction {pair.stem}: {session.clicks} clicks, IoU {curve[0]:.3f} -> {curve[-1]:.3f}", flush=True)
    started = time.perf_counter()
    events = finetune_events(bundled_checkpoint(), corrections.pairs(), work / "round", device="cpu")
    while True:
        try:
            next(events)
        except StopIteration as finished:
            result = finished.value
            break
    seconds = time.perf_counter() - started
    retrained = Predictor(result.checkpoint, device="cpu")
    rows = []
    for label, model in (("bundled model", predictor), ("after one retrain round", retrained)):
        curves = [click_until(start_session(model, read_image(p.image)), read_mask(p.mask), MAX_CLICKS) for p in second]
        rows.append({"data": f"{folder.parent.name}/{folder.name} second half", "start": label, **summarise(curves)})
    info = {"corrections": [p.stem for p in first], "clicks_spent": spent, "round_seconds": round(seconds, 1),
            "evaluated_on": [p.stem for p in second], "held_out_by_finetune": result.held_out}
    return rows, info


def latency(predictor: Predictor, folder: Path) -> dict:
    """Milliseconds per click (ClickSession only: the widget adds a layer refresh) and per undo on 1232x1048 frames."""
    clicks, undos = [], []
    for pair in sorted(find_pairs(folder).pairs, key=lambda p: p.stem):
        image, truth = read_image(pair.image), read_mask(pair.mask)
        if image.shape[:2] != (1048, 1232):
            continue
        session = start_session(predictor, image)
        click_until(session, truth, MAX_CLICKS, timings=clicks)
        while session.history:
            started = time.perf_counter()
            session.undo()
            undos.append((time.perf_counter() - started) * 1000)
    ordered = sorted(clicks)
    return {"frames": "1232x1048", "clicks": len(clicks), "click_ms_median": statistics.median(clicks),
            "click_ms_p95": ordered[int(0.95 * (len(ordered) - 1))], "click_ms_max": ordered[-1],
            "undo_ms_median": statistics.median(undos), "undo_ms_max": max(undos)}


def widget_latency(args) -> int:
    """Milliseconds per click through the widget in a real viewer (session + mask layer refresh + Qt events)."""
    import napari
    from qtpy.QtWidgets import QApplication

    import napari_unetv2.widgets  # noqa: F401  (the import guard, before the viewer exists)
    from napari_unetv2.widgets._layers import show_prediction
    from napari_unetv2.widgets.clicks import ClickWidget

    viewer = napari.Viewer(show=True)
    widget = ClickWidget(viewer)
    viewer.window.add_dock_widget(widget)
    predictor = Predictor(args.checkpoint, device="cpu")
    clicks, undos = [], []
    for pair in sorted(find_pairs(args.latency_data).pairs, key=lambda p: p.stem):
        image, truth = read_image(pair.image), read_mask(pair.mask)
        if image.shape[:2] != (1048, 1232):
            continue
        layer = viewer.add_image(image, name=pair.stem, rgb=True)
        show_prediction(viewer, layer, predictor.predict(image), predictor.config.version)
        widget.reset_choices()
        widget.image.value = layer
        widget.start()
        mask = viewer.layers[f"{pair.stem} mask"]
        QApplication.processEvents()
        for _ in range(MAX_CLICKS):
            click = next_click(mask.data, truth)
            if click is None:
                break
            started = time.perf_counter()
            widget.click(click.y, click.x, positive=click.positive)
            QApplication.processEvents()
            clicks.append((time.perf_counter() - started) * 1000)
        while widget.session().history:
            started = time.perf_counter()
            widget.undo()
            QApplication.processEvents()
            undos.append((time.perf_counter() - started) * 1000)
    viewer.close()
    ordered = sorted(clicks)
    result = {"frames": "1232x1048", "clicks": len(clicks), "click_ms_median": statistics.median(clicks),
              "click_ms_p95": ordered[int(0.95 * (len(ordered) - 1))], "click_ms_max": ordered[-1],
              "undo_ms_median": statistics.median(undos), "undo_ms_max": max(undos), "machine": args.machine}
    line = (f"Through the widget in a viewer (click + mask layer refresh + Qt events), {result['frames']} frames, "
            f"{result['clicks']} clicks: median {result['click_ms_median']:.1f} ms, p95 {result['click_ms_p95']:.1f} ms, "
            f"max {result['click_ms_max']:.1f} ms; undo median {result['undo_ms_median']:.1f} ms, max {result['undo_ms_max']:.1f} ms.")
    print(line)
    out = args.out.with_name(args.out.name + "_widget")
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(f"`xvfb-run -a nice -n 10 .venv/bin/python benchmarks/bench_clicks.py --widget`\n\n{line}\n")
    return 0


def markdown(rows: list[dict], speed: dict | None, machine: str) -> str:
    lines = [f"Machine: {machine}.", "",
             "| data | start | images | NoC@85 | NoC@90 | not at 0.90 after 20 | IoU@0 | IoU@1 | IoU@3 | IoU@5 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['start']} | {r['images']} | {r['noc85']:.2f} | {r['noc90']:.2f} | {r['failed90']} | "
                     + " | ".join(f"{r[f'iou@{k}']:.3f}" for k in REPORTED_CLICKS) + " |")
    if speed:
        lines += ["", f"Click latency on {speed['frames']} frames ({speed['clicks']} clicks): median "
                  f"{speed['click_ms_median']:.1f} ms, p95 {speed['click_ms_p95']:.1f} ms, max {speed['click_ms_max']:.1f} ms; "
                  f"undo median {speed['undo_ms_median']:.2f} ms."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="*", default=[DATA / "polypgen" / "val", DATA / "ph2" / "dev"])
    parser.add_argument("--retrain-data", type=Path, default=DATA / "ph2" / "dev")
    parser.add_argument("--latency-data", type=Path, default=DATA / "polypgen_fullres")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (a quick look)")
    parser.add_argument("--box-margin", type=int, default=10)
    parser.add_argument("--no-retrain", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--machine", default="2-core CPU shared with other work")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "clicks")
    parser.add_argument("--widget", action="store_true", help="time clicks through the widget in a viewer (needs a display)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.widget:
        return widget_latency(args)
    predictor = Predictor(args.checkpoint, device="cpu")
    rows = []
    for folder in args.data:
        rows += dataset_rows(predictor, folder, args.limit, args.box_margin)
        print(markdown(rows, None, args.machine), flush=True)
    speed = latency(predictor, args.latency_data) if args.latency_data.is_dir() else None
    retrain = None
    if not args.no_retrain:
        with tempfile.TemporaryDirectory(prefix="clicks-retrain-") as work:
            retrain_table, retrain = retrain_rows(predictor, args.retrain_data, Path(work))
        rows += retrain_table
    table = markdown(rows, speed, args.machine)
    print(table)
    command = "nice -n 10 .venv/bin/python benchmarks/bench_clicks.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(f"`{command.strip()}`\n\n{table}")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command.strip(), "model": predictor.description, "machine": args.machine, "torch_threads": args.threads,
         "max_clicks": MAX_CLICKS, "box_margin_px": args.box_margin, "rows": rows, "latency": speed, "retrain": retrain},
        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
