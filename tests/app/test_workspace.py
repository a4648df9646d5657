"""The reading workspace driven through the real window: views, window/level, markers, sessions."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QUndoStack

from app.main_window import MainWindow
from app.slice_view import CORNERS_MIN_WIDTH
from app.workspace import LAYOUTS
from core.imaging.mpr import plane
from core.reading.session import SessionStore
from tests.dicom_factory import write_series


def _open(qtbot, folder) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=30_000)
    return window


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "study"
    write_series(folder, 20)
    return folder


def _x(voxels: float) -> np.ndarray:
    """A step of ``voxels`` along the columns."""
    return np.array([voxels, 0.0, 0.0])


def _centre_voxel(window) -> np.ndarray:
    return (np.array(window.volume.shape[::-1], float) - 1) / 2


def test_views_show_the_slices_through_the_cursor(qtbot, series):
    window = _open(qtbot, series)
    ws, volume = window.workspace, window.volume
    for name, view in ws.views.items():
        p = plane(volume, name)
        index = round(ws.cursor[p.normal])
        np.testing.assert_array_equal(view.image.image, p.image(volume.array, index))
        assert view.info.text().startswith(name.capitalize())
    assert ws.views["axial"].letters["left"].text() == "R"
    assert ws.views["coronal"].letters["top"].text() == "S"
    # The aspect follows the spacing (columns 0.8 mm, rows 0.7 mm, slices 1.25 mm apart).
    sx, sy, sz = volume.spacing
    assert (sx, sy) == pytest.approx((0.8, 0.7))
    rect = ws.views["axial"].image.mapRectToParent(ws.views["axial"].image.boundingRect())
    assert rect.width() == pytest.approx(32 * sx) and rect.height() == pytest.approx(32 * sy)
    rect = ws.views["sagittal"].image.mapRectToParent(ws.views["sagittal"].image.boundingRect())
    assert rect.width() == pytest.approx(32 * sy) and rect.height() == pytest.approx(20 * sz)


def test_keyboard_scrolls_and_presets_set_the_window(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    start = ws.views["axial"].index
    qtbot.keyClick(window, Qt.Key.Key_Down)
    assert ws.views["axial"].index == start + 1
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert ws.views["axial"].index == 19
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert ws.views["axial"].index == 9
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert ws.views["axial"].index == 0
    qtbot.keyClick(window, Qt.Key.Key_Up)  # clamped at the first slice
    assert ws.views["axial"].index == 0
    # The coronal view follows: its horizontal crosshair sits on the axial slice now shown.
    qtbot.keyClick(window, Qt.Key.Key_2)
    assert ws.window == (350.0, 50.0)
    assert ws.views["axial"].image.levels.tolist() == [-125.0, 225.0]
    qtbot.keyClick(window, Qt.Key.Key_1)
    assert ws.window == (1500.0, -600.0)
    ws.views["axial"].window_dragged.emit(40.0, -20.0)  # right-drag: wider, higher
    assert ws.window[0] > 1500 and ws.window[1] > -600
    ws.views["axial"].scrolled.emit(1)  # the wheel
    assert ws.views["axial"].index == 1


def test_a_click_moves_the_crosshair_and_every_view_follows(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    view = ws.views["axial"]
    qtbot.wait(50)
    target = np.array([5.0, 7.0, view.index])
    x, y = view.scene_point(target)
    point = view.graphics.mapFromScene(view.box.mapViewToScene(pg_point(x, y)))
    qtbot.mouseClick(view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert ws.cursor[0] == pytest.approx(5.0, abs=0.8) and ws.cursor[1] == pytest.approx(7.0, abs=0.8)
    assert ws.views["sagittal"].index == round(ws.cursor[0])
    assert ws.views["coronal"].index == round(ws.cursor[1])


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_place_move_resize_undo_redo_and_autosave(qtbot, series):
    window = _open(qtbot, series)
    ws, store = window.workspace, window.markers
    view = ws.views["axial"]
    window.tool_action.trigger()
    assert ws.tool == "marker"
    centre = np.array([15.0, 15.0, view.index])
    view.clicked.emit(centre)
    assert len(store) == 1
    marker = next(iter(store.markers))
    assert marker.diameter_mm == 8.0 and marker.name == "N1"
    np.testing.assert_allclose(marker.centre_mm, window.volume.voxel_to_mm(centre))
    saved = SessionStore().load(*window.key)
    assert [m.id for m in saved.markers] == [marker.id]  # saved at once

    # Drag from its middle: moves it by the drag, in patient mm.
    for phase, voxel in (("start", centre), ("move", centre + _x(2)), ("finish", centre + _x(4))):
        view.dragged.emit(phase, voxel)
    moved = store.get(marker.id)
    sx = window.volume.spacing[0]
    assert moved.centre_mm[0] == pytest.approx(marker.centre_mm[0] + 4 * sx)
    # Drag its rim outwards: resizes it.
    rim = centre + _x(4) + _x(8.0 / 2 / sx)
    for phase, voxel in (("start", rim), ("finish", rim + _x(2))):
        view.dragged.emit(phase, voxel)
    assert store.get(marker.id).diameter_mm == pytest.approx(8.0 + 2 * 2 * sx, abs=0.1)

    undo: QUndoStack = store.undo
    undo.undo()
    assert store.get(marker.id).diameter_mm == 8.0
    undo.undo()
    assert store.get(marker.id).centre_mm == marker.centre_mm
    undo.redo()
    assert store.get(marker.id).centre_mm == moved.centre_mm
    assert SessionStore().load(*window.key).markers[0].centre_mm == moved.centre_mm

    store.select(marker.id)
    qtbot.keyClick(window, Qt.Key.Key_Delete)
    assert len(store) == 0 and SessionStore().load(*window.key).markers == []
    window.undo_action.trigger()
    assert len(store) == 1


def test_drag_to_size_a_new_marker_and_refuse_one_outside(qtbot, series):
    window = _open(qtbot, series)
    ws, store = window.workspace, window.markers
    view = ws.views["axial"]
    ws.tool = "marker"
    start = np.array([10.0, 10.0, view.index])
    view.dragged.emit("start", start)
    view.dragged.emit("move", start + _x(5))
    assert store.preview is not None and len(store) == 0  # a ghost while dragging
    view.dragged.emit("finish", start + _x(5))
    expected = 2 * 5 * window.volume.spacing[0]
    assert len(store) == 1 and store.get(store.selected).diameter_mm == pytest.approx(expected, abs=0.1)
    # Moving it out of the series is refused and leaves it where it was.
    before = store.get(store.selected)
    inside = start
    view.dragged.emit("start", inside)
    view.dragged.emit("finish", inside + _x(400))
    assert store.get(before.id) == before
    assert "outside the series" in window.statusBar().currentMessage()


def test_session_restores_markers_and_view_after_reopening(qtbot, series):
    window = _open(qtbot, series)
    window.workspace.tool = "marker"
    window.workspace.views["axial"].clicked.emit(np.array([12.0, 12.0, 4.0]))
    window.workspace.apply_preset(3)
    window.workspace.set_layout("2x2")
    window.close()
    again = _open(qtbot, series)
    assert len(again.markers) == 1
    assert again.workspace.window == (2000.0, 500.0)
    assert again.workspace.layout_name == "2x2"
    assert "session restored" in again.statusBar().currentMessage()


def test_a_corrupt_session_is_kept_aside_and_reported(qtbot, series):
    window = _open(qtbot, series)
    window.workspace.views["axial"].clicked.emit(np.array([12.0, 12.0, 4.0]))
    path = SessionStore().path_for(*window.key)
    window.close()
    path.write_text("{ not json")
    again = _open(qtbot, series)
    qtbot.waitUntil(lambda: again.error_box is not None)
    assert path.name in again.error_box.text()
    assert len(again.markers) == 0
    assert any(p.name.startswith(path.name + ".corrupt") for p in path.parent.iterdir())


def test_mip_slab_and_layouts(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    window.mip_action.trigger()
    p = plane(window.volume, "axial")
    slab = round(ws.slab_thickness / p.spacing[2])
    expected = p.image(window.volume.array, ws.views["axial"].index, slab)
    np.testing.assert_array_equal(ws.views["axial"].image.image, expected)
    assert "MIP" in ws.views["axial"].info.text()
    for layout, shown in (("1x1", 1), ("2x2", 3), ("1x3", 3), ("1+2", 3)):
        ws.set_layout(layout)
        assert sum(v.isVisible() for v in ws.views.values()) == shown


def test_markers_import_and_export(qtbot, series, tmp_path):
    window = _open(qtbot, series)
    centre = window.volume.voxel_to_mm(_centre_voxel(window))
    path = tmp_path / "markers.json"
    outside = [float(centre[0]), float(centre[1]), 5000.0]
    path.write_text(
        json.dumps(
            {
                "markers": [
                    {"id": "a", "name": "Left upper", "center_mm": centre.tolist(), "diameter_mm": 6},
                    {"id": "b", "center_mm": outside, "diameter_mm": 6},
                ]
            }
        )
    )
    assert window.import_markers_from(path) == 1
    assert "1 outside" in window.statusBar().currentMessage()
    assert [m.name for m in window.markers.markers] == ["Left upper"]
    window.markers.undo.undo()  # the whole import is one step
    assert len(window.markers) == 0
    (tmp_path / "bad.json").write_text("[]")
    assert window.import_markers_from(tmp_path / "bad.json") == 0
    assert "bad.json" in window.error_box.text()


def test_help_overlay_lists_the_shortcuts(qtbot, series):
    window = _open(qtbot, series)
    qtbot.keyClick(window, Qt.Key.Key_F1)
    assert window.help.isVisible() and "PgUp" in window.help.text() and "Right-drag" in window.help.text()
    qtbot.mouseClick(window.help, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert not window.help.isVisible()


def test_rename_and_notes_are_undoable_and_typing_does_not_fire_shortcuts(qtbot, series):
    window = _open(qtbot, series)
    window.workspace.tool = "marker"
    window.workspace.views["axial"].clicked.emit(np.array([12.0, 12.0, 4.0]))
    panel, store = window.panel, window.markers
    marker = next(iter(store.markers))
    panel.table.item(0, 0).setText("RUL nodule")
    assert store.get(marker.id).name == "RUL nodule"
    panel.notes.setFocus()
    qtbot.keyClicks(panel.notes, "2 N grows")  # '2' and 'N' are shortcuts elsewhere
    assert window.workspace.window == (1500.0, -600.0) and window.workspace.tool == "marker"
    panel.save_notes.click()
    assert store.get(marker.id).notes == "2 N grows"
    assert SessionStore().load(*window.key).markers[0].notes == "2 N grows"
    store.undo.undo()
    store.undo.undo()
    assert store.get(marker.id).name == marker.name and store.get(marker.id).notes == ""


def test_settings_change_presets_and_shortcuts_and_refuse_clashes(qtbot, series):
    from PySide6.QtGui import QKeySequence

    from app.settings_dialog import SettingsDialog

    window = _open(qtbot, series)
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.presets.item(0, 1).setText("1200")
    dialog.keys["mip"].setKeySequence(QKeySequence("N"))  # already the marker tool
    dialog.accept()
    assert "used twice" in dialog.error.text() and window.settings.shortcut("mip") == "M"
    dialog.keys["mip"].setKeySequence(QKeySequence("Ctrl+M"))
    dialog.accept()
    assert window.settings.shortcut("mip") == "Ctrl+M"
    assert window.settings.presets()["Lung"] == (1200.0, -600.0)
    dialog.presets.item(1, 1).setText("wide")
    dialog.accept()
    assert "must be numbers" in dialog.error.text()


def test_crosshair_can_be_hidden_and_the_cursor_still_moves(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert not any(v.h_line.isVisible() or v.v_line.isVisible() for v in ws.views.values())
    ws.views["axial"].clicked.emit(np.array([6.0, 9.0, 2.0]))
    assert ws.views["sagittal"].index == 6 and not ws.views["sagittal"].v_line.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert all(v.h_line.isVisible() for v in ws.views.values())


def test_progress_bar_is_hidden_once_the_study_is_shown(qtbot, series):
    window = _open(qtbot, series)
    assert not window.progress.isVisible() and not window.cancel_button.isVisible()


def test_export_then_import_round_trips_names_and_notes(qtbot, series, tmp_path):
    from core.nodule.markers import read_markers

    window = _open(qtbot, series)
    window.workspace.tool = "marker"
    window.workspace.views["axial"].clicked.emit(np.array([12.0, 12.0, 4.0]))
    marker = next(iter(window.markers.markers))
    window.markers.edit(replace(marker, name="LUL", notes="stable"), "rename")
    window.export_markers_to(tmp_path / "out.json")
    [read] = read_markers(tmp_path / "out.json")
    assert (read.name, read.notes, read.centre_mm) == ("LUL", "stable", marker.centre_mm)
    window.export_markers_to(tmp_path / "missing-folder" / "out.json")
    assert "out.json" in window.error_box.text()


def test_dropping_a_folder_opens_it(qtbot, series, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = _open(qtbot, series)
    other = tmp_path / "dropped"
    write_series(other, 7)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(other))])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: not window.busy and window.volume.shape[0] == 7, timeout=30_000)
    assert str(other) in window.settings.recent()[0]


def test_next_marker_keys_walk_the_markers_and_centre_the_views(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    ws.tool = "marker"
    for voxel in ([8.0, 8.0, 3.0], [20.0, 20.0, 12.0]):
        ws.views["axial"].clicked.emit(np.array(voxel))
    first, second = list(window.markers.markers)
    window.markers.select(first.id)
    qtbot.keyClick(window, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.markers.selected == second.id
    np.testing.assert_allclose(ws.cursor_mm(), second.centre_mm, atol=1.0)
    qtbot.keyClick(window, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.markers.selected == first.id  # wraps round


def _on_screen(view):
    """The image's rectangle in the view's pixels."""
    return view.image.mapRectToDevice(view.image.boundingRect())


def _fitted(view) -> bool:
    """The whole image in view and filling it along one side (as large as it fits)."""
    rect, frame = _on_screen(view), view.graphics.rect()
    inside = rect.adjusted(1, 1, -1, -1)
    shares = (rect.width() / frame.width(), rect.height() / frame.height())
    return frame.contains(inside.toRect()) and max(shares) > 0.9


def test_every_layout_fits_its_images_and_the_default_gives_the_axial_view_its_height(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    assert ws.layout_name == "1+2"
    axial = ws.views["axial"]
    assert _on_screen(axial).height() > 0.6 * axial.graphics.height()  # 1x3 leaves it 0.38 here
    for layout in LAYOUTS:
        ws.set_layout(layout)
        qtbot.wait(20)  # settled, not a passing size on the way
        qtbot.waitUntil(lambda: all(_fitted(v) for v in ws.views.values() if v.isVisible()))
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert ws.layout_name == "1+2"
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: all(_fitted(v) for v in ws.views.values()))


def test_centring_on_a_nodule_never_pans_a_fitting_slice_out_of_view(qtbot, series):
    window = _open(qtbot, series)
    ws = window.workspace
    qtbot.waitUntil(lambda: all(_fitted(v) for v in ws.views.values()))  # laid out
    corner = window.volume.voxel_to_mm(np.array([1.0, 1.0, 2.0]))
    ws.centre_on_mm(corner)
    assert all(_fitted(v) for v in ws.views.values())
    # Zoomed in, the view comes as close to the point as it can while staying on the image.
    axial = ws.views["axial"]
    axial.box.scaleBy((0.25, 0.25))
    ws.centre_on_mm(window.volume.voxel_to_mm(_centre_voxel(window)))
    ws.centre_on_mm(corner)
    view = axial.box.viewRect()
    x, y = axial.scene_point(ws.cursor)
    assert view.contains(x, y) and view.left() == pytest.approx(0, abs=1e-6)
    assert view.top() == pytest.approx(0, abs=1e-6)


def test_corner_overlays_show_the_study_and_the_slice_position_and_hide_the_patient_on_request(qtbot, series):
    window = _open(qtbot, series)
    ws, volume = window.workspace, window.volume
    axial = ws.views["axial"]
    assert axial.corners["left"].text() == "Test, Patient\nTEST-001\n2026-01-01"
    assert axial.corners["right"].text() == "Chest\n2.5 mm"
    z = volume.voxel_to_mm(np.array([0.0, 0.0, axial.index]))[2]  # the slices are axial, unrotated
    assert axial.info.text().splitlines()[1] == f"z {z:.1f} mm"
    qtbot.keyClick(window, Qt.Key.Key_Down)
    assert axial.info.text().splitlines()[1] == f"z {z + volume.spacing[2]:.1f} mm"
    assert ws.views["coronal"].info.text().splitlines()[1].startswith("y ")
    assert ws.views["sagittal"].info.text().splitlines()[1].startswith("x ")
    # Hidden by the reader (and kept for the next window), or blank in anonymised data: date only.
    window.identity_action.trigger()
    assert all(v.corners["left"].text() == "2026-01-01" for v in ws.views.values())
    other = MainWindow()
    qtbot.addWidget(other)
    assert other.workspace.hide_identity
    window.identity_action.trigger()
    assert "TEST-001" in axial.corners["left"].text()
    ws.set_volume(replace(volume, metadata=volume.metadata.anonymised()))
    assert axial.corners["left"].text() == "2026-01-01"
    # A narrow view cuts long lines short rather than letting the corners run into each other.
    ws.set_volume(replace(volume, metadata=replace(volume.metadata, series_description="S" * 300)))
    ws.set_layout("1x3")
    qtbot.waitUntil(lambda: 300 < axial.graphics.width() < 400)  # a third of the views' width
    right = axial.corners["right"]
    assert right.text().startswith("SSS") and right.width() < axial.graphics.width() / 2
    assert right.isVisibleTo(axial)
    window.resize(900, 700)  # too small a view for them: the study's corners make way for the image
    qtbot.wait(20)  # settled, not a passing size on the way
    qtbot.waitUntil(lambda: axial.graphics.width() < CORNERS_MIN_WIDTH)
    assert not right.isVisibleTo(axial)
    assert axial.info.isVisibleTo(axial) and axial.window_label.isVisibleTo(axial)


def _greys(view) -> np.ndarray:
    """The grey levels the view's image is drawn with (the middle row of the rendered image)."""
    from PySide6.QtGui import QColor

    view.image.render()
    image = view.image.qimage
    return np.array([QColor(image.pixel(col, image.height() // 2)).red() for col in range(image.width())])


def test_the_invert_key_reverses_the_greys_and_the_session_keeps_it(qtbot, series):
    window = _open(qtbot, series)
    axial = window.workspace.views["axial"]
    plain = _greys(axial)
    assert plain.max() - plain.min() > 50  # something to invert
    qtbot.keyClick(window, Qt.Key.Key_I)
    np.testing.assert_allclose(_greys(axial), 255 - plain, atol=1)
    assert "inverted" in axial.window_label.text()
    window.close()
    again = _open(qtbot, series)
    assert again.workspace.inverted and "inverted" in again.workspace.views["axial"].window_label.text()
    qtbot.keyClick(again, Qt.Key.Key_I)
    np.testing.assert_allclose(_greys(again.workspace.views["axial"]), plain, atol=1)


def test_the_readers_own_window_presets_sit_beside_the_built_in_ones(qtbot, series, monkeypatch):
    from app.settings_dialog import SettingsDialog

    window = _open(qtbot, series)
    ws = window.workspace
    ws.set_window(800, -200)

    def edit(dialog) -> int:
        dialog.presets.selectRow(0)
        assert not dialog.remove_preset.isEnabled()  # the built-in ones stay
        dialog.add_preset.click()  # the window on screen
        dialog.presets.item(4, 0).setText("Nodule")
        dialog.add_preset.click()
        dialog.presets.item(5, 0).setText("Nodule")
        dialog.accept()
        assert "used twice" in dialog.error.text() and window.settings.presets() == ws.presets
        dialog.presets.selectRow(5)
        dialog.remove_preset.click()
        dialog.accept()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    window.open_settings()
    assert list(ws.presets) == ["Lung", "Mediastinum", "Soft tissue", "Bone", "Nodule"]
    ws.apply_preset(0)
    qtbot.keyClick(window, Qt.Key.Key_5)
    assert ws.window == (800.0, -200.0)
    assert window.actions_by_key["preset_5"].text() == "Nodule window"
    assert window.actions_by_key["preset_5"].isVisible() and not window.actions_by_key["preset_6"].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_6)  # no sixth preset: nothing happens
    assert ws.window == (800.0, -200.0)
    other = MainWindow()
    qtbot.addWidget(other)
    assert other.actions_by_key["preset_5"].text() == "Nodule window"
