"""The study browser: the catalogue of what was opened (patients, studies, series with the problems
found, and every skipped file with its reason); activating a series loads it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from core.dicom.catalogue import Catalogue, SeriesEntry


class StudyBrowser(QTreeWidget):
    series_chosen = Signal(object)  # SeriesEntry

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Study / series", "Images", "Problems found"])
        self.itemActivated.connect(self._activated)

    def show_catalogue(self, found: Catalogue) -> None:
        self.clear()
        for patient in found.patients:
            p_item = QTreeWidgetItem([f"Patient {patient.patient_id or '(no ID)'}", "", ""])
            self.addTopLevelItem(p_item)
            for study in patient.studies:
                s_item = QTreeWidgetItem([f"Study {study.date} {study.description}".strip(), "", ""])
                p_item.addChild(s_item)
                for series in study.series:
                    label = f"{series.modality or '?'} {series.number or ''} {series.description}".strip()
                    notes = "; ".join(series.problems)
                    item = QTreeWidgetItem([label, str(series.n_images), notes])
                    item.setData(0, Qt.ItemDataRole.UserRole, series)
                    item.setToolTip(2, notes)
                    s_item.addChild(item)
        if found.skipped:
            skipped = QTreeWidgetItem([f"Skipped files ({len(found.skipped)})", "", ""])
            self.addTopLevelItem(skipped)
            for entry in found.skipped:
                skipped.addChild(QTreeWidgetItem([entry.path.name, "", entry.reason]))
        self.expandAll()
        for column in range(3):
            self.resizeColumnToContents(column)

    def _activated(self, item: QTreeWidgetItem) -> None:
        series = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(series, SeriesEntry):
            self.series_chosen.emit(series)
