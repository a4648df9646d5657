"""The main window's docks: the study browser, the markers and the nodule detail (tabbed, right), and
the ranked table of nodules (bottom)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QScrollArea


def add_docks(window) -> dict[str, QDockWidget]:
    """Dock ``window``'s panels (its ``tree``, ``panel`` and ``review``); the docks by title."""
    docks: dict[str, QDockWidget] = {}
    for title, widget, area in (
        ("Studies", window.tree, Qt.DockWidgetArea.LeftDockWidgetArea),
        ("Markers", window.panel, Qt.DockWidgetArea.RightDockWidgetArea),
        ("Nodule detail", _scrolling(window.review.detail), Qt.DockWidgetArea.RightDockWidgetArea),
        ("Nodules ranked by malignancy", window.review.table, Qt.DockWidgetArea.BottomDockWidgetArea),
    ):
        dock = QDockWidget(title, window)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        window.addDockWidget(area, dock)
        docks[title] = dock
    window.tabifyDockWidget(docks["Markers"], docks["Nodule detail"])
    docks["Nodule detail"].raise_()
    window.resizeDocks([docks["Studies"], docks["Markers"]], [260, 340], Qt.Orientation.Horizontal)
    window.resizeDocks([docks["Nodules ranked by malignancy"]], [190], Qt.Orientation.Vertical)
    return docks


def _scrolling(widget):
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    return area
