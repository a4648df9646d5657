"""Analysis speed in the app: from "Analyse" to a filled table for 20 markers, and the event loop.

    .venv/bin/python bench/bench_analysis.py [--markers 20] [--repeats 3]

With the 300-slice phantom study of bench_viewer.py open in the real window (offscreen platform
unless a DISPLAY is set) and 20 markers placed (its nodules, then points in the lungs), it presses
Analyse for the first time (the window preloads the model in the background once a study is shown),
then again after moving every marker (warm: every marker is stale), and reports the wall time until the
table is filled and the longest gap between 5 ms timer ticks meanwhile. Beside it, in the same run,
the Predictor alone on the same markers (the floor the app adds its overhead to). Floors (issue 6):
at most 1 s, no stall over 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def timed_analysis(app, window) -> tuple[float, float]:
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    window.review.analyse()
    while window.review.analysis.busy or window.review.table.item(0, 0).text() == "-":
        app.processEvents()
        time.sleep(0.001)
    took = time.perf_counter() - start
    app.processEvents()
    timer.stop()
    gaps = np.diff([start, *[t for t in ticks if t <= start + took]])
    return took, float(gaps.max()) if len(gaps) else took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markers", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from bench_viewer import study_folder, wait

    folder = study_folder()
    os.environ["MTMR_READER_HOME"] = tempfile.mkdtemp(prefix="bench-analysis-")
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from core.imaging.location import LungMap
    from core.model.inference import Predictor
    from core.model.store import default_model_path
    from core.phantom.demo import demo_markers

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    window.open_path(folder)
    wait(app, lambda: window.volume is not None and not window.busy)
    volume = window.volume
    lungs = LungMap(volume)
    rng = np.random.default_rng(0)
    truth = demo_markers(folder)
    for item in truth[: args.markers]:
        window.markers.new_marker(item["centre_mm"], item["diameter_mm"])
    while len(window.markers) < args.markers:  # points in the lungs, 5-15 mm
        voxel = rng.uniform([0, 0, 0], np.array(volume.shape[::-1]) - 1)
        centre = volume.voxel_to_mm(voxel)
        if int(volume.array[tuple(np.round(voxel).astype(int)[::-1])]) < -700 and lungs.found:
            window.markers.new_marker(centre, float(rng.uniform(5, 15)))
    app.processEvents()
    print(f"study: {volume!r}, {len(window.markers)} markers, platform {app.platformName()}")

    cold, cold_stall = timed_analysis(app, window)
    print(f"first analysis: {cold:.3f} s to a filled table, longest stall {cold_stall * 1e3:.0f} ms")
    warm, stalls = [], []
    for k in range(args.repeats):
        for marker in list(window.markers.markers):  # move each by 0.1 mm: every result is stale
            shifted = (marker.centre_mm[0] + 0.1 * (1 if k % 2 == 0 else -1), *marker.centre_mm[1:])
            window.markers.edit(replace(marker, centre_mm=shifted), "move")
        took, stall = timed_analysis(app, window)
        warm.append(took)
        stalls.append(stall)
    predictor = Predictor(default_model_path(), device="cpu")
    markers = [m.to_inference() for m in window.markers.markers]
    alone = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        predictor.predict(volume, markers)
        alone.append(time.perf_counter() - start)
    median, reference = statistics.median(warm), statistics.median(alone)
    print(
        f"warm (model kept, {len(markers)} stale markers): median {median:.3f} s to a filled table "
        f"({median / reference:.2f}x the Predictor alone, {reference:.3f} s); longest stall "
        f"{max(stalls) * 1e3:.0f} ms"
    )
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
