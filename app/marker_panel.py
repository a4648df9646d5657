"""The marker list beside the views: select (centres every view), rename, notes, delete."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.marker_store import MarkerStore


class MarkerPanel(QWidget):
    centre_requested = Signal(object)  # LPS mm

    def __init__(self, store: MarkerStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.volume = None
        self._filling = False
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Marker", "Diameter", "Slice"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 90)
        self.table.setColumnWidth(1, 80)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.itemSelectionChanged.connect(self._row_selected)
        self.table.itemChanged.connect(self._renamed)
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Notes on the selected marker")
        self.notes.setMaximumHeight(90)
        self.save_notes = QPushButton("Save notes")
        self.save_notes.clicked.connect(self._notes_saved)
        self.delete = QPushButton("Delete")
        self.delete.clicked.connect(lambda: self.store.remove(self.store.selected))
        self.empty = QLabel("No markers yet. Press N (marker tool) and click a nodule; drag to size it.")
        self.empty.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_notes)
        buttons.addWidget(self.delete)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.empty)
        layout.addWidget(self.table)
        layout.addWidget(self.notes)
        layout.addLayout(buttons)
        store.changed.connect(self.refresh)
        store.selection_changed.connect(self._show_selection)
        self.refresh()

    def set_volume(self, volume, refresh: bool = True) -> None:
        """``refresh=False``: the markers are about to be replaced, which refreshes the list."""
        self.volume = volume
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        self._filling = True
        markers = list(self.store.markers)
        self.table.setRowCount(len(markers))
        for row, marker in enumerate(markers):
            name = QTableWidgetItem(marker.name)
            name.setData(Qt.ItemDataRole.UserRole, marker.id)
            name.setToolTip(marker.notes or "Double-click to rename")
            size = QTableWidgetItem(f"{marker.diameter_mm:.1f} mm")
            slice_number = ""
            if self.volume is not None:
                z = self.volume.mm_to_voxel(marker.centre_mm)[2]
                slice_number = f"{round(z) + 1}"
            where = QTableWidgetItem(slice_number)
            for item in (size, where):
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, size)
            self.table.setItem(row, 2, where)
        self.empty.setVisible(not markers)
        self._filling = False
        self._show_selection(self.store.selected)

    def _show_selection(self, marker_id: str) -> None:
        self._filling = True
        self.table.clearSelection()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == marker_id:
                self.table.selectRow(row)
        marker = self.store.get(marker_id)
        self.notes.setPlainText(marker.notes if marker else "")
        for widget in (self.notes, self.save_notes, self.delete):
            widget.setEnabled(marker is not None)
        self._filling = False

    def _row_selected(self) -> None:
        if self._filling:
            return
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        marker_id = self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        self.store.select(marker_id)
        marker = self.store.get(marker_id)
        if marker is not None:
            self.centre_requested.emit(marker.centre_mm)

    def _renamed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        marker = self.store.get(item.data(Qt.ItemDataRole.UserRole))
        name = item.text().strip()
        if marker is not None and name and name != marker.name:
            self.store.edit(replace(marker, name=name), "rename")
        elif marker is not None:
            self.refresh()

    def _notes_saved(self) -> None:
        marker = self.store.get(self.store.selected)
        if marker is not None:
            self.store.edit(replace(marker, notes=self.notes.toPlainText()), "notes of")

    def select_next(self, step: int) -> None:
        markers = list(self.store.markers)
        if not markers:
            return
        ids = [m.id for m in markers]
        current = ids.index(self.store.selected) if self.store.selected in ids else -1
        marker = markers[(current + step) % len(markers)]
        self.store.select(marker.id)
        self.centre_requested.emit(marker.centre_mm)
