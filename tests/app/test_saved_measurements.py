"""A reopened study shows its nodules' saved measurements at once: nothing is measured again and the
table is not refilled by a measurement arriving later (it stalled the window ~100 ms on reopening)."""

from __future__ import annotations

from app.main_window import MainWindow
from tests.app.test_nodule_masks import CENTRE, OTHER, _analysed, _mark, _open, fake_measure, series  # noqa: F401


def _reopen(qtbot, folder, measured: list, fills: list) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()

    def measure(volume, mask):
        measured.append(mask)
        return fake_measure(volume, mask)

    fill = window.review.table.fill
    window.review.table.fill = lambda *args: (fills.append(args), fill(*args))
    window.review.segmentation.measure = measure
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=30_000)
    qtbot.waitUntil(lambda: not window.review.segmentation.busy)
    return window


def test_a_reopened_study_shows_its_saved_measurements_without_measuring_again(qtbot, series):  # noqa: F811
    window = _open(qtbot, series)
    first, second = _mark(window, CENTRE), _mark(window, OTHER)
    _analysed(qtbot, window)
    seg = window.review.segmentation
    saved = {m.id: seg.measurement(m.id) for m in (first, second)}
    assert all(saved.values())
    window.close()

    measured, fills = [], []
    again = _reopen(qtbot, series, measured, fills)
    qtbot.wait(200)  # a background measurement would have arrived by now
    seg = again.review.segmentation
    assert measured == []  # shown from the session, not measured again
    assert {k: seg.measurement(k) for k in saved} == saved
    # every fill (the opening's own: markers in, lungs found) held them: none waited for a measurement
    assert fills and all({k: sizes[k][1] for k in saved} == saved for *_, sizes in fills)


def test_an_edited_mask_is_measured_again_and_its_new_measurement_saved(qtbot, series):  # noqa: F811
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    _analysed(qtbot, window)
    seg = window.review.segmentation
    before = seg.measurement(marker.id)
    seg.grow(marker.id, 1)  # the mask changes: its saved measurement is no longer its own
    qtbot.waitUntil(lambda: seg.measurement(marker.id) is not None and seg.measurement(marker.id).edited)
    after = seg.measurement(marker.id)
    assert after.volume_mm3 > before.volume_mm3
    qtbot.waitUntil(lambda: not window.busy)
    window.close()

    measured, fills = [], []
    again = _reopen(qtbot, series, measured, fills)
    assert measured == [] and again.review.segmentation.measurement(marker.id) == after
