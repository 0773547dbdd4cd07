"""How long *Next* takes in the annotation session: from the click to the next image and its proposal
on screen, with the background pre-computation (the session's default) and without it (cold).

Drives the user's path: the *Annotate a folder* widget in a real viewer, the model in use (the bundled
model unless the store says otherwise), device ``auto``. A person looks at an image for a few seconds
before pressing Next; the benchmark waits until the background computation of the next image is done
(``warm``), as that person would, then times Next. ``cold`` empties the cache first (what Next costs
without pre-computation). Also prints the event-loop lateness (a 20 ms QTimer) over the whole run.

    xvfb-run -a .venv/bin/python benchmarks/bench_session.py [--images DIR] [--n 10] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, also when another copy is installed
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "ph2" / "dev" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES if DEFAULT_IMAGES.is_dir() else REPO / "sample_data" / "images")
    parser.add_argument("--n", type=int, default=10, help="images in the session (the first n of the folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "session.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("NAPARI_UNETV2_HOME", tempfile.mkdtemp(prefix="bench-session-home-"))
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
    from napari_unetv2.widgets.session import SessionWidget

    work = Path(tempfile.mkdtemp(prefix="bench-session-"))
    folder = work / "images"
    folder.mkdir()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
    for path in files[: args.n]:
        shutil.copy2(path, folder / path.name)

    viewer = napari.Viewer(show=True)
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate a folder")
    app = QApplication.instance()
    from _event_loop import EventLoopMeter

    meter = EventLoopMeter(app, status=lambda: widget.status.value)
    meter.phase = "opening"
    meter.start()
    pump_until, look_at_image, lateness = meter.pump_until, meter.look, meter.lateness

    widget.images.value, widget.session_folder.value = str(folder), str(work / "session")
    widget.open_session()
    pump_until(lambda: widget.shown_path == widget.session.current)
    key = widget._model_key()
    rows = {"warm": [], "cold": []}
    n_images = len(widget.session)
    for step in range(n_images - 1):
        mode = "warm" if step % 2 == 0 else "cold"
        meter.phase = f"looking at image {step + 1}"
        upcoming = widget.session.path_at(widget.session.position + 1)
        if mode == "warm":  # the person looks at the image while the next one is computed
            pump_until(lambda upcoming=upcoming: (str(upcoming), key) in widget._cache)
            look_at_image(0.3)
        else:
            pump_until(lambda: not widget._loading)
            widget._cache.pop((str(upcoming), key), None)
        meter.phase = f"Next to image {step + 2} ({mode})"
        start = time.perf_counter()
        widget.next_image()
        pump_until(lambda upcoming=upcoming: widget.shown_path == upcoming)
        app.processEvents()  # the frame with the new image is drawn
        rows[mode].append(time.perf_counter() - start)
    meter.phase = "last image shown"
    look_at_image(1.0)
    meter.stop()
    values = [late for late, _ in lateness]
    after_open = [late for late, where in lateness if where != "opening"]
    device = str(widget.models.predictor(widget.models.checkpoint(), "auto").device)
    result = {
        "images": str(args.images), "n": n_images, "threads": args.threads, "device": device,
        "model": widget.models.label(),
        "image_shape": list(np.asarray(widget.image_layer.data).shape),
        "next_warm_s": rows["warm"], "next_cold_s": rows["cold"],
        "lateness_ms": {"median": statistics.median(values), "p95": float(np.percentile(values, 95)),
                        "max": max(values), "ticks": len(values), "max_after_opening": max(after_open),
                        "worst": sorted(lateness, reverse=True)[:8]},
        "load_average": os.getloadavg(),
    }
    print(f"{n_images} images from {args.images} ({result['image_shape']}), model: {result['model']}, device {device}, "
          f"{args.threads} torch threads, load average {result['load_average'][0]:.1f}")
    print("| Next | n | median s | max s |")
    print("|---|---|---|---|")
    for mode, label in (("warm", "after background pre-computation (default)"), ("cold", "without (cache emptied)")):
        values = rows[mode]
        print(f"| {label} | {len(values)} | {statistics.median(values):.3f} | {max(values):.3f} |")
    late = result["lateness_ms"]
    print(f"event-loop lateness over the run: median {late['median']:.0f} ms, p95 {late['p95']:.0f} ms, "
          f"max {late['max']:.0f} ms ({late['ticks']} ticks); max after the session opened {late['max_after_opening']:.0f} ms")
    print("worst ticks: " + "; ".join(f"{ms:.0f} ms ({where})" for ms, where in late["worst"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
