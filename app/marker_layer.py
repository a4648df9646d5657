"""Nodule markers drawn in one view: the circle where each marker's sphere cuts the shown slice.

A marker centred on this slice is drawn solid; one whose sphere only grazes it is dashed and smaller,
as a reader expects when scrolling through a nodule. ``hit`` tells the workspace whether a point is
inside a marker (move it) or on its rim (resize it).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

MARKER = QColor(0, 220, 255)
SELECTED = QColor(255, 230, 0)
RIM_PIXELS = 5.0
LABEL_ANCHOR = (0, 1)  # a marker's name sits above-right of its circle


def label_rect(view, text: pg.TextItem, anchor: tuple[float, float]) -> QRectF:
    """Where a text item sits on screen (scene pixels): it keeps its pixel size whatever the zoom,
    placed with its ``anchor`` (fractions of its size) on its position."""
    size = text.textItem.boundingRect()
    at = view.box.mapViewToScene(text.pos())
    return QRectF(
        at.x() - anchor[0] * size.width(), at.y() - anchor[1] * size.height(), size.width(), size.height()
    )


class MarkerLayer:
    def __init__(self, view) -> None:
        self.view = view
        self.circles: list[QGraphicsEllipseItem] = []
        self.labels: list[pg.TextItem] = []
        self.drawn: list[tuple[str, float, float, float]] = []  # id, scene x, scene y, radius (mm)
        self.volume = None

    def _item(self, n: int) -> tuple[QGraphicsEllipseItem, pg.TextItem]:
        while len(self.circles) <= n:
            circle = QGraphicsEllipseItem()
            circle.setZValue(20)
            label = pg.TextItem(anchor=LABEL_ANCHOR, fill=(0, 0, 0, 120))
            label.setZValue(21)
            self.view.box.addItem(circle, ignoreBounds=True)
            self.view.box.addItem(label, ignoreBounds=True)
            self.circles.append(circle)
            self.labels.append(label)
        return self.circles[n], self.labels[n]

    def draw(self, volume, markers, selected: str) -> None:
        self.volume = volume
        plane = self.view.plane
        thickness = plane.spacing[plane.normal]
        self.drawn = []
        n = 0
        for marker in markers:
            voxel = volume.mm_to_voxel(np.asarray(marker.centre_mm, float))
            x, y = self.view.scene_point(voxel)
            depth = abs(plane.to_screen(voxel)[2] - self.view.index) * thickness
            radius = marker.diameter_mm / 2
            if depth >= radius:
                continue
            shown = math.sqrt(radius**2 - depth**2)
            circle, label = self._item(n)
            colour = SELECTED if marker.id == selected else MARKER
            pen = QPen(colour, 2.5 if marker.id == selected else 1.5)
            pen.setCosmetic(True)
            if depth > thickness:
                pen.setStyle(Qt.PenStyle.DashLine)
            circle.setPen(pen)
            circle.setRect(QRectF(x - shown, y - shown, 2 * shown, 2 * shown))
            label.setText(marker.name, color=colour)
            label.setPos(x + shown * 0.75, y - shown * 0.75)
            circle.show()
            label.show()
            self.drawn.append((marker.id, x, y, shown))
            n += 1
        for circle, label in zip(self.circles[n:], self.labels[n:], strict=True):
            circle.hide()
            label.hide()

    def label_rects(self) -> list[QRectF]:
        """Where the shown markers' labels sit on screen (scene pixels)."""
        return [label_rect(self.view, label, LABEL_ANCHOR) for label in self.labels if label.isVisible()]

    def hit(self, voxel: np.ndarray) -> tuple[str, str] | None:
        """``(marker id, "move" | "resize")`` for a point on a drawn marker, else None."""
        x, y = self.view.scene_point(voxel)
        rim = RIM_PIXELS * max(self.view.box.viewPixelSize()[0], 1e-3)  # mm: the rim is grabbed on screen
        best = None
        for marker_id, cx, cy, radius in self.drawn:
            distance = math.hypot(x - cx, y - cy)
            if distance <= radius + rim:
                inner = radius - rim if radius > 2 * rim else radius / 2
                mode = "move" if distance < inner else "resize"
                if best is None or radius < best[2]:
                    best = (marker_id, mode, radius)
        return None if best is None else best[:2]

    def in_plane_distance(self, voxel: np.ndarray, centre_mm: np.ndarray) -> float:
        """Distance in mm, within this view's plane, from the point ``voxel`` to a marker centre."""
        x, y = self.view.scene_point(voxel)
        cx, cy = self.view.scene_point(self.volume.mm_to_voxel(np.asarray(centre_mm, float)))
        return math.hypot(x - cx, y - cy)
