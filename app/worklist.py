"""The worklist: every study with a saved session, to review a day's rankings across cases.

Per study: where it was opened from, how many nodules, the highest malignancy probability and the
highest Lung-RADS category of the last analysis, how many nodules a reader confirmed, and when it was
last saved. Double-click opens the study at its top nodule.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core.nodule.lungrads import CATEGORIES
from core.reading.session import SessionCorrupt, SessionStore
from core.reading.worklist import summarise

COLUMNS = ["Study", "Nodules", "Top malignancy", "Lung-RADS", "Reader-confirmed", "Saved"]


class _Item(QTableWidgetItem):
    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(Qt.ItemDataRole.UserRole + 1), other.data(Qt.ItemDataRole.UserRole + 1)
        if mine is None or theirs is None:  # a study never analysed counts as the least suspicious
            return mine is None and theirs is not None
        return mine < theirs


class Worklist(QDialog):
    open_requested = Signal(str, str)  # source path, marker id to select ("" for none)

    def __init__(self, store: SessionStore, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Worklist: studies with saved sessions")
        self.store = store
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setSortingEnabled(True)
        self.table.itemDoubleClicked.connect(self._open)
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        self.resize(820, 420)
        self.refresh()

    def refresh(self) -> None:
        rows, unreadable = [], 0
        for summary in self.store.summaries():
            try:
                session = self.store.load(summary.study_uid, summary.series_uid)
            except SessionCorrupt:
                unreadable += 1
                continue
            if session is not None:
                rows.append(summarise(session))
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for row, data in enumerate(rows):
            top = data["top"]
            cells = [
                (data["study"], data["study"]),
                (str(data["nodules"]), data["nodules"]),
                ("" if top is None else f"{top:.2f}", top),
                (data["lung_rads"], CATEGORIES.index(data["lung_rads"]) if data["lung_rads"] else None),
                (f"{data['confirmed']} of {data['nodules']}", data["confirmed"]),
                (data["saved"][:16].replace("T", " "), data["saved"]),
            ]
            for column, (text, key) in enumerate(cells):
                item = _Item(text)
                item.setData(Qt.ItemDataRole.UserRole + 1, key)
                item.setData(Qt.ItemDataRole.UserRole, (data["source"], data["top_marker"] or ""))
                self.table.setItem(row, column, item)
            self.table.item(row, 0).setToolTip(data["source"] or "opened before sources were kept")
            self.table.item(row, 3).setToolTip(data["lung_rads_rule"])
        self.table.setSortingEnabled(True)
        self.table.sortItems(2, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        text = f"{len(rows)} studies. Double-click to open a study at its most suspicious nodule."
        if unreadable:
            text += f" {unreadable} unreadable session file(s) were moved aside."
        self.note.setText(text)

    def _open(self, item: QTableWidgetItem) -> None:
        source, marker_id = item.data(Qt.ItemDataRole.UserRole)
        if source:
            self.open_requested.emit(source, marker_id)
            self.accept()
        else:
            self.note.setText("This session does not say where its study is; open the study from File.")
