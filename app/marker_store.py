"""The markers of the open study for the views: a Qt face over ``core.nodule.markers.MarkerSet``.

Every change goes through a QUndoCommand on the shared undo stack, so each one can be undone and
each one triggers the autosave (``changed``). A marker being dragged is a ``preview`` only: the
command is pushed when the drag ends, so undo takes back the whole gesture.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from core.nodule.markers import MarkerSet, NoduleMarker


class MarkerStore(QObject):
    changed = Signal()  # the set of markers changed (autosave, redraw, list)
    preview_changed = Signal()  # a drag in progress (redraw only)
    selection_changed = Signal(str)  # marker id, "" for none

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.markers = MarkerSet()
        self.undo = QUndoStack(self)
        self.selected = ""
        self.preview: NoduleMarker | None = None

    # -- reading -----------------------------------------------------------------------------------
    def __iter__(self):
        shown = self.preview
        for marker in self.markers:
            yield shown if shown is not None and shown.id == marker.id else marker
        if shown is not None and shown.id not in self.markers:
            yield shown

    def __len__(self) -> int:
        return len(self.markers)

    def get(self, marker_id: str) -> NoduleMarker | None:
        return self.markers.get(marker_id) if marker_id in self.markers else None

    # -- changing (each an undoable command) ---------------------------------------------------------
    def reset(self, markers: list[NoduleMarker]) -> None:
        """A new study: its markers, no history."""
        self.undo.clear()
        self.markers = MarkerSet()
        for marker in markers:
            self.markers.add(marker)
        self.preview = None
        self.select("")
        self.changed.emit()

    def add(self, marker: NoduleMarker) -> None:
        self.undo.push(_Add(self, marker))

    def new_marker(self, centre_mm, diameter_mm: float) -> NoduleMarker:
        marker = self.markers.new_marker(tuple(float(v) for v in centre_mm), diameter_mm)
        self.add(marker)
        return marker

    def remove(self, marker_id: str) -> None:
        if marker_id in self.markers:
            self.undo.push(_Remove(self, marker_id))

    def edit(self, marker: NoduleMarker, text: str) -> None:
        """Replace the marker with the same id by ``marker`` (move, resize, rename, notes)."""
        self.preview = None
        old = self.get(marker.id)
        if old is None or old == marker:
            self.preview_changed.emit()
            return
        self.undo.push(_Edit(self, old, marker, text))

    def set_preview(self, marker: NoduleMarker | None) -> None:
        self.preview = marker
        self.preview_changed.emit()

    def select(self, marker_id: str) -> None:
        if marker_id != self.selected:
            self.selected = marker_id
            self.selection_changed.emit(marker_id)


class _Add(QUndoCommand):
    def __init__(self, store: MarkerStore, marker: NoduleMarker) -> None:
        super().__init__(f"add marker {marker.name}")
        self.store, self.marker = store, marker

    def redo(self) -> None:
        self.store.markers.add(self.marker)
        self.store.changed.emit()
        self.store.select(self.marker.id)

    def undo(self) -> None:
        self.store.markers.remove(self.marker.id)
        if self.store.selected == self.marker.id:
            self.store.select("")
        self.store.changed.emit()


class _Remove(QUndoCommand):
    def __init__(self, store: MarkerStore, marker_id: str) -> None:
        super().__init__(f"delete marker {store.markers.get(marker_id).name}")
        self.store, self.marker_id = store, marker_id
        self.index, self.marker = 0, None

    def redo(self) -> None:
        self.index, self.marker = self.store.markers.remove(self.marker_id)
        if self.store.selected == self.marker_id:
            self.store.select("")
        self.store.changed.emit()

    def undo(self) -> None:
        self.store.markers.add(self.marker, self.index)
        self.store.changed.emit()
        self.store.select(self.marker_id)


class _Edit(QUndoCommand):
    def __init__(self, store: MarkerStore, old: NoduleMarker, new: NoduleMarker, text: str) -> None:
        super().__init__(f"{text} {new.name}")
        self.store, self.old, self.new = store, old, new

    def redo(self) -> None:
        self.store.markers.replace(self.new)
        self.store.changed.emit()

    def undo(self) -> None:
        self.store.markers.replace(self.old)
        self.store.changed.emit()
