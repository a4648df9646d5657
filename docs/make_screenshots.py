"""Write the README's screenshots of the reader on the demo study, from the real window:

    .venv/bin/python docs/make_screenshots.py [--out docs]

- ``screenshot-lung.png``: lung window, axial / coronal / sagittal side by side, on a demo nodule;
- ``screenshot-marker.png``: a marker selected (its circle in all three views, its row in the list);
- ``screenshot-analysis.png``: analysed: the ranked table, the top nodule's detail panel;
- ``screenshot-mip.png``: a 10 mm MIP slab in one large axial view: vessels run as lines, a nodule
  stays a round blob.

It needs an X display: the one in DISPLAY, or an Xvfb it starts itself when DISPLAY is unset (as root,
``sh scripts/system-packages.sh`` installs Xvfb). User data go to a temporary folder, so the reader's
own sessions are left alone and the demo opens with its nodules ready-marked.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WINDOW = (1600, 1000)


def start_xvfb(timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """An Xvfb server on a free display number (Xvfb picks it and writes it to ``-displayfd``)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + timeout_s
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([read_end], [], [], 0.5)[0]:
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_end)
    if not number.strip():
        server.kill()
        raise SystemExit("Xvfb did not start")
    return server, f":{number.decode().strip()}"


def _inside(low: float, high: float, size: float) -> float:
    """How far to move [low, high] so that it lies within [0, size] (centred if it is wider)."""
    if high - low >= size:
        return size / 2 - (low + high) / 2
    return -low if low < 0 else size - high if high > size else 0.0


class Shooter:
    def __init__(self, out: Path) -> None:
        from PySide6.QtWidgets import QApplication

        from app.main_window import MainWindow

        self.out = out
        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        self.window = MainWindow()
        self.window.resize(*WINDOW)
        self.window.show()
        self.window.open_demo()
        self.settle(timeout_s=300)
        if self.window.volume is None:
            raise SystemExit(f"the demo study did not open: {self.window.statusBar().currentMessage()}")
        self.ws = self.window.workspace

    def settle(self, timeout_s: float = 30.0) -> None:
        """Process events until no background job runs, then a little longer for the repaints."""
        from PySide6.QtCore import QThreadPool

        pool = QThreadPool.globalInstance()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.app.processEvents()
            if not self.window.busy and pool.activeThreadCount() == 0:
                break
            pool.waitForDone(50)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def marker(self, name: str):
        return next(m for m in self.window.markers.markers if m.name == name)

    def focus(self, name: str, field_mm: float) -> None:
        """Cursor on marker ``name``; every shown view zoomed to about ``field_mm`` around it."""
        marker = self.marker(name)
        self.ws.centre_on_mm(marker.centre_mm)
        for view in self.ws.views.values():
            x, y = view.scene_point(self.ws.cursor)
            half = field_mm / 2
            view.box.setRange(xRange=(x - half, x + half), yRange=(y - half, y + half), padding=0)
            self.app.processEvents()
            # Slide the field back over the image where it hangs off an edge: less black, more CT.
            rows, cols = view.plane.shape
            width_mm, height_mm = cols * view.plane.pixel_mm[0], rows * view.plane.pixel_mm[1]
            rect = view.box.viewRect()
            dx = _inside(rect.left(), rect.right(), width_mm)
            dy = _inside(rect.top(), rect.bottom(), height_mm)
            if dx or dy:
                view.box.translateBy(x=dx, y=dy)
        self.settle()

    def save(self, filename: str) -> None:
        self.settle()
        image = self.window.grab().toImage()
        path = self.out / filename
        if not image.save(str(path), "PNG", 0):  # quality 0: the strongest compression
            raise SystemExit(f"could not write {path}")
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{shown}: {path.stat().st_size // 1024} kB")


def make_screenshots(out: Path) -> None:
    from PySide6.QtWidgets import QDockWidget

    from app.workspace import DEFAULT_LAYOUT

    shot = Shooter(out)
    ws, window = shot.ws, shot.window
    markers_dock = window.findChild(QDockWidget, "Markers")
    if markers_dock is not None:
        markers_dock.raise_()  # the marker list in front of any dock tabbed with it

    # 1. Lung window, three planes in the default layout (a large axial view, coronal and sagittal
    # beside it), on the spiculated nodule N1 (its markers drawn in each view).
    ws.set_layout(DEFAULT_LAYOUT)
    ws.apply_preset(0)
    window.markers.select("")
    shot.focus("N1", 200)
    shot.save("screenshot-lung.png")

    # 2. A marker selected: the part-solid nodule N3, its row highlighted in the marker list.
    window.markers.select(shot.marker("N3").id)
    shot.focus("N3", 110)
    shot.save("screenshot-marker.png")

    # 3. A 10 mm MIP slab, one large axial view: vessels become branching lines, nodules stay round
    # (N4 here, with N2 in the same slab).
    window.markers.select("")
    ws.set_active("axial")
    ws.set_layout("1x1")
    window.slab.setValue(10.0)
    if not window.mip_action.isChecked():
        window.mip_action.trigger()
    shot.focus("N4", 200)
    sx, sy, _ = window.volume.spacing  # the crosshair 40 mm off, same slab: it hides no nodule
    ws.move_cursor(ws.cursor + np.array([-40 / sx, 40 / sy, 0.0]))
    shot.save("screenshot-mip.png")

    # 4. Analysed: the ranked table below, the top nodule selected, its detail panel (patches, the
    # model's input and Grad-CAM, the scores, the reader's form) on the right.
    if window.mip_action.isChecked():
        window.mip_action.trigger()
    ws.set_layout(DEFAULT_LAYOUT)
    window.review.analyse()
    shot.settle(timeout_s=120)
    window.findChild(QDockWidget, "Nodule detail").raise_()
    top = window.review.table.marker_at(0)
    window.markers.select("")
    window.review.table.selectRow(0)
    shot.focus(window.markers.get(top).name, 160)
    shot.save("screenshot-analysis.png")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs (docs/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    server = None
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if shutil.which("Xvfb") is None:
            raise SystemExit("No DISPLAY and no Xvfb: as root, run sh scripts/system-packages.sh")
        server, os.environ["DISPLAY"] = start_xvfb()
    if sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # the real window, never offscreen
    os.environ.pop("WAYLAND_DISPLAY", None)
    try:
        with tempfile.TemporaryDirectory(prefix="mtmr-screenshots-") as home:
            os.environ["MTMR_READER_HOME"] = home
            make_screenshots(args.out.resolve())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
