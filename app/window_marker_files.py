"""Markers to and from JSON files in the main window: imported as one undoable step, exported as shown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from core.nodule.markers import MarkerError, read_markers, write_markers


class MarkerFiles:
    """A ``MainWindow`` mixin: ``import_markers(_from)`` and ``export_markers(_to)``."""

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
