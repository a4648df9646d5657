"""The export dialog's "Send to" row: after the report is written, its DICOM SR, its SEG (when one was
written) and its PDF (as an Encapsulated PDF) are sent to a node with ``core.report.send.send_export``,
the sender of ``main.py report --send``, in the background. One row per object says success, warning
or failure with its DICOM status; "Retry failed" sends the failed files again (to the node chosen
then). Sending only reads the files: the local copies are never touched. Every result goes to the
send log (``core.pacs.sendlog``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.pacs_common import NodeChooser, start_job
from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.sendlog import FAILURE, SUCCESS, SendResult

COLOURS = {SUCCESS: QColor("#1a7f37"), FAILURE: QColor("#c00000")}  # a warning keeps the text colour
SEND_KEY = "export/send_node"


class SendPanel(QWidget):
    def __init__(self, settings=None, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.enabled = QCheckBox("Send to")
        self.enabled.setToolTip("After writing, send the SR, the SEG and the PDF (as DICOM) to this node")
        self.node = NodeChooser()
        remembered = str(settings.value(SEND_KEY, "") or "") if settings is not None else ""
        if remembered:  # the node last sent to, offered; sending stays a choice made each time
            self.node.setEditText(remembered)
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.clicked.connect(self.retry)
        self.retry_button.setEnabled(False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.enabled)
        row.addWidget(self.node, 1)
        row.addWidget(self.retry_button)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Object", "Result", "Status", "Reason"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        self.results: list[SendResult] = []
        self._job = None

    def is_busy(self) -> bool:
        return self._job is not None

    def after_export(self, done, source_files: Callable[[], Sequence[Path]], anonymise: bool) -> None:
        """Send what ``done`` (an ``Export``) wrote, when "Send to" is ticked; ``source_files()`` (run in
        the background) gives the CT's files, whose study a PDF without an SR is filed under."""
        if not self.enabled.isChecked() or self.is_busy():
            return
        from core.report.send import send_export

        try:
            node = self.node.node()
        except PacsError as exc:
            self.status.setText(f"Not sent: {exc}")
            return
        if self.settings is not None:
            self.settings.set_value(SEND_KEY, self.node.currentText().strip())

        def job(progress, cancelled):
            return send_export(done, node, list(source_files()), anonymise)

        self._start(node, job)

    def retry(self) -> None:
        """Send the failed objects again, to the node chosen now."""
        paths = [Path(r.path) for r in self.results if r.outcome == FAILURE]
        if not paths or self.is_busy():
            return
        try:
            node = self.node.node()
        except PacsError as exc:
            self.status.setText(f"Not sent: {exc}")
            return
        kept = [r for r in self.results if r.outcome != FAILURE]

        def job(progress, cancelled):
            return kept, client.send(node, paths)

        self._start(node, job)

    def _start(self, node, job) -> None:
        self.status.setText(f"Sending to {node.label}...")
        self.retry_button.setEnabled(False)
        self._job = start_job(job, self._sent, self._failed)

    def _failed(self, text: str) -> None:
        self._job = None
        self.status.setText(f"Not sent: {text} (the files are unchanged)")
        self.retry_button.setEnabled(any(r.outcome == FAILURE for r in self.results))

    def _sent(self, sent) -> None:
        self._job = None
        if isinstance(sent, tuple):  # a retry: the earlier successes, then the new results
            kept, fresh = sent
            self.results, notes = [*kept, *fresh], []
        else:
            self.results, notes = list(sent.results), list(sent.notes)
        self.table.setRowCount(len(self.results))
        for row, result in enumerate(self.results):
            code = "" if result.status is None else f"0x{result.status:04X}"
            cells = (Path(result.path).name, result.outcome, code, result.reason)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 1 and result.outcome in COLOURS:
                    item.setForeground(COLOURS[result.outcome])
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.table.setVisible(bool(self.results))
        failed = sum(r.outcome == FAILURE for r in self.results)
        summary = f"{len(self.results) - failed} of {len(self.results)} sent"
        if not self.results:
            summary = "Nothing sent: no SR, SEG or PDF was written"
        if failed:
            summary += f"; {failed} failed (the files are unchanged): Retry failed sends them again"
        self.status.setText("; ".join([summary, *notes]))
        self.retry_button.setEnabled(bool(failed))
