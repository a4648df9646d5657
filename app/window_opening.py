"""Opening a study in the main window: chosen in a dialog, dropped, from the recent files or the
worklist, or the demo; catalogued and loaded in the background, then shown with its session restored
and a nodule selected."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog

from core.dicom.catalogue import Catalogue, SeriesEntry, catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.loader_process import run_isolated
from core.dicom.series import load_series
from core.imaging.mpr import VIEWS
from core.imaging.volume_files import is_volume_file, load_volume_file
from core.nodule.markers import NoduleMarker
from core.volume import CTVolume


class StudyOpening:
    """A ``MainWindow`` mixin: ``open_path``, ``open_demo``, ``load`` a series, and showing the result."""

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a study file")
        if path:
            self.open_path(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent():
            self.recent_menu.addAction(path, partial(self.open_path, path))
        if not self.settings.recent():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def open_path(self, path: str | Path) -> None:
        """Catalogue ``path`` in the background, then load its largest CT series."""
        self._demo_markers = None
        self._opening = str(Path(path).resolve())
        self.settings.add_recent(str(path))
        # in the loader's own process (core.dicom.loader_process): beside the window's, a loader
        # thread held the interpreter and memory-map locks the window thread then waited for
        if is_volume_file(path):
            self._run(lambda progress, cancelled: run_isolated(load_volume_file, path), self._show_volume)
        else:
            self._run(lambda progress, cancelled: run_isolated(catalogue, path), self._show_catalogue)

    def open_demo(self) -> None:
        """Open the built-in demo study (generated on the very first run with its prior, about 20 s), with its
        nodules ready-marked the first time it is opened."""
        from core.phantom.demo import demo_markers, demo_study

        def job(progress, cancelled):
            folder = demo_study()
            return run_isolated(catalogue, folder), demo_markers(folder)

        def done(result) -> None:
            found, self._demo_markers = result
            self._opening = str(found.root or "")
            self._show_catalogue(found)

        self.statusBar().showMessage("Preparing the demo study (phantom CT with real LIDC nodules)...")
        self._run(job, done)

    def _show_catalogue(self, found: Catalogue) -> None:
        self.tree.show_catalogue(found)
        try:
            series = found.find_series()
        except StudyLoadError as exc:
            self._idle(str(exc))
            return
        self.load(series)

    def load(self, series: SeriesEntry) -> None:
        self._run(partial(run_isolated, load_series, series.files, require_ct=True), self._show_volume)

    def _show_volume(self, volume: CTVolume) -> None:
        """Show a loaded study in steps, each its own turn of the event loop with its own window paint,
        so that none holds the window for long (together they take 30-50 ms): the session; its saved
        layout, when another; the nodule lists; the nodule to open on, selected (its detail); the
        view the reader works in, centred on it; each other view; the status line. The window stays
        busy until the last step."""
        self.save_session()  # the study being left, with its own source
        self._showing = volume  # no saves until it is whole (the view would be the last study's)
        self.volume = volume
        self.source = self._opening
        self._claim(volume)
        self.workspace.leave()  # the views wait for their own turn, drawing nothing of this study
        session = self._restore_session(volume)
        self._step_by_step(volume, [partial(self._lay_out, volume, session)])

    def _lay_out(self, volume: CTVolume, session) -> None:
        """The study's saved layout, when another, and each view it laid out painted in a turn."""
        held = self.workspace.lay_out_for(session.view if session else None)
        paints = [partial(self.workspace.paint_held, name) for name in held]
        self._step_by_step(volume, [*paints, partial(self._show_lists, volume, session)])

    def _show_lists(self, volume: CTVolume, session) -> None:
        # the study and its markers in one turn: the review never holds one study's markers with another
        self.review.set_study(
            volume,
            dict(session.labels) if session else {},
            session.results if session else {},
            self.key,
            session.masks if session else {},
            session.measurements if session else {},
        )
        # the marker list and the table's follow-up columns are filled once, by the markers' reset
        self.panel.set_volume(volume, refresh=False)
        self._restore_follow_up(session, fill=False)
        self.markers.reset(session.markers if session else self._initial_markers(volume))
        self._step_by_step(volume, [partial(self._open_on, volume, session)])

    def _open_on(self, volume: CTVolume, session) -> None:
        """Select the nodule to open on before the views are shown: their markers are drawn once,
        already selected (selecting it after the views redrew all three in the last step)."""
        marker = self._nodule_to_open_on()
        if marker is not None:
            with self.review.detail.holding_patches():  # its slices in the next turn
                self.markers.select(marker.id)
        views = partial(self._show_views, volume, session, marker)
        self._step_by_step(volume, [self.review.detail.release_patches, views])

    def _show_views(self, volume: CTVolume, session, marker: NoduleMarker | None) -> None:
        view = session.view if session else None
        first = (view or {}).get("active")
        first = first if first in VIEWS else self.workspace.active  # the view the reader works in
        focus = marker and self.review.focus_mm(marker)  # its calipers' slice once measured
        self.workspace.set_volume(volume, view, focus, render_now=(first,))
        later = [partial(self.workspace.render, name) for name in VIEWS if name != first]
        self._step_by_step(volume, [*later, partial(self._show_ready, volume, session)])

    def _step_by_step(self, volume: CTVolume, steps: list) -> None:
        """Each step in its own turn of the event loop, while ``volume`` is still the one shown, once
        the window has painted the last step and the timers due meanwhile have had their turn (a
        step timed from before that paint went first and held the window for both)."""
        if not steps:
            return

        def run() -> None:
            if self.volume is volume:
                steps[0]()
                self._step_by_step(volume, steps[1:])

        # A zero timeout is a posted call, run after the events posted before it; two of them, since
        # a layout's resizes post the views' scene updates, whose paint came one turn later, beside
        # the next step. The 1 ms timer started then comes after every timer already due.
        QTimer.singleShot(0, lambda: QTimer.singleShot(0, lambda: QTimer.singleShot(1, run)))

    def _show_ready(self, volume: CTVolume, session) -> None:
        self._showing = None
        message = volume.summary()
        if volume.warnings:
            message += " | " + "; ".join(volume.warnings)
        if session:
            message += f" | session restored: {len(session.markers)} marker(s)"
        if len(self.markers) and not self.review.analysis.current(self.markers.markers):
            message += " | press Analyse (A) to rank the marked nodules"
        self.save_session()
        self._idle(message)
        # the background jobs last: a job's thread started first took the interpreter from the rest
        # of this turn (the session's save, the status line), which then waited for it
        if self.analyse_on_open:
            self.review.analyse()
        else:
            self.review.analysis.preload()
        self.review.find_lungs()
        self.show_saved_prior(volume, message)  # in the background, once the study is shown

    def _nodule_to_open_on(self) -> NoduleMarker | None:
        """The nodule to open on: the one asked for (worklist), else the top-ranked, else the first
        marker; an analysis that ends before the reader picks another moves to its top."""
        requested, self._select_on_open = self.markers.get(self._select_on_open), ""
        marker = requested or self.review.top_nodule()
        self.review.provisional = "" if requested or marker is None else marker.id
        measured = marker is not None and self.review.segmentation.measurement(marker.id)
        self.review.calipers_due = marker.id if marker is not None and not measured else ""
        return marker

    def _initial_markers(self, volume: CTVolume) -> list[NoduleMarker]:
        markers, self._demo_markers = self._demo_markers or [], None
        made = []
        for n, item in enumerate(markers, start=1):
            made.append(
                NoduleMarker(f"demo-{n}", f"N{n}", tuple(item["centre_mm"]), float(item["diameter_mm"]))
            )
        return made
