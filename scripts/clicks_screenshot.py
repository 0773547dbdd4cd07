"""Screenshot of *Correct with clicks*: the polyp sample segmented, then corrected with simulated clicks.

    python scripts/clicks_screenshot.py docs/clicks.png [--clicks 3] [--sample polyp]

Segments the sample with the Segment widget, opens the click tools and places clicks where the
benchmark's simulated user would (largest error, deepest point; the ground truth is shown as a yellow
outline for comparison). Needs no display: it re-runs itself under xvfb-run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's plugin, not an installed copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sample", default="polyp", choices=["polyp", "kvasir", "skin"])
    parser.add_argument("--clicks", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        if shutil.which("xvfb-run") is None:
            print("No display and no xvfb-run: install Xvfb or run on a desktop.")
            return 1
        return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, str(args.out),
                                "--sample", args.sample, "--clicks", str(args.clicks)])

    import napari
    import numpy as np
    from qtpy.QtCore import QTimer

    import napari_unetv2.widgets  # noqa: F401  (the import guard, before the viewer exists)
    from napari_unetv2.engine.metrics import dice_iou_mae
    from napari_unetv2.interactive import next_click

    viewer = napari.Viewer(title="napari-unetv2: correct with clicks")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-unetv2", args.sample)
    image, truth = viewer.layers[0], viewer.layers[1]
    segment_dock, segment = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    segment.image.value, segment.attention.value = image, False
    log = []

    def clicks() -> None:
        _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Correct with clicks")
        widget.image.value = image
        widget.start()
        mask = viewer.layers[f"{image.name} mask"]
        log.append(f"proposal IoU {dice_iou_mae(mask.data > 0, truth.data > 0)[1]:.3f}")
        for _ in range(args.clicks):
            click = next_click(mask.data, truth.data)
            if click is None:
                break
            widget.click(click.y, click.x, positive=click.positive)
            log.append(f"{'+' if click.positive else '-'} click -> IoU {dice_iou_mae(mask.data > 0, truth.data > 0)[1]:.3f}")
        mask.contour = 3
        truth.visible, truth.contour, truth.opacity = True, 2, 0.9
        viewer.layers.selection.active = viewer.layers[f"{image.name} clicks"]
        viewer.window.remove_dock_widget(segment_dock)  # room for the image
        rows, cols = np.nonzero(truth.data)
        viewer.camera.center = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
        viewer.camera.zoom = 0.35 * min(viewer.canvas.size) / max(np.ptp(rows), np.ptp(cols))
        QTimer.singleShot(500, finish)

    def finish() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shot = viewer.screenshot(str(args.out), canvas_only=False)
        print(f"wrote {args.out} ({shot.shape[1]}x{shot.shape[0]}, std {np.std(shot):.1f}); " + "; ".join(log))
        viewer.close()

    worker = segment.run()
    worker.finished.connect(lambda: QTimer.singleShot(300, clicks))
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
