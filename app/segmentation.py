"""The open study's nodule masks for the window: segmented and measured in the background, edited by
the reader through the shared undo stack, kept with the session.

A mask belongs to its marker while it ``fits`` it (``NoduleMask.fits``): a moved or resized marker
hides its automatic mask until it is segmented again (an undone move brings the old one back), an
edited mask stays. Segmenting never blocks the window and one marker's failure is kept as its reason
(``error``, ``unmeasured``) while the others are measured.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand
from shiboken6 import isValid

from app.marker_store import MarkerStore
from app.mask_edit import grown, shrunk, thresholded
from app.workers import FunctionWorker
from core.measure.axes import measure_nodule
from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.measure.segment import SegmentationError, segment_nodule
from core.util.cancellation import Cancelled


class Segmentation(QObject):
    changed = Signal()  # masks, measurements or failures changed: redraw, refill, save
    message = Signal(str)

    def __init__(self, markers: MarkerStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.markers = markers
        self.volume = None
        self.masks: dict[str, NoduleMask] = {}
        # id -> (the mask measured, its measurement or None, why none)
        self._measured: dict[str, tuple[NoduleMask, NoduleMeasurement | None, str]] = {}
        self._errors: dict[str, tuple[tuple, float, str]] = {}  # id -> (centre, diameter, reason)
        self.requested = False  # Analyse was pressed (or the study was segmented before): redo changes
        self.measure = measure_nodule  # (volume, mask) -> NoduleMeasurement; tests put their own
        self._worker: FunctionWorker | None = None
        self._workers: list[FunctionWorker] = []  # kept until their thread has left run()
        self._resegmenting: set[str] = set()  # markers segmented again, until their result is shown
        self._again = False
        self._generation = 0
        self._current: dict[str, NoduleMask] | None = None
        markers.changed.connect(self._markers_changed)

    # -- reading -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None or bool(self._resegmenting)

    def mask(self, marker_id: str) -> NoduleMask | None:
        """The marker's mask while it fits the marker as it is now."""
        marker, mask = self.markers.get(marker_id), self.masks.get(marker_id)
        if marker is None or mask is None or not mask.fits(marker.centre_mm, marker.diameter_mm):
            return None
        return mask

    def current(self) -> dict[str, NoduleMask]:
        """The masks that fit their markers (a copy; the views ask on every slice change, so it is
        kept until the markers or masks change)."""
        if self._current is None:
            self._current = {m.id: k for m in self.markers.markers if (k := self.mask(m.id)) is not None}
        return dict(self._current)

    def measurement(self, marker_id: str) -> NoduleMeasurement | None:
        mask = self.mask(marker_id)
        measured = self._measured.get(marker_id)
        return measured[1] if mask is not None and measured and measured[0] is mask else None

    def unmeasured(self, marker_id: str) -> str:
        """Why the marker's mask has no measurement ("" when it has one or is still being measured)."""
        mask, measured = self.mask(marker_id), self._measured.get(marker_id)
        return measured[2] if mask is not None and measured and measured[0] is mask else ""

    def measurements(self) -> dict[str, NoduleMeasurement]:
        found = self.current()
        return {k: m[1] for k, m in self._measured.items() if found.get(k) is m[0] and m[1] is not None}

    def error(self, marker_id: str) -> str:
        """Why the marker as it is now could not be segmented ("" when it was, or was not tried)."""
        marker, failed = self.markers.get(marker_id), self._errors.get(marker_id)
        if marker is None or failed is None or self.mask(marker_id) is not None:
            return ""
        centre, diameter, reason = failed
        return reason if (centre, diameter) == (marker.centre_mm, marker.diameter_mm) else ""

    # -- the study -----------------------------------------------------------------------------------
    def reset(self, volume, masks: dict[str, NoduleMask], measurements: dict | None = None) -> None:
        """Another study with its saved masks and their saved measurements (``core.reading.session``
        keeps only those of the masks as saved); a mask without one is measured in the background."""
        self.cancel()
        self._generation += 1
        self.volume, self.masks, self._current = volume, dict(masks), None
        saved = (measurements or {}).items()
        self._measured = {k: (self.masks[k], m, "") for k, m in saved if k in self.masks}
        self._errors = {}
        self.requested = bool(masks)  # segmented before: a marker moved now is segmented again
        # measured once the study's markers are in the store (its change calls _markers_changed)

    # -- running -------------------------------------------------------------------------------------
    def run(self, segment: bool = True) -> None:
        """Segment the markers without a fitting mask (``segment``) and measure unmeasured masks."""
        if self.volume is None:
            return
        self.requested = self.requested or segment
        if self._worker is not None:
            self._again = True
            return
        markers = list(self.markers.markers)
        todo = [m for m in markers if self.mask(m.id) is None and not self.error(m.id)] if segment else []
        unmeasured = {k: mask for k, mask in self.current().items() if k not in self._fresh()}
        if not todo and not unmeasured:
            return
        volume, measure_fn, generation = self.volume, self.measure, self._generation

        def job(progress, cancelled):
            made, failed, measured = {}, {}, {}
            for n, marker in enumerate(todo):
                if cancelled():
                    raise Cancelled()
                try:
                    made[marker.id] = segment_nodule(volume, marker.centre_mm, marker.diameter_mm)
                except Exception as exc:  # one marker's failure, whatever it is, is that marker's
                    failed[marker.id] = (marker.centre_mm, marker.diameter_mm, _reason(exc))
                progress(n + 1, len(todo))
            for marker_id, mask in {**unmeasured, **made}.items():
                try:
                    measured[marker_id] = (mask, measure_fn(volume, mask), "")
                except Exception as exc:
                    measured[marker_id] = (mask, None, _reason(exc))
            return made, failed, measured

        worker = FunctionWorker(job)
        # a run ending after the window closed is dropped (its objects are deleted)
        worker.signals.finished.connect(lambda outcome: isValid(self) and self._done(outcome, generation))
        worker.signals.errored.connect(lambda error: isValid(self) and self._errored(error, generation))
        worker.signals.cancelled.connect(lambda: isValid(self) and self._finish(generation))
        self._worker = worker
        self._workers = [w for w in self._workers if not w.done] + [worker]
        worker.start()

    def _fresh(self) -> set[str]:
        return {k for k, (mask, *_) in self._measured.items() if self.masks.get(k) is mask}

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._worker, self._again = None, False

    def _done(self, outcome, generation: int) -> None:
        if generation != self._generation:
            return
        made, failed, measured = outcome
        for marker_id, mask in made.items():
            if self.markers.get(marker_id) is not None and self.mask(marker_id) is None:
                self.masks[marker_id] = mask  # an edit made meanwhile is the reader's: kept
                self._current = None
        self._errors.update(failed)
        self._measured.update(measured)
        if failed:
            names = [m.name for m in self.markers.markers if self.error(m.id)]
            if names:
                self.message.emit(f"Not segmented: {', '.join(names)} (the reason is on each nodule)")
        self._finish(generation)

    def _errored(self, error: Exception, generation: int) -> None:
        if generation == self._generation:
            self.message.emit(f"Segmentation failed ({type(error).__name__}: {error}); markers unchanged")
            self._again = False
            self._finish(generation)

    def _finish(self, generation: int) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self.changed.emit()
        if self._again:
            self._again = False
            self.run(segment=self.requested)

    def _markers_changed(self) -> None:
        self._current = None
        self._markers_update()

    def _markers_update(self) -> None:
        """A moved or resized marker's automatic mask no longer fits: segmented again once Analyse
        was pressed for this study; its measurement meanwhile is gone from the table. A study's
        saved masks are measured once its markers are in. (No ``changed`` here: the marker change
        itself refreshes the table, the views and the session, once.)"""
        if self.volume is None or not (self.masks or self._errors):
            return
        self.run(segment=self.requested)

    # -- editing (undoable) --------------------------------------------------------------------------
    def edit(self, marker_id: str, mask: NoduleMask | None, text: str) -> None:
        """Replace the marker's mask by ``mask`` (None: none) as one undoable step."""
        self.markers.undo.push(_MaskEdit(self, marker_id, self.masks.get(marker_id), mask, text))

    def grow(self, marker_id: str, steps: int) -> None:
        """The selected nodule's mask a voxel larger (``steps`` 1) or smaller (-1), one undoable edit."""
        mask, marker = self.mask(marker_id), self.markers.get(marker_id)
        if mask is None or self.volume is None:
            self.message.emit("Select a segmented nodule first (press Analyse to outline the nodules)")
            return
        try:
            edited = (grown if steps > 0 else shrunk)(mask, self.volume.shape)
        except ValueError as exc:
            self.message.emit(f"{marker.name}: {exc}; the mask is unchanged")
            return
        self.edit(marker_id, edited, "grow mask of" if steps > 0 else "shrink mask of")

    def threshold(self, marker_id: str, threshold_hu: float) -> None:
        """The selected nodule's mask re-thresholded at ``threshold_hu`` near its edge (one undoable
        edit): lower takes in fainter tissue next to it, higher keeps the denser part."""
        mask, marker = self.mask(marker_id), self.markers.get(marker_id)
        if mask is None or self.volume is None:
            self.message.emit("Select a segmented nodule first (press Analyse to outline the nodules)")
            return
        try:
            edited = thresholded(mask, self.volume.array, threshold_hu)
        except ValueError as exc:
            self.message.emit(f"{marker.name}: nothing at or above {threshold_hu:g} HU there ({exc})")
            return
        self.edit(marker_id, edited, f"threshold {threshold_hu:g} HU,")

    def resegment(self, marker_id: str) -> None:
        """Segment the nodule afresh from its marker (the reader's edits go, undoably)."""
        marker = self.markers.get(marker_id)
        if marker is None or self.volume is None:
            self.message.emit("Select a nodule first")
            return
        volume = self.volume

        def done(mask) -> None:
            self._resegmenting.discard(marker_id)
            if self.markers.get(marker_id) == marker and self.volume is volume:
                self.edit(marker_id, mask, "segment again")

        def failed(error) -> None:
            self._resegmenting.discard(marker_id)
            self._errors[marker_id] = (marker.centre_mm, marker.diameter_mm, _reason(error))
            self.message.emit(f"{marker.name} not segmented: {_reason(error)}; its mask is unchanged")
            self.changed.emit()

        worker = FunctionWorker(
            lambda progress, cancelled: segment_nodule(volume, marker.centre_mm, marker.diameter_mm)
        )
        worker.signals.finished.connect(lambda mask: isValid(self) and done(mask))
        worker.signals.errored.connect(lambda error: isValid(self) and failed(error))
        self._resegmenting.add(marker_id)
        self._workers = [w for w in self._workers if not w.done] + [worker]
        worker.start()

    def _set(self, marker_id: str, mask: NoduleMask | None) -> None:
        if mask is None:
            self.masks.pop(marker_id, None)
        else:
            self.masks[marker_id] = mask
        self._current = None
        self._errors.pop(marker_id, None)
        self.changed.emit()
        self.run(segment=False)  # measure the edited mask


def _reason(error: Exception) -> str:
    """A failure as one line for the reader: the message of an expected refusal, else its type too."""
    if isinstance(error, (SegmentationError, ValueError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


class _MaskEdit(QUndoCommand):
    def __init__(self, owner: Segmentation, marker_id: str, old, new, text: str) -> None:
        marker = owner.markers.get(marker_id)
        super().__init__(f"{text} {marker.name if marker else marker_id}")
        self.owner, self.marker_id, self.old, self.new = owner, marker_id, old, new

    def redo(self) -> None:
        self.owner._set(self.marker_id, self.new)

    def undo(self) -> None:
        self.owner._set(self.marker_id, self.old)
