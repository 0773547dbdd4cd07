"""Screenshots of *Annotate a folder* for the README: a session over a folder of frames, as a clinician
sees it (the model's mask to correct, then the counter after Accept & next).

    python scripts/session_screenshots.py [--images DIR] [--out docs]

Without a display it re-runs itself under xvfb-run. Default images: PolypGen validation frames (never
trained on) when ../shared/data is present, else the shipped samples. Writes docs/session-segmented.png
and docs/session-accepted.png.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VAL = REPO.parent / "shared" / "data" / "polypgen" / "val" / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=VAL if VAL.is_dir() else REPO / "sample_data" / "images")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__,
                                "--images", str(args.images), "--n", str(args.n), "--out", str(args.out)])

    os.environ["NAPARI_UNETV2_HOME"] = tempfile.mkdtemp(prefix="screenshots-home-")
    import napari
    from qtpy.QtWidgets import QApplication

    import napari_unetv2.widgets  # noqa: F401  (import guard before the viewer exists)
    from napari_unetv2.widgets.session import SessionWidget

    work = Path(tempfile.mkdtemp(prefix="screenshots-"))
    folder = work / "frames"
    folder.mkdir()
    for path in sorted(args.images.iterdir())[: args.n]:
        shutil.copy2(path, folder / path.name)

    viewer = napari.Viewer(title="napari-unetv2: annotate a folder")
    viewer.window._qt_window.resize(1500, 950)
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate a folder")
    app = QApplication.instance()

    def settle(condition, rounds=6000):
        for _ in range(rounds):
            if condition():
                break
            app.processEvents()
            import time

            time.sleep(0.01)
        for _ in range(50):
            app.processEvents()

    widget.images.value, widget.session_folder.value = str(folder), str(work / "session")
    widget.export_folder.value = str(work / "finished-masks")
    widget.open_session()
    settle(lambda: widget.shown_path == widget.session.current)
    args.out.mkdir(parents=True, exist_ok=True)
    first = args.out / "session-segmented.png"
    viewer.screenshot(str(first), canvas_only=False)
    print(f"wrote {first}: {widget.where.value} | {widget.status.value}")

    # A correction (a stroke of the brush where the frame's lesion continues), accept, next frame in outline view.
    mask = widget.mask_layer
    ys, xs = mask.data.nonzero()
    if len(ys):
        mask.data[max(ys.min() - 15, 0):ys.min() + 5, xs.min():xs.max()] = 1
        mask.refresh()
    widget.accept_and_next()
    widget.display.value = "outline"
    settle(lambda: widget.pending_writes == 0 and widget.shown_path == widget.session.current)
    widget.display.value = "outline"
    widget._on_display("outline")
    settle(lambda: False, rounds=30)
    second = args.out / "session-accepted.png"
    viewer.screenshot(str(second), canvas_only=False)
    print(f"wrote {second}: {widget.where.value} | {widget.status.value}")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
