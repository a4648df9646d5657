"""Helpers of the follow-up window tests: a small phantom follow-up pair and a window compared on it."""

from __future__ import annotations

from pathlib import Path

from app.main_window import MainWindow
from core.nodule.markers import read_markers


def write_pair(tmp_path_factory, name: str) -> Path:
    """A prior and a current study of one phantom patient (four nodules: paired, new, resolved)."""
    from core.phantom.followup import FollowUpOptions, write_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    out = tmp_path_factory.mktemp(name) / "patient"
    return write_follow_up(out, SMALL, FollowUpOptions(interval_days=400), four_nodules())


def opened(qtbot, folder: Path) -> MainWindow:
    """A window showing ``folder``'s study, its ``markers.json`` marked the first time."""
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=60_000)
    if not window.markers.markers:
        window.markers.reset(read_markers(folder / "markers.json"))
        window.save_session()
    return window


def compared(qtbot, folder: Path) -> MainWindow:
    """``opened``, then compared with its prior (P)."""
    window = opened(qtbot, folder)
    window.actions_by_key["compare_prior"].trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    assert not window.prior_view.isHidden(), window.statusBar().currentMessage()
    return window
