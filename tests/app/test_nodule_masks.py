"""Issue 17 in the viewer: nodules segmented after Analyse, outlined in every view with their calipers,
measured in the table; the ruler; grow/shrink, brush and eraser, undoable and kept with the session;
a marker that cannot be segmented says why and leaves the others working."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.export_dialog import ExportDialog
from app.main_window import MainWindow
from app.mask_layer import AUTOMATIC, EDITED
from app.nodule_table import AXES, LUNG_RADS, VOLUME
from core.measure.measurement import NoduleMeasurement
from core.reading.session import SessionStore

# A small lung (48 x 48 x 24 voxels of 0.8 x 0.7 x 1.25 mm) holding three part-solid nodules: a solid
# core of 3 mm radius in a 5 mm ground-glass halo, voxels by their share of each (partial volume).
CENTRE, OTHER, THIRD = (np.array(v, float) for v in ((14, 14, 12), (34, 34, 12), (34, 14, 12)))
AIR = np.array([4.0, 40.0, 12.0])  # lung, no nodule
LUNG, GLASS, SOLID = -850.0, -550.0, 40.0
SHAPE = (24, 48, 48)  # z, y, x
SPACING_XYZ = (0.8, 0.7, 1.25)


def _lung(sub: int = 3) -> np.ndarray:
    frac = (np.arange(sub) + 0.5) / sub - 0.5
    axes = [
        ((np.arange(n)[:, None] + frac) * s).ravel() for n, s in zip(SHAPE, SPACING_XYZ[::-1], strict=True)
    ]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    hu = np.full(z.shape, LUNG)
    for cx, cy, cz in (CENTRE, OTHER, THIRD):
        d2 = (x - (cx + 0.5) * SPACING_XYZ[0]) ** 2 + (y - (cy + 0.5) * SPACING_XYZ[1]) ** 2
        d2 += (z - (cz + 0.5) * SPACING_XYZ[2]) ** 2
        hu = np.where(d2 <= 5.0**2, GLASS, hu)
        hu = np.where(d2 <= 3.0**2, SOLID, hu)
    (nz, ny, nx) = SHAPE
    return hu.reshape(nz, sub, ny, sub, nx, sub).mean(axis=(1, 3, 5))


def write_lung(folder) -> None:
    from pydicom.uid import generate_uid

    from tests.dicom_factory import ct_dataset

    folder.mkdir(parents=True)
    hu = np.rint(_lung()).astype(np.int16)
    series_uid, study_uid = generate_uid(), generate_uid()
    for k in range(SHAPE[0]):
        ds = ct_dataset(k, series_uid, study_uid, z=SPACING_XYZ[2] * k, hu=hu[k], spacing=SPACING_XYZ[1::-1])
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)


def fake_measure(volume, mask) -> NoduleMeasurement:
    """A measurement as core.measure.axes would give (written by another engineer): axial calipers
    on the slice after the marker's centre (where the long axis is greatest, say)."""
    voxel = np.round(volume.mm_to_voxel(np.asarray(mask.centre_mm, float))) + np.array([0, 0, 1])
    centre = volume.voxel_to_mm(voxel)
    step = np.array([3.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    ends = [tuple(tuple(float(v) for v in centre + sign * s) for sign in (-1, 1)) for s in step]
    return NoduleMeasurement(
        volume_mm3=mask.voxels * float(np.prod(volume.spacing)),
        effective_diameter_mm=5.0,
        long_axis_mm=6.0,
        short_axis_mm=4.0,
        mean_diameter_mm=5.0,
        plane="axial",
        slice_index=round(float(voxel[2])),
        long_axis_ends_mm=ends[0],
        short_axis_ends_mm=ends[1],
        texture="solid",
        solid_diameter_mm=None,
        solid_volume_mm3=0.0,
        mean_hu=40.0,
        max_hu=90.0,
        calcification_fraction=0.0,
        touches_pleura=False,
        method=mask.method,
        edited=mask.edited,
    )


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "study"
    write_lung(folder)
    return folder


def _open(qtbot, folder) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.review.segmentation.measure = fake_measure
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=30_000)
    return window


def _mark(window, voxel, diameter: float = 8.0):
    return window.markers.new_marker(window.volume.voxel_to_mm(voxel), diameter)


def _analysed(qtbot, window) -> None:
    window.analyse_action.trigger()
    qtbot.waitUntil(lambda: not window.busy and not window.review.segmentation.busy, timeout=60_000)


def _row(window, marker_id: str) -> int:
    table = window.review.table
    return next(r for r in range(table.rowCount()) if table.marker_at(r) == marker_id)


def test_analyse_segments_outlines_and_measures_every_marker(qtbot, series):
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    seg, table = window.review.segmentation, window.review.table
    assert seg.mask(marker.id) is None and table.item(0, VOLUME).text() == ""
    _analysed(qtbot, window)
    mask = seg.mask(marker.id)
    assert mask is not None and mask.voxels > 0 and not mask.edited
    expected = mask.voxels * np.prod(window.volume.spacing)
    assert table.item(0, VOLUME).text() == f"{expected:.0f} mm³"
    assert table.item(0, AXES).text() == "6.0 × 4.0 (5.0)"
    assert "Volume" in window.review.detail.size.text()
    # Lung-RADS from the measured mean diameter (5.0 mm) and texture, not the marker's 8 mm.
    rads_cell = table.item(0, LUNG_RADS)
    assert "measured 5.0 mm" in rads_cell.toolTip() and "texture measured" in rads_cell.toolTip()
    assert "8.0 mm" not in rads_cell.toolTip()
    # Kept with the session, and in the report the Export dialog builds (SEG, SR, PDF, CSV/JSON).
    assert SessionStore().load(*window.key).masks[marker.id].voxels == mask.voxels
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    (nodule,) = dialog.build_report().nodules
    assert nodule.mask is mask and nodule.measurement == seg.measurement(marker.id)


def test_outline_and_calipers_are_drawn_on_the_right_slice(qtbot, series):
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    _analysed(qtbot, window)
    ws, mask = window.workspace, window.review.segmentation.mask(marker.id)
    measured = window.review.segmentation.measurement(marker.id)
    # Choosing the nodule in the table shows the slice its calipers were measured on.
    window.markers.select("")
    window.review.table.selectRow(0)
    assert ws.views["axial"].index == measured.slice_index == round(CENTRE[2]) + 1
    layer = ws.mask_layers["axial"]
    assert layer.drawn == [marker.id]
    assert {tuple(c[:3]) for c in layer.images[0].image.reshape(-1, 4) if c[3]} == {AUTOMATIC}
    assert ws.mask_layers["coronal"].drawn == [marker.id] and ws.mask_layers["sagittal"].drawn == [marker.id]
    # Every outlined pixel lies on a voxel of the mask, in each view's own orientation.
    full = mask.in_volume(window.volume.shape)
    for name in ("axial", "coronal", "sagittal"):
        item = ws.mask_layers[name].images[0]
        rows, cols = np.nonzero(item.image[..., 3])
        assert len(rows) > 0
        for r, c in zip(rows, cols, strict=True):
            x, y, z = np.round(ws.views[name].voxel_at(item.mapToParent(QPointF(c + 0.5, r + 0.5)))).astype(
                int
            )
            assert full[z, y, x], (name, r, c)
    # The outline covers the mask's box in the scene (mm).
    item = layer.images[0]
    rect = item.mapRectToParent(item.boundingRect())
    sx, sy, _ = window.volume.spacing
    z0, y0, x0 = mask.origin_zyx
    assert rect.left() == pytest.approx(x0 * sx) and rect.top() == pytest.approx(y0 * sy)
    assert rect.width() == pytest.approx(mask.mask.shape[2] * sx)
    # Calipers: long and short axis with their lengths, only on the slice they were measured on.
    assert [(w, length) for _, w, length in layer.calipers] == [("long", 6.0), ("short", 4.0)]
    assert layer.texts[0].toPlainText() == "6.0 mm"
    ws.scroll(1, "axial")
    assert layer.calipers == []
    # Off the mask's box: no outline; the toggle hides them all.
    ws.set_slice("axial", z0 + mask.mask.shape[0] + 1)
    assert layer.drawn == []
    ws.set_slab(True, 10.0)  # a MIP slab reaching back into the box shows its outline
    assert layer.drawn == [marker.id]
    # and its calipers exactly when the slab holds the slice they were measured on
    from core.imaging.mpr import plane, slab_slices

    index, slab = z0 + mask.mask.shape[0] + 1, slab_slices(plane(window.volume, "axial"), 10.0)
    first = max(index - slab // 2, 0)
    assert bool(layer.calipers) == (first <= measured.slice_index < first + slab)
    ws.set_slab(False)
    ws.set_slice("axial", measured.slice_index)
    qtbot.keyClick(window, Qt.Key.Key_O)
    assert layer.drawn == [] and layer.calipers == [] and not layer.images[0].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_O)
    assert layer.drawn == [marker.id]


def test_the_ruler_measures_a_distance_and_esc_clears_it(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    view = ws.views["axial"]
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert ws.tool == "ruler"
    start = np.array([5.0, 5.0, view.index])
    for phase, voxel in (
        ("start", start),
        ("move", start + np.array([2, 0, 0])),
        ("finish", start + np.array([3, 4, 0])),
    ):
        view.dragged.emit(phase, voxel)
    sx, sy, _ = window.volume.spacing  # 0.8 x 0.7 mm
    expected = float(np.hypot(3 * sx, 4 * sy))
    assert ws.ruler_layers["axial"].shown == [pytest.approx(expected)]
    assert f"{expected:.1f} mm" in window.statusBar().currentMessage()
    assert ws.ruler_layers["coronal"].shown == []  # drawn where it was measured only
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert ws.rulers == [] and ws.ruler_layers["axial"].shown == []
    qtbot.keyClick(window, Qt.Key.Key_N)  # another tool turns the ruler off
    assert ws.tool == "marker" and not window.actions_by_key["ruler_tool"].isChecked()


def test_grow_brush_erase_undo_and_reopen(qtbot, series):
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    window.markers.select("")  # the analysis picks the top nodule and shows its calipers' slice
    _analysed(qtbot, window)
    seg, ws = window.review.segmentation, window.workspace
    assert window.markers.selected == marker.id
    auto = seg.mask(marker.id)

    ws.scroll(3, "axial")  # the reader looks elsewhere: measuring an edit leaves the view there
    where = ws.cursor.copy()
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    grown = seg.mask(marker.id)
    assert grown.voxels > auto.voxels and grown.edited and grown.method == "edited"
    qtbot.waitUntil(lambda: seg.measurement(marker.id) is not None)
    np.testing.assert_array_equal(ws.cursor, where)
    assert "✎" in window.review.table.item(0, VOLUME).text()
    ws.move_cursor(CENTRE)
    colours = {tuple(c[:3]) for c in ws.mask_layers["axial"].images[0].image.reshape(-1, 4) if c[3]}
    assert colours == {EDITED}  # outlined as edited
    assert "edited" in window.review.detail.size.text()
    window.undo_action.trigger()
    assert seg.mask(marker.id) is auto
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)
    assert seg.mask(marker.id).voxels < auto.voxels
    window.undo_action.trigger()

    # The threshold control: at -300 HU the solid core is kept without its ground-glass halo; at
    # -800 HU the halo and the voxels it shares with the lung are taken in.
    hu = window.volume.array
    window.threshold.setValue(-300)
    qtbot.keyClick(window, Qt.Key.Key_T)
    dense = seg.mask(marker.id)
    inside = dense.in_volume(hu.shape)
    assert dense.edited and inside.any() and (hu[inside] >= -300).all() and dense.voxels < auto.voxels
    window.undo_action.trigger()
    window.threshold.setValue(-800)
    qtbot.keyClick(window, Qt.Key.Key_T)
    faint = seg.mask(marker.id)
    assert faint.voxels > dense.voxels and (hu[faint.in_volume(hu.shape)] >= -800).all()
    window.undo_action.trigger()
    assert seg.mask(marker.id) is auto
    window.threshold.setValue(1000)  # nothing that dense: said, and the mask is left alone
    qtbot.keyClick(window, Qt.Key.Key_T)
    assert seg.mask(marker.id) is auto and "nothing at or above" in window.statusBar().currentMessage()

    # The brush adds a ball outside the nodule in one undoable drag; the eraser takes one away.
    view = ws.views["axial"]
    ws.move_cursor(CENTRE)
    qtbot.keyClick(window, Qt.Key.Key_B)
    far = np.array([26.0, 26.0, view.index])
    for phase in ("start", "move", "finish"):
        view.dragged.emit(phase, far)
    painted = seg.mask(marker.id)
    z, y, x = (int(v) for v in far[::-1])
    assert painted.in_volume(window.volume.shape)[z, y, x] and painted.edited
    assert ws.mask_layers["axial"].images[0].isVisible()
    window.undo_action.trigger()
    assert seg.mask(marker.id) is auto
    window.redo_action.trigger()
    qtbot.keyClick(window, Qt.Key.Key_S)  # segmented afresh: the edit goes, undoably
    qtbot.waitUntil(lambda: not seg.mask(marker.id).edited)
    assert seg.mask(marker.id).voxels == auto.voxels
    window.undo_action.trigger()
    assert seg.mask(marker.id) is painted
    qtbot.keyClick(window, Qt.Key.Key_E)
    view.clicked.emit(CENTRE)
    erased = seg.mask(marker.id)
    z, y, x = (int(v) for v in np.round(CENTRE[::-1]))
    assert not erased.in_volume(window.volume.shape)[z, y, x]
    assert erased.voxels < painted.voxels

    # Kept with the session: a new window opens the edited mask as it was left.
    qtbot.waitUntil(lambda: not window.busy)
    key = window.key
    window.close()
    again = _open(qtbot, series)
    assert again.key == key
    kept = again.review.segmentation.mask(marker.id)
    assert kept is not None and kept.edited
    qtbot.waitUntil(lambda: again.review.segmentation.measurement(marker.id) is not None)
    assert again.review.segmentation.measurement(marker.id).edited  # measured again on opening
    np.testing.assert_array_equal(kept.in_volume(again.volume.shape), erased.in_volume(again.volume.shape))


def test_a_moved_marker_is_segmented_again_an_edited_mask_stays(qtbot, series):
    window = _open(qtbot, series)
    marker = _mark(window, CENTRE)
    _analysed(qtbot, window)
    seg = window.review.segmentation
    first = seg.mask(marker.id)
    moved = window.markers.get(marker.id)
    shifted = window.volume.voxel_to_mm(CENTRE + np.array([1, 0, 0]))
    window.markers.edit(replace(moved, centre_mm=tuple(float(v) for v in shifted)), "move")
    qtbot.waitUntil(lambda: not seg.busy and seg.mask(marker.id) is not None, timeout=10_000)
    again = seg.mask(marker.id)
    assert again is not first and again.centre_mm == pytest.approx(tuple(shifted))
    window.markers.select(marker.id)
    seg.grow(marker.id, 1)
    edited = seg.mask(marker.id)
    window.markers.edit(replace(window.markers.get(marker.id), diameter_mm=12.0), "resize")
    qtbot.waitUntil(lambda: not seg.busy)
    assert seg.mask(marker.id) is edited

    # Reopened, a study segmented before segments a moved marker again without another Analyse.
    other = _mark(window, OTHER)
    qtbot.waitUntil(lambda: not seg.busy and seg.mask(other.id) is not None, timeout=10_000)
    window.close()
    again = _open(qtbot, series)
    seg = again.review.segmentation
    assert seg.mask(other.id) is not None
    moved = replace(again.markers.get(other.id), diameter_mm=10.0)
    again.markers.edit(moved, "resize")
    qtbot.waitUntil(lambda: not seg.busy and seg.mask(other.id) is not None, timeout=10_000)
    assert seg.mask(other.id).diameter_mm == 10.0


def test_a_marker_that_cannot_be_segmented_says_why_and_the_others_are_measured(qtbot, series):
    window = _open(qtbot, series)
    good, bad = _mark(window, CENTRE), _mark(window, AIR, 4.0)
    _analysed(qtbot, window)
    seg, table = window.review.segmentation, window.review.table
    assert seg.mask(good.id) is not None and seg.mask(bad.id) is None
    assert "air" in seg.error(bad.id) or "nothing denser" in seg.error(bad.id)
    cell = table.item(_row(window, bad.id), VOLUME)
    assert cell.text() == "failed" and seg.error(bad.id) in cell.toolTip()
    assert table.item(_row(window, good.id), VOLUME).text().endswith("mm³")
    window.markers.select(bad.id)
    assert "Not segmented" in window.review.detail.size.text()
    # Grow on the failed one says so and changes nothing; segmenting it again fails with its reason.
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert seg.mask(bad.id) is None and "segmented nodule" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: not seg.busy)
    assert seg.mask(bad.id) is None and "N2 not segmented" in window.statusBar().currentMessage()
    # The reader can paint it by hand: the brush makes an edited mask where there was none.
    qtbot.keyClick(window, Qt.Key.Key_B)
    window.workspace.views["axial"].clicked.emit(AIR)
    painted = seg.mask(bad.id)
    assert painted is not None and painted.edited and seg.error(bad.id) == ""
    window.undo_action.trigger()
    assert seg.mask(bad.id) is None


