"""The main job: napari with the U-Net v2 Segment widget docked and a sample image loaded.

    python scripts/demo.py                      # interactive
    python scripts/demo.py --screenshot out.png # segment the sample, show layers, save a screenshot, exit

With no display (a headless machine) it re-runs itself under xvfb-run and writes a screenshot instead.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # kvasir: a frame the bundled model segments as it does a typical one (Dice 0.92); the PolypGen sample is one
    # it nearly misses (Dice 0.31), a poor first picture of what it does (session 26 trial)
    parser.add_argument("--sample", default="kvasir", choices=["polyp", "kvasir", "skin"])
    parser.add_argument("--screenshot", type=Path, default=None, help="segment, save a screenshot of the window, exit")
    args = parser.parse_args()

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        if shutil.which("xvfb-run") is None:
            print("No display and no xvfb-run: install Xvfb (apt-get install xvfb) or run on a desktop.")
            return 1
        target = args.screenshot or Path("demo-screenshot.png")
        print(f"No display found: running under Xvfb and writing a screenshot to {target}")
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__,
               "--sample", args.sample, "--screenshot", str(target)]
        return subprocess.call(cmd)

    import napari
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title="napari-unetv2 demo")
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-unetv2", args.sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetv2", "Segment")
    image_layer = viewer.layers[0]
    widget.image.value = image_layer

    if args.screenshot is None:
        napari.run()
        return 0

    widget.attention.value = True  # off by default (it costs time); the picture shows one map
    widget.display.value = "outline"  # the mask's border only, so the tissue under it stays visible

    def finish() -> None:
        for layer in viewer.layers:
            if "spatial attention (1/8)" in layer.name:
                layer.visible = True  # the plugin's own contrast limits and additive blending, as a user gets them
            if layer.name.endswith("ground truth"):  # for comparison: the expert's outline
                layer.visible, layer.contour, layer.opacity = True, 2, 0.9
        viewer.reset_view()
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(args.screenshot), canvas_only=False)
        print(f"wrote {args.screenshot}; {widget.status.value}")
        viewer.close()

    worker = widget.run()
    worker.finished.connect(lambda: QTimer.singleShot(500, finish))
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
