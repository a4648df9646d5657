"""File > Query PACS: search a node's studies, list a study's series, retrieve a study or some series.

Search, the series list and the retrieval each run in the background (``app.pacs_common.start_job``);
the dialog and the window stay free. The retrieval writes into the study cache through
``core.pacs.client.get`` (resumable: a second try fetches only what is missing), shows its progress per
series and can be cancelled (what arrived is kept, whole; closing the dialog cancels too).
``retrieved`` carries the study's folder when it is complete; the window opens it
(``app.pacs_window``). A failure shows its one-line reason.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDate, QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.pacs_common import NodeChooser, start_job
from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.query import Query, SeriesInfo

STUDY_COLUMNS = ["Patient", "Patient ID", "Date", "Accession", "Modalities", "Description", "Series"]
SERIES_COLUMNS = ["", "Series", "Modality", "Images", "Description", "Retrieved"]
GREY = QColor("#888888")


class _Relay(QObject):
    """Carries per-series progress from the retrieval's thread to the dialog (a queued signal)."""

    series_progress = Signal(str, int, int)


class QueryDialog(QDialog):
    retrieved = Signal(object)  # the retrieved study's folder (a Path)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query PACS")
        self.node = NodeChooser()
        self.patient = QLineEdit(placeholderText="name, * as wildcard (Doe^J*)")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.modality = QLineEdit(placeholderText="CT")
        self.use_dates = QCheckBox("from")
        self.date_from = QDateEdit(QDate.currentDate().addYears(-1), calendarPopup=True)
        self.date_to = QDateEdit(QDate.currentDate(), calendarPopup=True)
        for edit in (self.date_from, self.date_to):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)  # any date until "from" is ticked
            self.use_dates.toggled.connect(edit.setEnabled)
        dates = QHBoxLayout()
        for widget in (self.use_dates, self.date_from, QLabel("to"), self.date_to):
            dates.addWidget(widget)
        dates.addStretch(1)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        form = QFormLayout()
        form.addRow("Node", self.node)
        form.addRow("Patient name", self.patient)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Study date", dates)
        form.addRow("Accession", self.accession)
        form.addRow("Modality", self.modality)

        self.studies = self._table(STUDY_COLUMNS)
        self.studies.itemSelectionChanged.connect(self._study_chosen)
        self.series = self._table(SERIES_COLUMNS)
        self.series.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.retrieve_study_button = QPushButton("Retrieve study")
        self.retrieve_study_button.clicked.connect(lambda: self.retrieve(series=False))
        self.retrieve_series_button = QPushButton("Retrieve selected series")
        self.retrieve_series_button.clicked.connect(lambda: self.retrieve(series=True))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Choose a node and search.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addStretch(1)
        for button in (self.retrieve_study_button, self.retrieve_series_button, self.cancel_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.studies, 2)
        layout.addWidget(self.series, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(900, 640)

        self.found: list = []
        self.listing: list[SeriesInfo] = []
        self._node = None  # the node the shown results came from
        self._job = None
        self._relay = _Relay(self)
        self._relay.series_progress.connect(self._show_progress)
        self._busy(False)

    @staticmethod
    def _table(columns: list[str]) -> QTableWidget:
        table = QTableWidget(0, len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        return table

    # -- state -------------------------------------------------------------------------------------------
    def _busy(self, busy: bool) -> None:
        self.search_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        chosen = self._study() is not None
        self.retrieve_study_button.setEnabled(not busy and chosen)
        self.retrieve_series_button.setEnabled(not busy and chosen and bool(self.listing))

    def is_busy(self) -> bool:
        """A search, listing or retrieval is under way (until its answer has been shown)."""
        return self._job is not None

    def _failed(self, text: str) -> None:
        self._job = None
        self.status.setText(text)
        self._busy(False)

    def _study(self):
        rows = self.studies.selectionModel().selectedRows() if self.studies.selectionModel() else []
        return self.found[rows[0].row()] if rows and rows[0].row() < len(self.found) else None

    # -- search ------------------------------------------------------------------------------------------
    def query(self) -> Query:
        start = end = ""
        if self.use_dates.isChecked():
            start, end = (d.date().toString("yyyyMMdd") for d in (self.date_from, self.date_to))
            if start > end:
                raise ValueError("the study date range starts after it ends")
        fields = (self.patient, self.patient_id, self.accession, self.modality)
        name, pid, accession, modality = (f.text().strip() for f in fields)
        return Query(name, pid, start, end, accession, modality.upper())

    def search(self) -> None:
        try:
            node, query = self.node.node(), self.query()
        except (PacsError, ValueError) as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Searching {node.label}...")
        self._job = start_job(
            lambda progress, cancelled: client.find(node, query), self._show_found, self._failed
        )
        self._node = node
        self._busy(True)

    def _show_found(self, found) -> None:
        self._job = None
        self.found = list(found.studies)
        self.listing = []
        self.series.setRowCount(0)
        self.studies.setRowCount(len(self.found))
        for row, s in enumerate(self.found):
            date = f"{s.study_date[:4]}-{s.study_date[4:6]}-{s.study_date[6:8]}" if s.study_date else ""
            cells = [s.patient_name, s.patient_id, date, s.accession, "/".join(s.modalities)]
            cells += [s.description, "" if s.series is None else str(s.series)]
            for column, text in enumerate(cells):
                self.studies.setItem(row, column, QTableWidgetItem(text))
        self.studies.resizeColumnsToContents()
        more = " (limited: narrow the search)" if found.limited else ""
        self.status.setText(f"{len(self.found)} studies on {self._node.label}{more}.")
        self._busy(False)

    # -- series ------------------------------------------------------------------------------------------
    def _study_chosen(self) -> None:
        study = self._study()
        self.listing = []
        self.series.setRowCount(0)
        if study is None or self.is_busy():
            self._busy(self.is_busy())
            return
        node = self._node
        self.status.setText("Listing the study's series...")
        self._job = start_job(
            lambda progress, cancelled: client.list_series(node, study.study_uid),
            self._show_series,
            self._failed,
        )
        self._busy(True)

    def _show_series(self, listing: list[SeriesInfo]) -> None:
        self._job = None
        self.listing = list(listing)
        self.series.setRowCount(len(self.listing))
        for row, s in enumerate(self.listing):
            cells = ["CT" if s.is_ct else "--", "" if s.number is None else str(s.number), s.modality]
            cells += ["?" if s.instances is None else str(s.instances), s.description, ""]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not s.is_ct:
                    item.setForeground(GREY)
                    item.setToolTip("not a CT series: retrieved with the study, not analysed")
                self.series.setItem(row, column, item)
        self.series.resizeColumnsToContents()
        ct = sum(s.is_ct for s in self.listing)
        self.status.setText(
            f"{len(self.listing)} series, {ct} CT. Retrieve the study or the selected series."
        )
        self._busy(False)

    # -- retrieval ---------------------------------------------------------------------------------------
    def retrieve(self, series: bool = False, root: Path | None = None) -> None:
        """Retrieve the chosen study (or its selected series) into ``root`` (default: the study cache)."""
        study = self._study()
        if study is None or self.is_busy():
            return
        uids = None
        if series:
            rows = sorted({i.row() for i in self.series.selectionModel().selectedRows()})
            uids = [self.listing[r].series_uid for r in rows]
            if not uids:
                self.status.setText("Select one or more series first.")
                return
        node, relay = self._node, self._relay

        def per_series(info: SeriesInfo, done: int, total: int) -> None:
            relay.series_progress.emit(info.series_uid, done, total)

        def job(progress, cancelled):
            uid = study.study_uid
            return client.get(node, uid, root, series_uids=uids, progress=per_series, cancelled=cancelled)

        self.status.setText(f"Retrieving from {node.label}...")
        self._job = start_job(job, self._retrieved, self._failed, self._retrieval_cancelled)
        self._busy(True)

    def _show_progress(self, series_uid: str, done: int, total: int) -> None:
        for row, s in enumerate(self.listing):
            if s.series_uid == series_uid and self.series.item(row, 5) is not None:
                self.series.item(row, 5).setText(f"{done}/{total}")
        number = next((s.number for s in self.listing if s.series_uid == series_uid), None)
        self.status.setText(f"Retrieving series {number or '?'}: {done}/{total}")

    def _retrieved(self, done) -> None:
        self._job = None
        self.status.setText(
            f"Retrieved: {done.received} received, {done.skipped} already here, {len(done.series)} series."
        )
        self._busy(False)
        self.retrieved.emit(done.folder)

    def _retrieval_cancelled(self) -> None:
        self._failed("Cancelled: what arrived is kept; Retrieve again to fetch the rest.")

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.status.setText("Cancelling...")

    def done(self, result: int) -> None:
        self.cancel()  # a retrieval does not go on behind a closed dialog
        super().done(result)