def test_the_measuring_keys_are_in_f1_and_settings_and_esc_still_closes_f1(qtbot, series):
    from app.settings_dialog import SettingsDialog

    window = _open(qtbot, series)
    qtbot.keyClick(window, Qt.Key.Key_F1)
    text = window.help.text()
    for words in (
        "outlines",
        "ruler",
        "brush",
        "eraser",
        "grow the selected",
        "shrink",
        "segment the selected",
        "re-threshold",
    ):
        assert words in text
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.help.isVisible()
    dialog = SettingsDialog(window.settings)
    qtbot.addWidget(dialog)
    keys = {key: editor.keySequence().toString() for key, editor in dialog.keys.items()}
    assert keys["clear_rulers"] == "Esc" and keys["grow_mask"] == "]" and keys["brush_tool"] == "B"


def test_a_mask_that_cannot_be_measured_says_why_and_the_others_are_measured(qtbot, series):
    window = _open(qtbot, series)
    first, second = _mark(window, CENTRE), _mark(window, OTHER)

    def refuse(volume, mask):
        if mask.centre_mm == first.centre_mm:
            raise ValueError("the mask touches the volume's edge")
        if mask.centre_mm == second.centre_mm:
            raise IndexError("index 40 is out of bounds")  # a bug in measuring: still that nodule's
        return fake_measure(volume, mask)

    window.review.segmentation.measure = refuse
    third = _mark(window, THIRD)
    _analysed(qtbot, window)
    seg, table = window.review.segmentation, window.review.table
    assert seg.mask(first.id) is not None and seg.measurement(first.id) is None
    cell = table.item(_row(window, first.id), VOLUME)
    assert cell.text() == "segmented" and "touches the volume's edge" in cell.toolTip()
    assert "IndexError: index 40" in table.item(_row(window, second.id), VOLUME).toolTip()
    assert seg.measurement(third.id) is not None
    window.markers.select(first.id)
    assert "not measured: the mask touches" in window.review.detail.size.text()


