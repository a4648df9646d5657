"""Reviewing the analysed nodules: ties the analysis, the ranked table and the detail panel to the
open study's markers and the reader's labels.

Locations (side and lung zone) come from a lung map computed once per study in the background;
the nodules' masks and measurements from ``app.segmentation`` (run on Analyse, beside the model);
Lung-RADS from the measured size, texture and solid part (the marker's diameter and the model's
texture until measured), the model's calcification and spiculation (or the reader's, once
confirmed); Grad-CAM explanations in the background when a nodule is selected.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from shiboken6 import isValid

from app.analysis import Analysis
from app.detail_panel import DetailPanel
from app.marker_store import MarkerStore
from app.nodule_table import NoduleTable
from app.segmentation import Segmentation
from app.workers import FunctionWorker
from core.imaging.location import LungMap
from core.imaging.mpr import plane
from core.model.store import default_model_path
from core.nodule.labels import NoduleLabel
from core.nodule.lungrads import LungRads, nodule_category
from core.nodule.prediction import NoduleResult
from core.volume import CTVolume


class Review(QObject):
    changed = Signal()  # results or labels changed: save the session
    message = Signal(str)
    centre = Signal(object)  # LPS mm

    def __init__(self, markers: MarkerStore, model_path=None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.markers = markers
        self.analysis = Analysis(model_path or default_model_path(), parent=self)
        self.segmentation = Segmentation(markers, self)
        self.table = NoduleTable()
        self.detail = DetailPanel()
        self.volume: CTVolume | None = None
        self.key: tuple[str, str] = ("", "")  # study and series UID of the open study
        self.library = None  # core.reading.library.Library, opened on the first confirmed label
        self.labels: dict[str, NoduleLabel] = {}
        self.lungs: LungMap | None = None
        self.auto = False
        self.provisional = ""  # a nodule the app selected on opening, until the reader picks one
        self.calipers_due = ""  # the nodule the app showed (opening, analysis), centred on its
        # calipers' slice once measured, unless the reader chose another meanwhile
        self._workers: list[FunctionWorker] = []
        self._explained: dict[tuple, object] = {}
        self.analysis.finished.connect(self._analysed)
        self.analysis.failed.connect(self._failed)
        self.analysis.cancelled.connect(lambda: self.message.emit("Analysis cancelled; earlier results kept"))
        self.segmentation.changed.connect(self._segmented)
        self.segmentation.message.connect(self.message)
        self.table.marker_selected.connect(self._row_selected)
        self.detail.label_confirmed.connect(self._label_confirmed)
        markers.selection_changed.connect(self._selection_changed)
        markers.changed.connect(self._markers_changed)

    # -- the study -----------------------------------------------------------------------------------
    def set_study(
        self,
        volume: CTVolume,
        labels: dict[str, NoduleLabel],
        saved_results: dict,
        key: tuple[str, str],
        masks: dict | None = None,
        measurements: dict | None = None,
    ) -> None:
        """A new study; the window resets the marker store next, whose change refreshes the table and
        the panel once (refreshing here too filled them twice while the window was held), and has its
        lungs found (``find_lungs``) once it is shown."""
        self.volume, self.labels, self.lungs, self.key = volume, labels, None, key
        self.analysis.reset(saved_results)
        self.segmentation.reset(volume, masks or {}, measurements or {})
        self._explained = {}

    def find_lungs(self) -> None:
        """Find the study's lungs in the background (for the nodules' locations). Started once the
        study is shown: beside its steps, the job's Python took the interpreter from the window."""
        volume = self.volume
        if volume is not None:
            self._start(lambda progress, cancelled: LungMap(volume), self._lungs_found)

    def _lungs_found(self, lungs: LungMap) -> None:
        if self.volume is not None and lungs.volume is self.volume:
            self.lungs = lungs  # only the locations change: the rest stays drawn
            self.table.set_locations({m.id: self.location(m) for m in self.markers.markers})
            if self.detail.marker is not None:
                self.detail.show_location(self.location(self.detail.marker))

    def results(self) -> dict[str, dict]:
        """What the session keeps: each marker's last result and what it was computed from."""
        ids = {m.id for m in self.markers.markers}
        return {k: a.to_dict() for k, a in self.analysis.results.items() if k in ids}

    # -- analysing -----------------------------------------------------------------------------------
    def analyse(self) -> None:
        if self.volume is None or not len(self.markers):
            self.message.emit("Nothing to analyse: place markers on the nodules first (N, then click)")
            return
        self.segmentation.run()  # outlines and measurements, beside the model's scores
        if not self.analysis.run(self.volume, list(self.markers.markers)):
            self.message.emit("An analysis is already running")

    def _analysed(self) -> None:
        self.refresh()
        self.changed.emit()
        current = self.analysis.current(self.markers.markers)
        self.message.emit(f"Analysed {len(current)} nodule(s) with {self.analysis.model_text()}")
        if current and self.markers.selected in ("", self.provisional):
            top = self.top_nodule()
            self.provisional = top.id
            self.calipers_due = "" if self.segmentation.measurement(top.id) else top.id
            self.markers.select(top.id)
            self.centre.emit(self.focus_mm(top))

    def top_nodule(self):
        """The most suspicious nodule once analysed, else the first marker; None without markers."""
        current = self.analysis.current(self.markers.markers)
        if current:
            return self.markers.get(min(current, key=lambda k: current[k].rank))
        return next(iter(self.markers.markers), None)

    def _failed(self, text: str) -> None:
        self.message.emit(text)
        self.refresh()

    def _segmented(self) -> None:
        self.refresh()
        self.changed.emit()
        due = self.markers.get(self.calipers_due)
        if (
            due is not None
            and self.markers.selected in ("", due.id)
            and self.segmentation.measurement(due.id)
        ):
            self.calipers_due = ""  # once: a later edit or measurement leaves the view where it is
            self.centre.emit(self.focus_mm(due))

    def focus_mm(self, marker):
        """Where to centre the views on a nodule: its marker's centre, moved across the view its axes
        were measured in onto their slice once measured (so that view shows the calipers)."""
        measured = self.segmentation.measurement(marker.id)
        if measured is None or self.volume is None:
            return marker.centre_mm
        voxel = self.volume.mm_to_voxel(np.asarray(marker.centre_mm, float))
        voxel[plane(self.volume, measured.plane).normal] = measured.slice_index
        return tuple(float(v) for v in self.volume.voxel_to_mm(voxel))

    def _markers_changed(self) -> None:
        self.refresh()
        if self.auto and self.volume is not None:
            self.segmentation.run()
        if self.auto and self.volume is not None and self.analysis.stale(self.markers.markers):
            self.analysis.run(self.volume, list(self.markers.markers))

    # -- showing -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        markers = list(self.markers.markers)
        results = self.analysis.current(markers)
        locations = {m.id: self.location(m) for m in markers}
        rads = {m.id: r for m in markers if (r := self.rads(m, results.get(m.id))) is not None}
        seg = self.segmentation
        sizes = {
            m.id: (seg.mask(m.id), seg.measurement(m.id), seg.error(m.id), seg.unmeasured(m.id))
            for m in markers
        }
        self.table.fill(markers, results, self.labels, locations, rads, self.markers.selected, sizes)
        self._show_detail(self.markers.selected)

    def location(self, marker) -> str:
        if self.lungs is None or self.lungs.volume is not self.volume:
            return ""
        try:
            return self.lungs.describe(marker.centre_mm).text
        except ValueError:  # outside this series (a marker of the study being left)
            return ""

    def rads(self, marker, result: NoduleResult | None) -> LungRads | None:
        label = self.labels.get(marker.id)
        return nodule_category(
            marker.diameter_mm,
            result.attributes if result else None,
            label.attributes if label else None,
            measured=self.segmentation.measurement(marker.id),
        )

    def _row_selected(self, marker_id: str) -> None:
        self.markers.select(marker_id)
        marker = self.markers.get(marker_id)
        if marker is not None:
            self.centre.emit(self.focus_mm(marker))

    def _selection_changed(self, marker_id: str) -> None:
        if marker_id != self.provisional:
            self.provisional = ""  # the reader chose: an analysis ending later leaves the choice alone
        if marker_id not in ("", self.calipers_due):
            self.calipers_due = ""
        self.table.select(marker_id)
        self._show_detail(marker_id)

    def _show_detail(self, marker_id: str) -> None:
        marker = self.markers.get(marker_id) if marker_id else None
        results = self.analysis.current(self.markers.markers)
        result = results.get(marker_id) if marker else None
        location = self.location(marker) if marker else ""
        self.detail.show_nodule(
            self.volume, marker, result, self.labels.get(marker_id), self.analysis.model_text(), location
        )
        seg = self.segmentation
        if marker is not None:
            mask, error, unmeasured = seg.mask(marker_id), seg.error(marker_id), seg.unmeasured(marker_id)
            self.detail.show_size(mask, seg.measurement(marker_id), error, unmeasured)
        if marker is not None and result is not None and self.analysis.predictor is not None:
            self._explain(marker)

    def _explain(self, marker) -> None:
        key = (marker.id, marker.centre_mm, marker.diameter_mm, self.analysis.weights)
        if key in self._explained:
            self.detail.set_explanation(marker.id, self._explained[key])
            return
        from core.model.explain import explain

        predictor, volume = self.analysis.predictor, self.volume

        def done(explanation) -> None:
            self._explained[key] = explanation
            self.detail.set_explanation(marker.id, explanation)

        self._start(lambda progress, cancelled: explain(predictor, volume, marker.to_inference()), done)

    # -- labels --------------------------------------------------------------------------------------
    def _label_confirmed(self, marker_id: str, label: NoduleLabel | None) -> None:
        if label is None:
            self.labels.pop(marker_id, None)
            text = "Reader label cleared" + self._forget(marker_id)
        else:
            self.labels[marker_id] = label
            text = "Reader label saved with the session" + self._keep(marker_id, label)
        self.refresh()
        self.changed.emit()
        self.message.emit(text)

    def labelled_library(self):
        from core.reading.library import Library

        if self.library is None:
            self.library = Library()
        return self.library

    def _keep(self, marker_id: str, label: NoduleLabel) -> str:
        """Keep the confirmed nodule in the labelled library (its patches cut for the active model)."""
        from core.nodule.labels import LabelledNodule
        from core.reading.library import LibraryError

        marker = self.markers.get(marker_id)
        if marker is None or self.volume is None:
            return ""
        nodule = LabelledNodule(marker.id, marker.centre_mm, marker.diameter_mm, label, *self.key)
        try:
            self.labelled_library().add(self.volume, nodule, self.analysis.patch_config())
        except (LibraryError, OSError, ValueError) as exc:
            return f"; not added to the library: {exc}"
        return " and in the library"

    def _forget(self, marker_id: str) -> str:
        from core.reading.library import LibraryError, entry_id

        try:
            self.labelled_library().remove(entry_id(self.key[1], marker_id))
        except (LibraryError, OSError):
            return ""
        return " and removed from the library"

    # -- background ----------------------------------------------------------------------------------
    def _start(self, job, done) -> None:
        """Run ``job`` in the background; ``done`` gets its result unless the window closed meanwhile
        (an explanation finishing after its panel was deleted raised in the event loop)."""
        worker = FunctionWorker(job)
        alive = lambda: isValid(self) and isValid(self.detail)  # noqa: E731
        worker.signals.finished.connect(lambda result: done(result) if alive() else None)
        worker.signals.errored.connect(
            lambda error: self.message.emit(f"{type(error).__name__}: {error}") if alive() else None
        )
        self._workers = [w for w in self._workers if not w.done] + [worker]
        worker.start()

    @property
    def busy(self) -> bool:
        return self.analysis.busy or self.segmentation.busy or any(not w.done for w in self._workers)
