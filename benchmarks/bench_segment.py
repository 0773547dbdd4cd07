"""The window's freezes on the *Segment* path: a clinician opens frames one after another and presses Segment
with the widget's defaults, looking at each result for a moment.

Drives the user's path: napari's ``viewer.open`` on each file (as File > Open), the *Segment* dock with its defaults
(model in use = the bundled model, device ``auto``), its own worker. A 20 ms QTimer measures the event loop's
lateness over the whole run; Python's garbage collector reports every full (generation 2) collection and its
pause, which stops the window like any other work on the GUI thread.

    xvfb-run -a .venv/bin/python benchmarks/bench_segment.py [--images DIR] [--n 8] [--json PATH]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, also when another copy is installed
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "polypgen_fullres" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path,
                        default=DEFAULT_IMAGES if DEFAULT_IMAGES.is_dir() else REPO / "sample_data" / "images")
    parser.add_argument("--n", type=int, default=8, help="frames opened and segmented (the first n of the folder)")
    parser.add_argument("--look", type=float, default=1.0, help="seconds spent looking at each result")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "segment_stalls.json")
    args = parser.parse_args()

    os.environ.setdefault("NAPARI_UNETV2_HOME", tempfile.mkdtemp(prefix="bench-segment-home-"))
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)

    files = sorted(p for p in args.images.iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})[: args.n]
    viewer = napari.Viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    app = QApplication.instance()

    from _event_loop import EventLoopMeter

    meter = EventLoopMeter(app, status=lambda: widget.status.value)
    lateness, pump_until, look = meter.lateness, meter.pump_until, meter.look
    collections, started = [], [0.0]

    def on_gc(stage, info):
        if info["generation"] != 2:
            return
        if stage == "start":
            started[0] = time.perf_counter()
        else:
            collections.append(((time.perf_counter() - started[0]) * 1000, meter.phase))

    gc.callbacks.append(on_gc)
    meter.start()

    rows = []
    for path in files:
        meter.phase = f"opening {path.name}"
        layer = viewer.open(str(path))[0]
        look(0.3)
        meter.phase = f"segmenting {path.name}"
        widget.image.value = layer
        start = time.perf_counter()
        worker = widget.run()
        if worker is None:
            raise RuntimeError(widget.status.value)
        pump_until(lambda: not widget.busy)
        took = time.perf_counter() - start
        meter.phase = f"looking at {path.name}"
        look(args.look)
        per_image = [late for late, where in lateness if path.name in where]
        rows.append({"image": path.name, "shape": list(np.asarray(layer.data).shape), "segment_s": round(took, 3),
                     "status": widget.status.value.replace("\u200b", ""), "max_lateness_ms": round(max(per_image), 1)})
    meter.stop()
    gc.callbacks.remove(on_gc)
    after_first = [late for late, where in lateness if files[0].name not in where and where != "starting"]
    result = {
        "images": str(args.images), "n": len(files), "model": widget.models.label(),
        "python": sys.version.split()[0], "frozen_objects": gc.get_freeze_count(),
        "tracked_objects": len(gc.get_objects()), "rows": rows,
        "lateness_ms": {"median": statistics.median(v for v, _ in lateness),
                        "p95": float(np.percentile([v for v, _ in lateness], 95)),
                        "max_after_first_image": max(after_first), "over_100ms_after_first_image":
                        sum(v > 100 for v in after_first), "ticks": len(lateness),
                        "worst": sorted(lateness, reverse=True)[:8]},
        "full_collections": {"n": len(collections), "total_ms": round(sum(ms for ms, _ in collections), 1),
                             "max_ms": round(max((ms for ms, _ in collections), default=0), 1),
                             "each": collections},
        "load_average": os.getloadavg(),
    }
    print("| frame | shape | Segment s (click to done) | worst lateness ms |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['image']} | {row['shape'][1]}x{row['shape'][0]} | {row['segment_s']:.2f} | {row['max_lateness_ms']:.0f} |")
    late, full = result["lateness_ms"], result["full_collections"]
    print(f"\nevent-loop lateness: median {late['median']:.0f} ms, p95 {late['p95']:.0f} ms; after the first image: "
          f"max {late['max_after_first_image']:.0f} ms, {late['over_100ms_after_first_image']} ticks over 100 ms")
    print(f"full garbage collections: {full['n']}, {full['total_ms']:.0f} ms in all, longest {full['max_ms']:.0f} ms; "
          f"objects tracked at the end {result['tracked_objects']}, frozen {result['frozen_objects']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