def test_a_mask_slice_lands_where_the_view_shows_its_voxels(qtbot, series):
    """Any mask (an irregular one here), any view: the box's slice, flipped and placed as the view
    shows the volume, holds exactly the pixels of the whole-volume mask's slice."""
    from app.mask_layer import box_slice
    from core.imaging.mpr import plane
    from core.measure.mask import NoduleMask

    window = _open(qtbot, series)
    volume = window.volume
    bits = np.random.default_rng(3).random((5, 7, 9)) > 0.6
    mask = NoduleMask((6, 4, 11), bits, "test")
    full = mask.in_volume(volume.shape)
    for name in ("axial", "coronal", "sagittal"):
        p = plane(volume, name)
        for index in range(p.depth):
            expected = p.image(full, index)
            cut = box_slice(mask, p, index, index + 1)
            shown = np.zeros_like(expected)
            if cut is not None:
                image, u0, v0 = cut
                shown[round(v0) : round(v0) + image.shape[0], round(u0) : round(u0) + image.shape[1]] = image
            np.testing.assert_array_equal(shown, expected, err_msg=f"{name} {index}")


def test_a_slow_segmentation_leaves_the_window_working_and_a_closed_window_drops_it(qtbot, series):
    import threading

    import shiboken6

    window = _open(qtbot, series)
    gate = threading.Event()

    def slow(volume, mask):
        gate.wait(30)
        return fake_measure(volume, mask)

    seg = window.review.segmentation
    seg.measure = slow
    marker = _mark(window, CENTRE)
    seg.run()
    assert seg.busy
    before = window.workspace.views["axial"].index
    qtbot.keyClick(window, Qt.Key.Key_Down)  # the window answers meanwhile
    assert window.workspace.views["axial"].index == before + 1
    window.markers.new_marker(window.volume.voxel_to_mm(AIR), 4.0)
    assert len(window.markers) == 2 and seg.measurement(marker.id) is None
    gate.set()
    qtbot.waitUntil(lambda: seg.measurement(marker.id) is not None, timeout=10_000)

    # A run still going when its window is deleted ends quietly (it raised in the event loop).
    gate.clear()
    seg.grow(marker.id, 1)  # measuring the edit waits on the gate
    assert seg.busy
    shiboken6.delete(seg)
    gate.set()
    qtbot.waitUntil(lambda: all(w.done for w in seg._workers), timeout=10_000)
    qtbot.wait(50)  # the queued "finished" is delivered, and dropped


def test_the_real_measurement_reaches_the_table_and_its_calipers_their_slice(qtbot, series):
    window = MainWindow()  # measure_nodule (core.measure.axes) this time, not the stand-in
    qtbot.addWidget(window)
    window.show()
    window.open_path(series)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=30_000)
    marker = _mark(window, CENTRE)
    _analysed(qtbot, window)
    measured = window.review.segmentation.measurement(marker.id)
    assert measured is not None and measured.volume_mm3 > 0
    assert window.review.table.item(0, AXES).text().startswith(f"{measured.long_axis_mm:.1f} × ")
    window.markers.select("")
    window.review.table.selectRow(0)
    layer = window.workspace.mask_layers[measured.plane]
    assert [(w, round(n, 1)) for _, w, n in layer.calipers] == [
        ("long", round(measured.long_axis_mm, 1)),
        ("short", round(measured.short_axis_mm, 1)),
    ]
