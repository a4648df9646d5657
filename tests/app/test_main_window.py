"""The minimal window: opens a study in the background and shows errors as messages."""

from __future__ import annotations

import numpy as np

from app.main_window import MainWindow
from core.phantom.demo import demo_markers
from tests.dicom_factory import write_series


def test_opens_a_folder_in_the_background(qtbot, tmp_path):
    write_series(tmp_path, 5)
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(tmp_path)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=20_000)
    assert window.volume.shape == (5, 32, 32)
    assert window.tree.topLevelItemCount() == 1
    assert window.workspace.views["axial"].index == 2  # opens at the middle slice


def test_a_series_open_in_another_window_is_read_only_and_overwrites_nothing(qtbot, tmp_path):
    """Two windows on one series: before, each saved its own copy over the other's markers."""
    write_series(tmp_path, 5)
    first, second = MainWindow(), MainWindow()
    for window in (first, second):
        qtbot.addWidget(window)
        window.open_path(tmp_path)
        qtbot.waitUntil(lambda w=window: w.volume is not None and not w.busy, timeout=20_000)
    assert not first.read_only and first.banner.isHidden()
    assert second.read_only and not second.banner.isHidden() and "Read-only" in second.banner.text()
    centre = first.volume.voxel_to_mm(np.array([16.0, 16.0, 2.0]))
    kept = first.markers.new_marker(centre, 6.0)
    second.markers.new_marker(centre, 8.0)  # shown, never saved
    second.save_session()
    saved = first.sessions.load(*first.key)
    assert [m.id for m in saved.markers] == [kept.id]
    first.close()  # the first window lets the series go: opening it again here makes it editable
    second.open_path(tmp_path)
    qtbot.waitUntil(lambda: not second.busy and not second.read_only, timeout=20_000)
    assert second.banner.isHidden() and [m.id for m in second.markers.markers] == [kept.id]


def test_bad_folder_shows_a_message(qtbot, tmp_path):
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(tmp_path / "missing")
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=20_000)
    assert "no such file or folder" in window.error_box.text()
    assert window.error_box.isVisible() and not window.busy
    assert "no such file or folder" in window.statusBar().currentMessage()
    assert window.volume is None


def test_folder_without_ct_says_so(qtbot, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(tmp_path)
    qtbot.waitUntil(lambda: not window.busy, timeout=20_000)
    assert "no CT series found" in window.statusBar().currentMessage()


def test_opens_the_demo_study_with_its_nodules_marked(qtbot, demo_home):
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=120_000)
    assert window.volume.shape[0] > 100 and "PHANTOM" in window.volume.metadata.patient_name
    truth = demo_markers(demo_home)
    assert [m.diameter_mm for m in window.markers.markers] == [m["diameter_mm"] for m in truth]
    assert all(window.volume.contains_mm(m.centre_mm) for m in window.markers.markers)
    # A second opening restores the session (the reader's edits), not the ground truth again.
    window.markers.remove(window.markers.markers.markers[0].id)
    window.open_demo()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert len(window.markers) == len(truth) - 1


def test_a_marked_study_not_yet_analysed_says_how_to_rank_it(qtbot, demo_home):
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=120_000)
    assert "press Analyse (A)" in window.statusBar().currentMessage()


def _demo(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=120_000)
    return window


def test_the_demo_opens_on_its_first_nodule_then_moves_to_the_top_one_once_analysed(qtbot, demo_home):
    window = _demo(qtbot)
    first = next(iter(window.markers.markers))
    assert window.markers.selected == first.id
    assert window.review.detail.marker == first and first.name in window.review.detail.title.text()
    np.testing.assert_allclose(window.workspace.cursor_mm(), first.centre_mm, atol=1.0)
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    top = window.markers.get(window.review.table.marker_at(0))
    assert top.id != first.id  # the demo's first marker is not its most suspicious one
    assert window.markers.selected == top.id and window.review.detail.marker == top
    np.testing.assert_allclose(window.workspace.cursor_mm(), window.review.focus_mm(top), atol=1.0)


def test_the_readers_choice_outlasts_the_analysis_and_a_reopened_study_opens_on_its_top(qtbot, demo_home):
    window = _demo(qtbot)
    chosen = list(window.markers.markers)[2]
    window.markers.select(chosen.id)
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)
    top = window.review.table.marker_at(0)
    assert top != chosen.id and window.markers.selected == chosen.id
    window.close()
    again = _demo(qtbot)
    assert again.markers.selected == top and again.review.detail.marker.id == top
    focus = again.review.focus_mm(again.markers.get(top))  # its calipers' slice, once measured
    np.testing.assert_allclose(again.workspace.cursor_mm(), focus, atol=1.0)
