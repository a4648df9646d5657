"""The main window. Until the reading workspace lands it is a study browser with an axial preview."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
)

from app.workers import FunctionWorker
from core.dicom.catalogue import Catalogue, SeriesEntry, catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.series import load_series
from core.image_io import is_volume_file, load_volume_file
from core.volume import CTVolume

LUNG_WINDOW = (-600 - 750, -600 + 750)  # level -600, width 1500


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("MTMR Reader (research use, not for clinical decisions)")
        self.resize(1200, 800)
        self.volume: CTVolume | None = None
        self._worker: FunctionWorker | None = None
        self._workers: list[FunctionWorker] = []  # kept alive until their thread has left run()
        self.error_box: QMessageBox | None = None

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Study / series", "Images", "Notes"])
        self.tree.itemActivated.connect(self._series_activated)
        self.image = pg.ImageView()
        self.image.ui.roiBtn.hide()
        self.image.ui.menuBtn.hide()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.image)
        splitter.setSizes([420, 780])
        self.setCentralWidget(splitter)

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Open &folder...", self.choose_folder, "Ctrl+O")
        file_menu.addAction("Open &file...", self.choose_file, "Ctrl+Shift+O")
        file_menu.addAction("&Quit", self.close, "Ctrl+Q")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.placeholder = QLabel("Open a DICOM folder or file (File > Open folder...)")
        self.statusBar().addWidget(self.placeholder)

    # -- opening -------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a study file")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Catalogue ``path`` in the background, then load its largest CT series."""
        if is_volume_file(path):
            self._run(lambda progress, cancelled: load_volume_file(path), self._show_volume)
        else:
            self._run(lambda progress, cancelled: catalogue(path), self._show_catalogue)

    def open_demo(self) -> None:
        """Open the built-in demo study, generating it first on the very first run (about 10 s)."""
        from core.demo import demo_study

        self.statusBar().showMessage("Preparing the demo study (phantom CT with real LIDC nodules)...")
        self._run(lambda progress, cancelled: catalogue(demo_study()), self._show_catalogue)

    def _run(self, job, on_done) -> None:
        self.cancel()
        worker = FunctionWorker(job)
        worker.signals.progress.connect(self._progress)
        worker.signals.finished.connect(on_done)
        worker.signals.errored.connect(self._errored)
        worker.signals.cancelled.connect(lambda: self._idle("Cancelled; nothing was changed"))
        self._worker = worker
        self._workers = [w for w in self._workers if not w.done] + [worker]
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()
        worker.start()

    @property
    def busy(self) -> bool:
        """Whether a background job is running (or its result is still to be shown)."""
        return self._worker is not None

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _idle(self, message: str) -> None:
        self._worker = None
        self.progress.hide()
        self.cancel_button.hide()
        self.statusBar().showMessage(message)

    def _errored(self, error: Exception) -> None:
        text = str(error) if isinstance(error, StudyLoadError) else f"Unexpected error: {error!r}"
        self._idle(f"Could not open: {text}")  # stays visible after the message box is closed
        # Window-modal and non-blocking: a batch run or a screenshot never hangs on it.
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Could not open", text, parent=self)
        self.error_box.open()

    # -- showing -------------------------------------------------------------------------------
    def _show_catalogue(self, found: Catalogue) -> None:
        self.tree.clear()
        for patient in found.patients:
            p_item = QTreeWidgetItem([f"Patient {patient.patient_id or '(no ID)'}", "", ""])
            self.tree.addTopLevelItem(p_item)
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
            self.tree.addTopLevelItem(skipped)
            for entry in found.skipped:
                skipped.addChild(QTreeWidgetItem([entry.path.name, "", entry.reason]))
        self.tree.expandAll()
        try:
            series = found.find_series()
        except StudyLoadError as exc:
            self._idle(str(exc))
            return
        self.load(series)

    def _series_activated(self, item: QTreeWidgetItem) -> None:
        series = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(series, SeriesEntry):
            self.load(series)

    def load(self, series: SeriesEntry) -> None:
        self._run(partial(load_series, series.files, require_ct=True), self._show_volume)

    def _show_volume(self, volume: CTVolume) -> None:
        self.volume = volume
        sx, sy, _ = volume.spacing
        self.image.setImage(
            np.ascontiguousarray(volume.array.transpose(0, 2, 1)),  # ImageView wants (t, x, y)
            autoLevels=False,
            levels=LUNG_WINDOW,
            scale=(sx, sy),
            autoRange=True,
        )
        self.image.setCurrentIndex(volume.shape[0] // 2)
        self.image.setLevels(*LUNG_WINDOW)  # again: changing the frame may re-apply the histogram's
        message = f"{volume!r}"
        if volume.warnings:
            message += " | " + "; ".join(volume.warnings)
        self._idle(message)
