"""The main window: study browser, the reading workspace, the marker list, and the session behind them.

Loading runs in a background worker (progress and cancel in the status bar). Once a series is shown,
its session (markers, view state) is restored, and every marker change is saved at once, atomically;
view changes are saved half a second after they settle. A window claims the series it shows
(``SessionStore.claim``): the same series opened in a second window or process is read-only, says so
in a banner, and saves nothing, so neither copy overwrites the other's markers.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.help_overlay import HelpOverlay
from app.marker_panel import MarkerPanel
from app.marker_store import MarkerStore
from app.menus import build_menus, refresh_presets
from app.review import Review
from app.settings import Settings
from app.study_browser import StudyBrowser
from app.workers import FunctionWorker, keep_window_thread_responsive
from app.workspace import Workspace
from core.dicom.catalogue import Catalogue, SeriesEntry, catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.series import load_series
from core.imaging.volume_files import is_volume_file, load_volume_file
from core.model.registry import ModelRegistry
from core.nodule.markers import MarkerError, NoduleMarker, read_markers, write_markers
from core.reading.session import Session, SessionBusy, SessionCorrupt, SessionStore
from core.reading.session_key import session_key
from core.volume import CTVolume

TITLE = "MTMR Reader (research use, not for clinical decisions)"
READ_ONLY = "Read-only: this series is open in another MTMR Reader window; changes made here are not saved."


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self.resize(1600, 1000)
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.sessions = SessionStore()
        self.volume: CTVolume | None = None
        self.key: tuple[str, str] | None = None
        self.read_only = False  # the series is claimed by another window or process
        self.source = ""  # the path the shown study was opened from (kept with its session)
        self._opening = ""  # the path being opened, until its volume is shown
        self._last_saved: tuple | None = None  # (key, session document) last written
        self.analyse_on_open = False  # python main.py --analyze
        self._select_on_open = ""  # a marker to select once the study is shown (from the worklist)
        self._worker: FunctionWorker | None = None
        self._workers: list[FunctionWorker] = []  # kept alive until their thread has left run()
        self.error_box: QMessageBox | None = None
        self._demo_markers: list[dict] | None = None

        self.markers = MarkerStore(self)
        self.workspace = Workspace(self.markers, self.settings.presets())
        self.banner = QLabel(READ_ONLY, wordWrap=True, visible=False)  # shown while read-only
        self.banner.setStyleSheet("background: #f6d365; color: #000; padding: 4px;")
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.banner)
        column.addWidget(self.workspace)
        self.setCentralWidget(central)
        self.help = HelpOverlay(self.workspace, self.settings)
        self.tree = StudyBrowser()
        self.tree.series_chosen.connect(self.load)
        self.panel = MarkerPanel(self.markers)
        self.panel.centre_requested.connect(self.workspace.centre_on_mm)
        self.registry = ModelRegistry()
        active = self.registry.active()
        self.review = Review(self.markers, active.path, self)
        self.review.changed.connect(self.save_session)
        self.review.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.review.centre.connect(self.workspace.centre_on_mm)
        self.docks: dict[str, QDockWidget] = {}
        for title, widget, area in (
            ("Studies", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("Markers", self.panel, Qt.DockWidgetArea.RightDockWidgetArea),
            ("Nodule detail", _scrolling(self.review.detail), Qt.DockWidgetArea.RightDockWidgetArea),
            ("Nodules ranked by malignancy", self.review.table, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Markers"], self.docks["Nodule detail"])
        self.docks["Nodule detail"].raise_()
        self.resizeDocks(
            [self.docks["Studies"], self.docks["Markers"]], [260, 340], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.docks["Nodules ranked by malignancy"]], [190], Qt.Orientation.Vertical)

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
        self._show_model()
        self.statusBar().showMessage("Open a DICOM folder or file (File > Open folder...), or drop one here")
        if active.note:  # the active model could not be used: the demo stands in, and the reader is told
            self.statusBar().showMessage(active.note)

        self._save_view = QTimer(self, singleShot=True, interval=500)
        self._save_view.timeout.connect(self.save_session)
        self.markers.changed.connect(self.save_session)
        self.workspace.view_changed.connect(self._save_view.start)
        self.workspace.cursor_moved.connect(lambda _: self._save_view.start())
        self.workspace.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        build_menus(self)
        keep_window_thread_responsive()

    def _tool_toggled(self, on: bool) -> None:
        self.workspace.tool = "marker" if on else "navigate"
        self.statusBar().showMessage(
            "Marker tool: click a nodule to mark it, drag to set its diameter" if on else "Navigate", 5000
        )

    def _auto_toggled(self, on: bool) -> None:
        self.review.auto = on
        self.settings.set_value("analysis/auto", int(on))

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

    def _mip_toggled(self, on: bool) -> None:
        self.workspace.set_slab(on, self.slab.value())

    def open_trainer(self) -> None:
        from app.trainer_dialog import TrainerDialog
        from core.util.paths import user_dir

        self.trainer = TrainerDialog(self.registry, self.review.labelled_library(), user_dir("models"), self)
        self.trainer.model_changed.connect(self.use_model)
        self.trainer.show()  # not modal: reading goes on while it trains

    def open_library(self) -> None:
        from app.library_view import LibraryView

        self.library_view = LibraryView(self.review.labelled_library(), self)
        self.library_view.show()

    def open_models(self) -> None:
        from app.models_page import ModelsPage

        self.models_page = ModelsPage(self.registry, self)
        self.models_page.activated.connect(self.use_model)
        self.models_page.show()

    def use_model(self, version) -> None:
        """Analyse with ``version`` from now on; the open study's markers are analysed again."""
        self.review.analysis.set_model(version.path)
        self._show_model()
        self.statusBar().showMessage(f"Active model: {version.label}", 10000)
        if self.volume is not None and len(self.markers):
            self.review.analyse()
        else:
            self.review.analysis.preload()

    def open_export(self) -> None:
        from app.export_dialog import ExportDialog

        if self.volume is None:
            self.statusBar().showMessage("Open a study first: the report is of the study on screen")
            return
        self.save_session()
        ExportDialog(self).exec()

    def open_worklist(self) -> None:
        from app.worklist import Worklist

        self.save_session()
        self.worklist = Worklist(self.sessions, self)
        self.worklist.open_requested.connect(self._open_from_worklist)
        self.worklist.open()

    def _open_from_worklist(self, source: str, marker_id: str) -> None:
        self._select_on_open = marker_id
        self.open_path(source)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent():
            self.recent_menu.addAction(path, partial(self.open_path, path))
        if not self.settings.recent():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def open_settings(self) -> None:
        from app.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self, current=self.workspace.window)
        if dialog.exec():
            for key, action in self.actions_by_key.items():
                action.setShortcut(QKeySequence(self.settings.shortcut(key)))
            refresh_presets(self)

    # -- opening -------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a study file")
        if path:
            self.open_path(path)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.open_path(paths[0])

    def open_path(self, path: str | Path) -> None:
        """Catalogue ``path`` in the background, then load its largest CT series."""
        self._demo_markers = None
        self._opening = str(Path(path).resolve())
        self.settings.add_recent(str(path))
        if is_volume_file(path):
            self._run(lambda progress, cancelled: load_volume_file(path), self._show_volume)
        else:
            self._run(lambda progress, cancelled: catalogue(path), self._show_catalogue)

    def open_demo(self) -> None:
        """Open the built-in demo study (generated on the very first run, about 10 s), with its
        nodules ready-marked the first time it is opened."""
        from core.phantom.demo import demo_markers, demo_study

        def job(progress, cancelled):
            folder = demo_study()
            return catalogue(folder), demo_markers(folder)

        def done(result) -> None:
            found, self._demo_markers = result
            self._opening = str(found.root or "")
            self._show_catalogue(found)

        self.statusBar().showMessage("Preparing the demo study (phantom CT with real LIDC nodules)...")
        self._run(job, done)

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

    # -- showing ---------------------------------------------------------------------------------------
    def _show_catalogue(self, found: Catalogue) -> None:
        self.tree.show_catalogue(found)
        try:
            series = found.find_series()
        except StudyLoadError as exc:
            self._idle(str(exc))
            return
        self.load(series)

    def load(self, series: SeriesEntry) -> None:
        self._run(partial(load_series, series.files, require_ct=True), self._show_volume)

    def _show_volume(self, volume: CTVolume) -> None:
        self.save_session()  # the study being left, with its own source
        if self.key is not None:
            self.sessions.release(*self.key)
        self.volume = volume
        self.source = self._opening
        self.key = session_key(volume)
        self.read_only = not self.sessions.claim(*self.key)
        self.banner.setVisible(self.read_only)
        session = self._restore_session(volume)
        self.review.set_study(
            volume, dict(session.labels) if session else {}, session.results if session else {}, self.key
        )
        self.markers.reset(session.markers if session else self._initial_markers(volume))
        self.panel.set_volume(volume)
        self.workspace.set_volume(volume, session.view if session else None)
        message = volume.summary()
        if volume.warnings:
            message += " | " + "; ".join(volume.warnings)
        if session:
            message += f" | session restored: {len(session.markers)} marker(s)"
        if len(self.markers) and not self.review.analysis.current(self.markers.markers):
            message += " | press Analyse (A) to rank the marked nodules"
        if self.analyse_on_open:
            self.review.analyse()
        else:
            self.review.analysis.preload()
        self._open_on_nodule()
        self._idle(message)

    def _open_on_nodule(self) -> None:
        """Open on a nodule, selected and centred: the one asked for (worklist), else the top-ranked,
        else the first marker; an analysis that ends before the reader picks another moves to its top."""
        requested, self._select_on_open = self.markers.get(self._select_on_open), ""
        marker = requested or self.review.top_nodule()
        self.review.provisional = "" if requested or marker is None else marker.id
        if marker is not None:
            self.markers.select(marker.id)
            self.workspace.centre_on_mm(marker.centre_mm)

    def _restore_session(self, volume: CTVolume) -> Session | None:
        try:
            return self.sessions.load(*self.key)
        except SessionCorrupt as exc:
            self._warn("Saved session unreadable", f"{exc}\nThe study opens without its saved markers.")
            return None

    def _initial_markers(self, volume: CTVolume) -> list[NoduleMarker]:
        markers, self._demo_markers = self._demo_markers or [], None
        made = []
        for n, item in enumerate(markers, start=1):
            made.append(
                NoduleMarker(f"demo-{n}", f"N{n}", tuple(item["centre_mm"]), float(item["diameter_mm"]))
            )
        return made

    # -- the session -------------------------------------------------------------------------------------
    def save_session(self) -> None:
        if self.volume is None or self.key is None or self.read_only:
            return
        self._save_view.stop()
        session = Session(
            study_uid=self.key[0],
            series_uid=self.key[1],
            markers=list(self.markers.markers),
            labels=self.review.labels,
            view=self.workspace.view_state(),
            results=self.review.results(),
            source=self.source,
        )
        document = session.to_dict()
        if self._last_saved == (self.key, document) and self.sessions.path_for(*self.key).is_file():
            return  # unchanged since written: no fsyncs on the window's thread (~15 ms each)
        try:
            self.sessions.save(session)
            self._last_saved = (self.key, document)
        except (OSError, SessionBusy) as exc:
            self.statusBar().showMessage(f"Could not save the session: {exc}")

    def import_markers(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import markers", "", "Markers (*.json)")
        if path:
            self.import_markers_from(Path(path))

    def import_markers_from(self, path: Path) -> int:
        """Add the markers of ``path`` (one undoable step each); returns how many were added."""
        if self.volume is None:
            return 0
        try:
            markers = read_markers(path)
        except MarkerError as exc:
            self._warn("Could not import markers", str(exc))
            return 0
        added = 0
        self.markers.undo.beginMacro(f"import {path.name}")
        for marker in markers:
            if not self.volume.contains_mm(marker.centre_mm):
                continue
            if marker.id in self.markers.markers:  # already here (imported twice): a copy with a new id
                fresh = self.markers.markers.new_marker(marker.centre_mm, marker.diameter_mm)
                marker = replace(marker, id=fresh.id, name=fresh.name)
            self.markers.add(marker)
            added += 1
        self.markers.undo.endMacro()
        skipped = len(markers) - added
        self.statusBar().showMessage(
            f"Imported {added} marker(s) from {path.name}"
            + (f"; {skipped} outside this series" if skipped else "")
        )
        return added

    def export_markers(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export markers", "markers.json", "Markers (*.json)")
        if path:
            self.export_markers_to(Path(path))

    def export_markers_to(self, path: Path) -> None:
        try:
            write_markers(path, list(self.markers.markers))
        except (OSError, MarkerError) as exc:
            self._warn("Could not export markers", f"{path.name}: {exc}")
            return
        self.statusBar().showMessage(f"Exported {len(self.markers)} marker(s) to {path.name}")

    def select_next(self, step: int) -> None:
        """The next (or previous) nodule: in rank order once analysed, else in the marker list's."""
        table = self.review.table
        order = [table.marker_at(row) for row in range(table.rowCount())]
        if not order or any(not marker_id for marker_id in order):
            order = [m.id for m in self.markers.markers]
        if not order:
            return
        current = order.index(self.markers.selected) if self.markers.selected in order else -1
        marker = self.markers.get(order[(current + step) % len(order)])
        self.markers.select(marker.id)
        self.workspace.centre_on_mm(marker.centre_mm)

    def closeEvent(self, event) -> None:
        self.save_session()
        if self.key is not None:
            self.sessions.release(*self.key)
        self.cancel()
        super().closeEvent(event)


def _scrolling(widget):
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    return area
