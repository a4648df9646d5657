"""The window's menus, keyboard shortcuts and toolbar (shortcuts from the reader's settings)."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDoubleSpinBox

from app.pacs_window import add_pacs_actions
from app.settings import DEFAULT_SHORTCUTS, MAX_PRESETS
from app.workspace import LAYOUTS
from app.workspace_tools import BRUSH_RANGE_MM, THRESHOLD_HU


def _spin(limits: tuple[float, float], step: float, suffix: str, value: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(*limits)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def _toggler(window, tool: str):
    def toggled(on: bool) -> None:
        window._tool_toggled(on, tool)

    return toggled


def _action(window, key: str, handler, menu=None, checkable: bool = False) -> QAction:
    text = DEFAULT_SHORTCUTS[key][1].split(" (")[0].split(":")[0]
    action = QAction(text[0].upper() + text[1:], window)
    action.setToolTip(f"{DEFAULT_SHORTCUTS[key][1]} [{window.settings.shortcut(key)}]")
    action.setShortcut(QKeySequence(window.settings.shortcut(key)))
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.setCheckable(checkable)
    action.triggered.connect(handler)
    window.addAction(action)
    if menu is not None:
        menu.addAction(action)
    window.actions_by_key[key] = action
    return action


def build_menus(window) -> None:
    """File, Edit, Model, View and Help menus, every shortcut action, and the reading toolbar."""
    window.actions_by_key: dict[str, QAction] = {}
    ws = window.workspace
    file_menu = window.menuBar().addMenu("&File")
    file_menu.addAction("Open &folder...", window.choose_folder, QKeySequence.StandardKey.Open)
    file_menu.addAction("Open f&ile...", window.choose_file, "Ctrl+Shift+O")
    file_menu.addAction("Open the &demo study", window.open_demo)
    file_menu.addAction("&Worklist...", window.open_worklist, "Ctrl+L")
    window.recent_menu = file_menu.addMenu("&Recent studies")
    window.recent_menu.aboutToShow.connect(window._fill_recent)
    add_pacs_actions(window, file_menu)
    file_menu.addSeparator()
    file_menu.addAction("&Import markers...", window.import_markers)
    file_menu.addAction("&Export markers...", window.export_markers)
    file_menu.addAction("Export &report (SR, PDF, CSV, JSON)...", window.open_export, "Ctrl+E")
    file_menu.addSeparator()
    file_menu.addAction("&Quit", window.close, QKeySequence.StandardKey.Quit)
    edit = window.menuBar().addMenu("&Edit")
    undo = window.markers.undo.createUndoAction(window, "&Undo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo = window.markers.undo.createRedoAction(window, "&Redo")
    redo.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Shift+Z")])
    edit.addActions([undo, redo])
    window.undo_action, window.redo_action = undo, redo
    edit.addSeparator()
    window.tool_action = _action(window, "marker_tool", window._tool_toggled, edit, checkable=True)
    seg = window.review.segmentation
    for key, tool in (("ruler_tool", "ruler"), ("brush_tool", "brush"), ("eraser_tool", "eraser")):
        _action(window, key, _toggler(window, tool), edit, checkable=True)
    _action(
        window, "clear_rulers", lambda: window.help.hide() if window.help.isVisible() else ws.clear_rulers()
    )
    _action(window, "grow_mask", lambda: seg.grow(window.markers.selected, 1), edit)
    _action(window, "shrink_mask", lambda: seg.grow(window.markers.selected, -1), edit)
    _action(
        window,
        "threshold_mask",
        lambda: seg.threshold(window.markers.selected, window.threshold.value()),
        edit,
    )
    _action(window, "resegment", lambda: seg.resegment(window.markers.selected), edit)
    window.analyse_action = _action(window, "analyse", window.review.analyse, edit)
    window.analyse_action.setText("Analyse")
    window.auto_action = QAction("Analyse automatically after each change", window, checkable=True)
    window.auto_action.setChecked(bool(window.settings.value("analysis/auto", 0)))
    window.auto_action.toggled.connect(window._auto_toggled)
    window._auto_toggled(window.auto_action.isChecked())
    edit.addAction(window.auto_action)
    _action(window, "delete_marker", lambda: window.markers.remove(window.markers.selected), edit)
    _action(window, "next_marker", lambda: window.select_next(1), edit)
    _action(window, "previous_marker", lambda: window.select_next(-1), edit)
    edit.addSeparator()
    edit.addAction("&Settings...", window.open_settings)
    model = window.menuBar().addMenu("&Model")
    model.addAction("&Fine-tune on my confirmed nodules...", window.open_trainer)
    model.addAction("Labelled &library...", window.open_library)
    model.addAction("&Models...", window.open_models)
    view = window.menuBar().addMenu("&View")
    for key, steps in (("next_slice", 1), ("previous_slice", -1), ("next_10", 10), ("previous_10", -10)):
        _action(window, key, partial(ws.scroll, steps))
    _action(window, "first_slice", lambda: ws.set_slice(ws.active, 0))
    _action(window, "last_slice", lambda: ws.set_slice(ws.active, 10**6))
    for number in range(MAX_PRESETS):
        _action(window, f"preset_{number + 1}", partial(ws.apply_preset, number), view)
    refresh_presets(window)
    window.invert_action = _action(window, "invert", lambda: ws.set_inverted(not ws.inverted), view)
    window.invert_action.setText("Invert")
    view.addSeparator()
    for layout in LAYOUTS:
        _action(window, f"layout_{layout}", partial(ws.set_layout, layout), view)
    window.mip_action = _action(window, "mip", window._mip_toggled, view, checkable=True)
    _action(window, "cine", ws.toggle_cine, view)
    _action(window, "reset_view", ws.reset_views, view)
    _action(window, "compare_prior", window.compare_with_prior, view)
    crosshair = _action(window, "crosshair", ws.show_crosshair, view, checkable=True)
    crosshair.setChecked(True)
    outlines = _action(window, "outlines", ws.show_masks, view, checkable=True)
    outlines.setChecked(True)

    def hide_identity(on: bool) -> None:
        ws.set_hide_identity(on)
        window.settings.set_value("display/hide_identity", int(on))

    window.identity_action = QAction("Hide patient name and ID", window, checkable=True)
    window.identity_action.setToolTip("Leave the patient's name and ID out of the views' corners")
    window.identity_action.setChecked(bool(window.settings.value("display/hide_identity", 0)))
    window.identity_action.toggled.connect(hide_identity)
    ws.set_hide_identity(window.identity_action.isChecked())
    view.addAction(window.identity_action)
    help_menu = window.menuBar().addMenu("&Help")
    _action(window, "help", window.help.toggle, help_menu)

    tools = window.addToolBar("Reading")
    tools.setObjectName("Reading")
    tools.addAction(window.tool_action)
    for key in ("ruler_tool", "brush_tool", "eraser_tool"):
        tools.addAction(window.actions_by_key[key])
    window.brush = _spin(BRUSH_RANGE_MM, 0.5, " mm", ws.brush_mm, "Brush and eraser radius")
    window.brush.valueChanged.connect(ws.set_brush_mm)
    tools.addWidget(window.brush)
    key = window.settings.shortcut("threshold_mask")
    tip = f"Mask threshold (applied to the selected nodule with {key})"
    window.threshold = _spin((-1000.0, 1000.0), 50.0, " HU", THRESHOLD_HU, tip)
    window.threshold.setDecimals(0)
    tools.addWidget(window.threshold)
    window.actions_by_key["threshold_mask"].setText("Threshold")
    tools.addAction(window.actions_by_key["threshold_mask"])
    tools.addAction(window.analyse_action)
    tools.addActions([undo, redo])
    tools.addSeparator()
    for layout in LAYOUTS:
        tools.addAction(window.actions_by_key[f"layout_{layout}"])
        window.actions_by_key[f"layout_{layout}"].setText(layout)
    tools.addSeparator()
    tools.addActions([window.actions_by_key[f"preset_{n + 1}"] for n in range(MAX_PRESETS)])
    tools.addAction(window.invert_action)
    tools.addSeparator()
    tools.addAction(window.mip_action)
    window.slab = _spin((5.0, 20.0), 1.0, " mm", ws.slab_thickness, "MIP slab thickness")
    window.slab.valueChanged.connect(lambda mm: ws.set_slab(window.mip_action.isChecked(), mm))
    tools.addWidget(window.slab)
    tools.addAction(window.actions_by_key["compare_prior"])
    tools.addAction(window.actions_by_key["help"])


def refresh_presets(window) -> None:
    """One action per window preset (the built-in ones, then the reader's own), named after it."""
    presets = window.settings.presets()
    window.workspace.presets = presets
    for number in range(MAX_PRESETS):
        action = window.actions_by_key[f"preset_{number + 1}"]
        name = list(presets)[number] if number < len(presets) else ""
        action.setVisible(bool(name))
        if name:
            width, level = presets[name]
            action.setText(f"{name} window")
            action.setToolTip(f"{name} window {width:g}/{level:g} [{action.shortcut().toString()}]")
