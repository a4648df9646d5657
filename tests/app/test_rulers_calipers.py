"""Calipers on a MIP slab that holds their slice; caliper lengths clear of the marker's name and of each
other; rulers removed one by one (right-click on one) and kept with the session's view state."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QPointF, Qt

from app.marker_layer import label_rect
from app.mask_layer import CALIPER_ANCHOR
from app.ruler_layer import Ruler, rulers_from
from tests.app.test_nodule_masks import CENTRE, _analysed, _mark, _open, fake_measure, series  # noqa: F401


def test_calipers_show_on_a_mip_slab_that_holds_their_slice(qtbot, series):  # noqa: F811
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    _analysed(qtbot, window)
    ws = window.workspace
    measured = window.review.segmentation.measurement(marker.id)
    ws.set_slice("axial", measured.slice_index - 2)
    layer = ws.mask_layers["axial"]
    assert layer.calipers == []  # one slice: only where they were measured
    ws.set_slab(True, 10.0)  # 8 slices of 1.25 mm around the shown one: it holds the calipers' slice
    ws.set_slice("axial", measured.slice_index - 2)
    assert [c[:2] for c in layer.calipers] == [(marker.id, "long"), (marker.id, "short")]
    assert all(line.isVisible() for line in layer.lines[:2])
    ws.set_slice("axial", measured.slice_index + 8)  # a slab that misses it
    assert layer.calipers == [] and not any(line.isVisible() for line in layer.lines)


def test_caliper_lengths_are_moved_clear_of_the_markers_name_and_of_each_other(qtbot, series):  # noqa: F811
    window = _open(qtbot, series)
    ws = window.workspace
    view = ws.views["axial"]
    marker = _mark(window, CENTRE)
    ws.move_cursor(CENTRE)
    (name,) = [t for t in ws.layers["axial"].labels if t.isVisible()]
    # A long axis ending just inside the marker's name (its label would cover the name) and a short
    # axis whose length would sit on the long one's.
    inside = view.box.mapSceneToView(view.box.mapViewToScene(name.pos()) + QPointF(3, -4))
    end = window.volume.voxel_to_mm(view.voxel_at(inside))
    centre = window.volume.voxel_to_mm(CENTRE)
    below = view.box.mapSceneToView(view.box.mapViewToScene(name.pos()) + QPointF(3, 2))
    short_end = window.volume.voxel_to_mm(view.voxel_at(below))
    ends = tuple(tuple(float(v) for v in p) for p in (centre, end))
    short = tuple(tuple(float(v) for v in p) for p in (centre, short_end))

    def measure(volume, mask):
        return replace(
            fake_measure(volume, mask),
            slice_index=round(CENTRE[2]),
            long_axis_ends_mm=ends,
            short_axis_ends_mm=short,
        )

    window.review.segmentation.measure = measure
    _analysed(qtbot, window)
    ws.set_slice("axial", round(CENTRE[2]))
    layer = ws.mask_layers["axial"]
    assert [c[:2] for c in layer.calipers] == [(marker.id, "long"), (marker.id, "short")]
    rects = ws.layers["axial"].label_rects() + [
        label_rect(view, text, CALIPER_ANCHOR) for text in layer.texts if text.isVisible()
    ]
    assert len(rects) == 3
    assert not any(a.intersects(b) for n, a in enumerate(rects) for b in rects[n + 1 :])


def test_rulers_are_removed_one_by_one_and_kept_with_the_session(qtbot, series):  # noqa: F811
    window = _open(qtbot, series)
    ws = window.workspace
    view = ws.views["axial"]
    qtbot.keyClick(window, Qt.Key.Key_L)
    qtbot.wait(50)  # laid out: the right-click below lands where it is aimed
    for start, end in (((5.0, 5.0), (5.0, 25.0)), ((20.0, 5.0), (40.0, 5.0)), ((30.0, 30.0), (40.0, 40.0))):
        for phase, (x, y) in (("start", start), ("finish", end)):
            view.dragged.emit(phase, np.array([x, y, view.index]))
    assert len(ws.ruler_layers["axial"].shown) == 3
    view.right_clicked.emit(np.array([12.0, 30.0, view.index]))  # near none: nothing goes
    assert len(ws.rulers) == 3
    x, y = view.scene_point(np.array([30.5, 5.5, view.index]))  # a right-click on the second one
    point = view.graphics.mapFromScene(view.box.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(view.graphics.viewport(), Qt.MouseButton.RightButton, pos=point)
    assert [r.start[:2] for r in ws.rulers] == [(5.0, 5.0), (30.0, 30.0)]
    assert (
        ws.ruler_layers["axial"].shown == [r.length_mm(window.volume) for r in ws.rulers]
        and "removed" in window.statusBar().currentMessage()
    )
    ws.views["coronal"].right_clicked.emit(np.array([5.0, 15.0, view.index]))  # another view's: kept
    assert len(ws.rulers) == 2

    qtbot.waitUntil(lambda: len(window.sessions.load(*window.key).view.get("rulers", [])) == 2)
    saved = window.sessions.load(*window.key).view["rulers"]
    assert [Ruler.from_dict(r) for r in saved] == ws.rulers
    window.close()
    again = _open(qtbot, series)
    assert again.workspace.rulers == [Ruler.from_dict(r) for r in saved]
    assert len(again.workspace.ruler_layers["axial"].shown) in (0, 2)  # drawn on their slice
    again.workspace.set_slice("axial", saved[0]["index"])
    assert len(again.workspace.ruler_layers["axial"].shown) == 2
    qtbot.keyClick(again, Qt.Key.Key_Escape)  # Esc takes all of them, and that is kept too
    qtbot.waitUntil(lambda: again.sessions.load(*again.key).view.get("rulers") == [])


def test_malformed_saved_rulers_are_left_out():
    good = Ruler("axial", 3, (1.0, 2.0, 3.0), (4.0, 5.0, 3.0))
    saved = [
        good.to_dict(),
        {"view": "axial", "index": 3, "start": [1, 2], "end": [4, 5, 3]},
        {"view": "oblique", "index": 3, "start": [1, 2, 3], "end": [4, 5, 3]},
        {"view": "axial", "index": 3, "start": [1, 2, float("inf")], "end": [4, 5, 3]},
        {"view": "axial", "start": [1, 2, 3], "end": [4, 5, 3]},
        "ruler",
    ]
    assert rulers_from(saved) == [good]
    assert rulers_from({"a": 1}) == [] and rulers_from(None) == []
