"""The study browser: the catalogue of what was opened (patients, studies, series with the problems
found, and every skipped file with its reason); activating a series loads it. Names too long for the
dock are elided in the middle (the end, e.g. "0.7 mm x 1.25 mm", tells series apart) and shown whole
in their tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem

from core.dicom.catalogue import Catalogue, SeriesEntry


class StudyBrowser(QTreeWidget):
    series_chosen = Signal(object)  # SeriesEntry

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Study / series", "Images", "Problems found"])
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # names fill what is left
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.itemActivated.connect(self._activated)

    def show_catalogue(self, found: Catalogue) -> None:
        self.clear()
        for patient in found.patients:
            p_item = _item(f"Patient {patient.patient_id or '(no ID)'}")
            self.addTopLevelItem(p_item)
            for study in patient.studies:
                s_item = _item(f"Study {study.date} {study.description}".strip())
                p_item.addChild(s_item)
                for series in study.series:
                    label = f"{series.modality or '?'} {series.number or ''} {series.description}".strip()
                    notes = "; ".join(series.problems)
                    item = _item(label, str(series.n_images), notes)
                    item.setData(0, Qt.ItemDataRole.UserRole, series)
                    s_item.addChild(item)
        if found.skipped:
            skipped = _item(f"Skipped files ({len(found.skipped)})")
            self.addTopLevelItem(skipped)
            for entry in found.skipped:
                skipped.addChild(_item(entry.path.name, "", entry.reason))
        self.expandAll()
        notes = bool(found.skipped) or any(series.problems for series in found.all_series())
        self.setColumnHidden(2, not notes)  # no empty column taking the names' room
        width = max(self.sizeHintForColumn(2), self.header().sectionSizeHint(2))
        self.header().resizeSection(2, min(width, 160))

    def _activated(self, item: QTreeWidgetItem) -> None:
        series = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(series, SeriesEntry):
            self.series_chosen.emit(series)


def _item(name: str, images: str = "", notes: str = "") -> QTreeWidgetItem:
    item = QTreeWidgetItem([name, images, notes])
    item.setToolTip(0, name)
    item.setToolTip(2, notes)
    return item
