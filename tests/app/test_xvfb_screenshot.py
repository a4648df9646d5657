"""The app on a real X display: ``main.py --demo --screenshot`` under Xvfb with Qt's xcb platform.

Every other window test renders offscreen; this one checks that the screenshot the app saves on a real
display is the window as a reader sees it (right size, CT in the axial view), not a blank grab.
Xvfb comes from ``scripts/system-packages.sh``; without it the test skips, except under CI=true.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QImage

from app.main_window import MainWindow

REPO = Path(__file__).resolve().parents[2]
SCREEN = "1920x1200x24"


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run this test (sh scripts/system-packages.sh installs it)")
    pytest.skip(f"{reason}; as root, sh scripts/system-packages.sh installs it")


def start_xvfb(log: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """An Xvfb server on a free display number (it picks one and writes it to ``-displayfd``)."""
    read_end, write_end = os.pipe()
    with open(log, "wb") as err:
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + timeout_s
    try:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, 16)
                if not chunk:
                    break
                number += chunk
    finally:
        os.close(read_end)
    if not number.strip():
        server.kill()
        server.wait()
        raise RuntimeError(f"Xvfb did not start: {log.read_text(errors='replace')[-2000:]}")
    return server, f":{number.decode().strip()}"


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def read_rgb(path: Path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable image"
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : width * 3].reshape(height, width, 3).copy()


def offscreen_layout(qtbot) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The window's size, and (x, y, w, h) in window pixels of the middle of the axial view where the
    CT image lies: measured on the same window laid out offscreen (docks, toolbar and views are laid
    out alike on every platform)."""
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=120_000)
    view = window.workspace.views["axial"]
    corner = view.mapTo(window, QPoint(0, 0))
    side = int(min(view.width(), view.height()) * 0.6)  # the axial image fills the view's narrow side
    x = corner.x() + (view.width() - side) // 2
    y = corner.y() + (view.height() - side) // 2
    size = (window.width(), window.height())
    window.close()
    return size, (x, y, side, side)


def test_screenshot_on_a_real_x_display_shows_the_ct(qtbot, tmp_path, request):
    if shutil.which("Xvfb") is None:
        _missing("Xvfb is not installed")
    request.getfixturevalue("demo_home")  # the shared demo study, linked into this test's user home
    out = tmp_path / "window.png"
    server, display = start_xvfb(tmp_path / "xvfb.log")
    try:
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")  # and MTMR_READER_HOME
        env.pop("WAYLAND_DISPLAY", None)
        run = subprocess.run(
            [sys.executable, "main.py", "--demo", "--screenshot", str(out)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop(server)
    unusable = 'platform plugin "xcb"' in run.stderr and "could not connect to display" not in run.stderr
    if run.returncode != 0 and unusable:
        _missing(f"Qt's xcb platform plugin cannot load: {run.stderr.strip()[-600:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "No display found" not in run.stderr  # it really ran on the X display, not offscreen
    assert out.is_file(), run.stderr[-3000:]

    image = read_rgb(out)
    height, width, _ = image.shape
    size, (x, y, w, h) = offscreen_layout(qtbot)
    assert (width, height) == size, "the screenshot is not the whole window"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100, "the screenshot is blank or nearly uniform"
    region = image[y : y + h, x : x + w].astype(int)
    grey = region[(np.ptp(region, axis=2) <= 8)].mean(axis=1)  # leaves out the coloured crosshair
    assert grey.size > 0.8 * w * h, "the axial view is not a grey CT image"
    assert len(np.unique(np.round(grey))) >= 100, "too few grey levels for CT with noise"
    # Lung window (1500/-600): lung (about -850 HU) is dark grey, soft tissue (about 40 HU) near white.
    assert np.mean((grey > 30) & (grey < 120)) > 0.1, "no dark lung in the axial view"
    assert np.mean(grey > 190) > 0.1, "no bright soft tissue in the axial view"
    assert grey.std() > 40
