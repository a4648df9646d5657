"""The reader's rulers: a line dragged in any view, its length in mm, shown on the slice it was drawn
on; a right-click on one takes it away, Esc all of them. Kept with the session's view state."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsLineItem

RULER = QColor(255, 120, 220)


@dataclass(frozen=True)
class Ruler:
    view: str  # "axial" | "coronal" | "sagittal"
    index: int  # the slice it was drawn on
    start: tuple[float, float, float]  # voxel (x, y, z)
    end: tuple[float, float, float]

    def length_mm(self, volume) -> float:
        a, b = (volume.voxel_to_mm(np.asarray(p, float)) for p in (self.start, self.end))
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))

    def distance_mm(self, volume, voxel) -> float:
        """How far ``voxel`` (x, y, z) lies from the ruler's line, in mm (in its plane)."""
        a, b, p = (
            np.asarray(volume.voxel_to_mm(np.asarray(v, float))) for v in (self.start, self.end, voxel)
        )
        span = float(np.dot(b - a, b - a))
        t = 0.0 if span == 0 else float(np.clip(np.dot(p - a, b - a) / span, 0.0, 1.0))
        return float(np.linalg.norm(p - (a + t * (b - a))))

    def to_dict(self) -> dict:
        return {"view": self.view, "index": self.index, "start": list(self.start), "end": list(self.end)}

    @classmethod
    def from_dict(cls, data) -> Ruler | None:
        """A saved ruler, or None when it is malformed (a damaged or hand-edited view state)."""
        try:
            start, end = (tuple(float(v) for v in data[key]) for key in ("start", "end"))
            ruler = cls(str(data["view"]), int(data["index"]), start, end)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        finite = all(len(p) == 3 and all(math.isfinite(v) for v in p) for p in (start, end))
        return ruler if finite and ruler.view in ("axial", "coronal", "sagittal") else None


def rulers_from(saved) -> list[Ruler]:
    """The rulers of a saved view state; malformed entries are left out."""
    found = [Ruler.from_dict(item) for item in saved] if isinstance(saved, list) else []
    return [ruler for ruler in found if ruler is not None]


class RulerLayer:
    def __init__(self, view) -> None:
        self.view = view
        self.lines: list[QGraphicsLineItem] = []
        self.texts: list[pg.TextItem] = []
        self.shown: list[float] = []  # lengths drawn on the shown slice

    def _item(self, n: int) -> tuple[QGraphicsLineItem, pg.TextItem]:
        while len(self.lines) <= n:
            line = QGraphicsLineItem()
            line.setZValue(24)
            text = pg.TextItem(anchor=(0, 1), fill=(0, 0, 0, 140))
            text.setZValue(25)
            self.view.box.addItem(line, ignoreBounds=True)
            self.view.box.addItem(text, ignoreBounds=True)
            self.lines.append(line)
            self.texts.append(text)
        return self.lines[n], self.texts[n]

    def draw(self, volume, rulers: list[Ruler]) -> None:
        self.shown = []
        n = 0
        for ruler in rulers:
            if ruler.view != self.view.name or ruler.index != self.view.index:
                continue
            a = self.view.scene_point(np.asarray(ruler.start, float))
            b = self.view.scene_point(np.asarray(ruler.end, float))
            line, text = self._item(n)
            pen = QPen(RULER, 1.5)
            pen.setCosmetic(True)
            line.setPen(pen)
            line.setLine(QLineF(*a, *b))
            length = ruler.length_mm(volume)
            text.setText(f"{length:.1f} mm", color=RULER)
            text.setPos(*b)
            line.show()
            text.show()
            self.shown.append(length)
            n += 1
        for line, text in zip(self.lines[n:], self.texts[n:], strict=True):
            line.hide()
            text.hide()
