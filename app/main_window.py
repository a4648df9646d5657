"""The main window: study browser, the reading workspace, the marker list, and the session behind them.

Loading runs in a background worker (progress and cancel in the status bar). Once a series is shown,
its session (markers, view state) is restored, and every marker change is saved at once, atomically;
view changes are saved half a second after they settle. A window claims the series it shows
(``SessionStore.claim``): the same series opened in a second window or process is read-only, says so
in a banner, and saves nothing, so neither copy overwrites the other's markers.

``MainWindow`` is the composition: it makes the widgets and wires them; what it does lives in mixins,
one module each: opening a study (``app.window_opening``), the background job and the status bar
(``app.window_jobs``), the session's claim and saving (``app.window_session``), marker files
(``app.window_marker_files``), the dialogs it opens (``app.window_dialogs``), the comparison with
the prior (``app.compare_prior``) and re-pairing its nodules by hand (``app.compare_pairing``); the
docks are laid out by ``app.docks`` and the menus by ``app.menus``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from app.compare_carry import Carrying
from app.compare_lookback import LookingBack
from app.compare_pairing import Repairing
from app.compare_prior import PriorComparison
from app.compare_view import PriorView
from app.docks import add_docks
from app.help_overlay import HelpOverlay
from app.marker_panel import MarkerPanel
from app.marker_store import MarkerStore
from app.menus import build_menus
from app.review import Review
from app.settings import Settings
from app.study_browser import StudyBrowser
from app.window_dialogs import WindowDialogs
from app.window_jobs import BackgroundJobs
from app.window_marker_files import MarkerFiles
from app.window_opening import StudyOpening
from app.window_session import SessionKeeping
from app.workers import FunctionWorker, keep_window_thread_responsive
from app.workspace import Workspace
from core.dicom.loader_process import warm_up as warm_up_loader
from core.model.registry import ModelRegistry
from core.reading.session import SessionStore
from core.volume import CTVolume

TOOL_ACTIONS = {
    "marker_tool": "marker",
    "ruler_tool": "ruler",
    "brush_tool": "brush",
    "eraser_tool": "eraser",
}
TOOL_HELP = {
    "marker": "Marker tool: click a nodule to mark it, drag to set its diameter",
    "ruler": "Ruler: drag in any view to measure a distance in mm; right-click on one removes it, Esc all",
    "brush": "Brush: click or drag to add a ball (radius in the toolbar) to the selected nodule's mask",
    "eraser": "Eraser: click or drag to take a ball (radius in the toolbar) from the selected mask",
}
TITLE = "MTMR Reader (research use, not for clinical decisions)"
READ_ONLY = "Read-only: this series is open in another MTMR Reader window; changes made here are not saved."


class MainWindow(
    Carrying,
    LookingBack,
    Repairing,
    PriorComparison,
    StudyOpening,
    BackgroundJobs,
    SessionKeeping,
    MarkerFiles,
    WindowDialogs,
    QMainWindow,
):
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
        self._showing = None  # the volume being shown, until its views and session are whole
        self.analyse_on_open = False  # python main.py --analyze
        self._select_on_open = ""  # a marker to select once the study is shown (from the worklist)
        self._worker: FunctionWorker | None = None
        self._workers: list[FunctionWorker] = []  # kept alive until their thread has left run()
        self.error_box: QMessageBox | None = None
        self._demo_markers: list[dict] | None = None
        self.follow_up: dict = {}  # the shown study's follow-up reading (FollowUp.to_dict()), or {}

        self.markers = MarkerStore(self)
        self.workspace = Workspace(self.markers, self.settings.presets())
        self.banner = QLabel(READ_ONLY, wordWrap=True, visible=False)  # shown while read-only
        self.banner.setStyleSheet("background: #f6d365; color: #000; padding: 4px;")
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.banner)
        self.prior_view = PriorView(self.workspace)  # the prior beside the current (app.compare_prior)
        studies = QSplitter()
        studies.addWidget(self.workspace)
        studies.addWidget(self.prior_view)
        column.addWidget(studies)
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
        self.prior_view.pair_patches = self.review.detail.pair  # both time points in the detail
        self.prior_view.view.right_clicked.connect(self._prior_menu)  # carry a prior nodule
        self.review.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.review.table.customContextMenuRequested.connect(self._table_menu)  # re-pairing
        self.workspace.segmentation = self.review.segmentation
        self.review.segmentation.changed.connect(self.workspace.redraw_overlays)
        self.docks = add_docks(self)
        self._add_status_widgets()
        self._show_model()
        self.statusBar().showMessage("Open a DICOM folder or file (File > Open folder...), or drop one here")
        if active.note:  # the active model could not be used: the demo stands in, and the reader is told
            self.statusBar().showMessage(active.note)

        self._keep_session_saved()
        self.workspace.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        build_menus(self)
        keep_window_thread_responsive()
        warm_up_loader()  # its interpreter and imports start now, not with the first study

    def _tool_toggled(self, on: bool, tool: str = "marker") -> None:
        """One tool at a time: turning one on turns the others' buttons off; off is navigating."""
        if not on and self.workspace.tool != tool:
            return
        self.workspace.tool = tool if on else "navigate"
        for key, name in TOOL_ACTIONS.items():
            action = getattr(self, "actions_by_key", {}).get(key)
            if action is not None and name != tool and action.isChecked():
                action.setChecked(False)
        self.statusBar().showMessage(TOOL_HELP[tool] if on else "Navigate", 5000)

    def _auto_toggled(self, on: bool) -> None:
        self.review.auto = on
        self.settings.set_value("analysis/auto", int(on))

    def _mip_toggled(self, on: bool) -> None:
        self.workspace.set_slab(on, self.slab.value())

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
        self.workspace.centre_on_mm(self.review.focus_mm(marker))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.open_path(paths[0])

    def closeEvent(self, event) -> None:
        self.save_session()
        if self.key is not None:
            self.sessions.release(*self.key)
        self.cancel()
        super().closeEvent(event)
