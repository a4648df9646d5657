"""What the status bar says when a study opens: words for the reader, not the developer's repr."""

from __future__ import annotations

from app.main_window import MainWindow
from tests.dicom_factory import write_series


def test_opening_a_series_describes_it_in_words(qtbot, tmp_path):
    write_series(tmp_path, 5)
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(tmp_path)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=20_000)
    message = window.statusBar().currentMessage()
    assert "CTVolume(" not in message and "MiB" not in message
    z, y, x = window.volume.shape
    assert message.startswith(f"CT {z} slices of {x} x {y} pixels, ")
    assert "mm apart" in message and window.volume.metadata.patient_name not in message
