"""The main window's background work in its status bar: the one job at a time (cataloguing, loading a
study) and the analysis, with a progress bar and a Cancel button; the model in use; failures as a
window-modal message."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QPushButton

from app.workers import FunctionWorker
from core.dicom.errors import StudyLoadError


class BackgroundJobs:
    """A ``MainWindow`` mixin: ``_run`` a job off the window's thread, ``cancel`` it, ``busy``."""

    def _add_status_widgets(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        self.model_label = QLabel()
        self.model_label.setStyleSheet("color: #555;")
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        analysis = self.review.analysis
        analysis.started.connect(self._analysis_started)
        analysis.progress.connect(self._progress)
        analysis.loaded.connect(self._show_model)
        for signal in (analysis.finished, analysis.failed, analysis.cancelled):
            signal.connect(self._analysis_ended)

    def _analysis_started(self, count: int) -> None:
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        self.statusBar().showMessage(f"Analysing {count} marker(s)...")

    def _analysis_ended(self, *_) -> None:
        if self._worker is None and not self.review.analysis.running:
            self.progress.hide()
            self.cancel_button.hide()
        self._show_model()

    def _show_model(self) -> None:
        analysis = self.review.analysis
        self.model_label.setText(analysis.model_name())
        self.model_label.setToolTip(analysis.model_text())
        self.docks["Nodules ranked by malignancy"].setWindowTitle(
            f"Nodules ranked by malignancy | {analysis.short_text()}"
        )

    def _run(self, job, on_done, alongside: bool = False) -> None:
        """Run ``job`` as the window's one job (the one before it cancelled); ``alongside``: leave a
        running analysis alone (a job started as a study is shown, beside the analysis it starts)."""
        if alongside and self._worker is not None:
            self._worker.cancel()
        elif not alongside:
            self.cancel()
        worker = FunctionWorker(job)
        worker.signals.progress.connect(self._progress)
        # a job that another replaced (it was cancelled, but may have ended first) changes nothing and
        # says nothing: the other one is running, and owns the status bar
        worker.signals.finished.connect(lambda result: on_done(result) if self._worker is worker else None)
        worker.signals.errored.connect(self._errored)
        worker.signals.cancelled.connect(
            lambda: self._idle("Cancelled; nothing was changed") if self._worker is worker else None
        )
        self._worker = worker
        self._workers = [w for w in self._workers if not w.done] + [worker]
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        worker.start()

    @property
    def busy(self) -> bool:
        """Whether a background job is running (or its result is still to be shown)."""
        return self._worker is not None or self.review.busy

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self.review.analysis.cancel()

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _idle(self, message: str) -> None:
        self._worker = None
        if not self.review.analysis.running:
            self.progress.hide()
            self.cancel_button.hide()
        self.statusBar().showMessage(message)

    def _errored(self, error: Exception) -> None:
        text = str(error) if isinstance(error, StudyLoadError) else f"Unexpected error: {error!r}"
        self._idle(f"Could not open: {text}")  # stays visible after the message box is closed
        self._warn("Could not open", text)

    def _warn(self, title: str, text: str) -> None:
        # Window-modal and non-blocking: a batch run or a screenshot never hangs on it.
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
        self.error_box.open()
