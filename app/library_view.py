"""The labelled-nodule library: every reader-confirmed nodule kept for fine-tuning, with its thumbnail,
label, source and date; filter, remove, export to one file and import on another workstation."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core.nodule.meanings import meaning
from core.reading import library_transfer
from core.reading.library import Library, LibraryError

COLUMNS = ["", "Malignancy", "Attributes rated", "Diameter", "Source", "Series", "Added"]


def describe_label(entry) -> tuple[str, str]:
    label = entry.label
    malignancy = "not rated" if label.malignancy is None else f"{label.malignancy:g}: "
    if label.malignancy is not None:
        malignancy += meaning("malignancy", label.malignancy)
    attributes = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in sorted(label.attributes.items()))
    return malignancy, attributes or "none"


class LibraryView(QDialog):
    def __init__(self, library: Library, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Labelled-nodule library (reader-confirmed, for fine-tuning)")
        self.library = library
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: malignancy, attribute, source, date...")
        self.filter.textChanged.connect(self._apply_filter)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setIconSize(QSize(48, 48))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(52)
        self.table.verticalHeader().hide()
        self.table.setSortingEnabled(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self.remove_selected)
        export = QPushButton("Export library...")
        export.clicked.connect(self._export)
        import_ = QPushButton("Import library...")
        import_.clicked.connect(self._import)
        buttons = QHBoxLayout()
        for button in (remove, export, import_):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self.resize(860, 480)
        self.refresh()

    def refresh(self) -> None:
        entries, problems = self.library.scan()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            malignancy, attributes = describe_label(entry)
            texts = [
                "",
                malignancy,
                attributes,
                f"{entry.nodule.diameter_mm:.1f} mm",
                entry.source,
                f"...{entry.nodule.series_uid[-10:]}",
                entry.added_at[:16].replace("T", " "),
            ]
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, entry.id)
                self.table.setItem(row, column, item)
            pixmap = QPixmap()
            with contextlib.suppress(OSError, KeyError, ValueError):  # a missing thumbnail is no error
                pixmap.loadFromData(entry.thumbnail_png(), "PNG")
            self.table.item(row, 0).setIcon(QIcon(pixmap))
            self.table.item(row, 5).setToolTip(entry.nodule.series_uid)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        studies = len({e.nodule.series_uid for e in entries})
        text = f"{len(entries)} labelled nodule(s) from {studies} series. No patient names or IDs are kept."
        if problems:
            text += f" {len(problems)} unreadable entr(y/ies) left aside: {problems[0]}"
        self.summary.setText(text)
        self._apply_filter(self.filter.text())

    def _apply_filter(self, text: str) -> None:
        words = text.lower().split()
        for row in range(self.table.rowCount()):
            line = " ".join(self.table.item(row, c).text().lower() for c in range(1, len(COLUMNS)))
            self.table.setRowHidden(row, not all(word in line for word in words))

    def remove_selected(self) -> None:
        ids = {
            self.table.item(i.row(), 0).data(Qt.ItemDataRole.UserRole) for i in self.table.selectedIndexes()
        }
        for entry_id in ids:
            try:
                self.library.remove(entry_id)
            except LibraryError as exc:
                self.summary.setText(str(exc))
                return
        self.refresh()

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the library", "library.zip")
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        try:
            count = library_transfer.export(self.library, path)
        except (LibraryError, OSError) as exc:
            self.summary.setText(f"Export failed: {exc}")
            return
        self.summary.setText(f"Exported {count} entr(y/ies) to {path.name}")

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a library")
        if path:
            self.import_from(Path(path))

    def import_from(self, path: Path) -> None:
        try:
            result = library_transfer.import_(self.library, path)
        except (LibraryError, OSError) as exc:
            self.summary.setText(f"Import failed, nothing changed: {exc}")
            return
        self.refresh()
        self.summary.setText(
            f"Imported from {path.name}: {result.added} added, {result.replaced} replaced, "
            f"{result.skipped} skipped"
        )
