"""Review of issues 15/21: a view value that is not finite (a damaged session, a hand-edited preset)
never reaches a session save, which refuses it (``allow_nan=False``) and so would save nothing more."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.main_window import MainWindow
from core.reading.session import SessionStore
from tests.dicom_factory import write_series


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "study"
    write_series(folder, 20)
    return folder


def _open(qtbot, folder) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=30_000)
    return window


def test_an_infinite_view_value_in_a_session_does_not_stop_its_saves(qtbot, series):
    """Review: json reads 1e999 as infinity; restored into the window or the slab, it made every later
    save of the series fail (allow_nan=False, uncaught in save_session): markers went unsaved."""
    window = _open(qtbot, series)
    path = SessionStore().path_for(*window.key)
    window.close()
    document = json.loads(path.read_text())
    document["view"] |= {"window": [123.0, 45.0], "slab_thickness": 7.0}
    path.write_text(json.dumps(document).replace("123.0", "1e999").replace("7.0", "1e999"))
    again = _open(qtbot, series)
    again.workspace.tool = "marker"
    again.workspace.views["axial"].clicked.emit(np.array([12.0, 12.0, 4.0]))  # a marker: saved at once
    saved = SessionStore().load(*again.key)
    assert len(saved.markers) == 1
    assert all(np.isfinite(saved.view["window"])) and np.isfinite(saved.view["slab_thickness"])


def test_a_preset_that_is_not_finite_is_ignored(tmp_path):
    from PySide6.QtCore import QSettings

    from app.settings import Settings

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.store.setValue("window/presets", '{"mine": [NaN, 40], "lung": [1500, -600]}')
    assert settings.presets() == {"lung": (1500.0, -600.0)}
