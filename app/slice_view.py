"""One 2D view (axial, coronal or sagittal) of the volume, with the overlays a reader expects.

The scene is in millimetres (the image item is scaled by the pixel size), so the aspect is right for
any pixel and slice spacing and markers are drawn as true circles. Mouse: wheel scrolls slices,
Ctrl+wheel zooms, right-drag sets window/level, middle-drag (or Shift+left-drag) pans, left-click
is handed to the workspace (crosshair or marker tool). The view never decides anything itself: it
reports in voxel coordinates and the workspace keeps every view in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen, QTransform
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.imaging.mpr import Plane

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

CROSSHAIR = QColor(255, 200, 0, 110)
CORNERS_MIN_WIDTH = 280  # px: in smaller views the study's corners would cover half the image
_INVERTED = np.arange(255, -1, -1, dtype=np.uint8)
# A dark backing keeps overlay text readable over bright tissue and bone.
_OVERLAY_STYLE = "color: #f0f0f0; background: rgba(0, 0, 0, 120); padding: 1px 3px; font-size: 11px;"


def _pan(target: float, start: float, span: float, extent: float) -> float:
    """How far to move a view ``[start, start + span]`` along one axis of an image ``[0, extent]`` to
    centre ``target``, keeping the view inside the image (or the image centred when the view is wider)."""
    centre = extent / 2 if span >= extent else min(max(target, span / 2), extent - span / 2)
    return centre - (start + span / 2)


class _ViewBox(pg.ViewBox):
    """Radiology mouse conventions instead of pyqtgraph's defaults."""

    def __init__(self, view: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view

    def wheelEvent(self, event, axis=None):
        self._view.activated.emit()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event, axis)
            return
        delta = event.delta() if hasattr(event, "delta") else event.angleDelta().y()
        self._view.scrolled.emit(1 if delta > 0 else -1)
        event.accept()

    def mouseDragEvent(self, event, axis=None):
        self._view.activated.emit()
        button = event.button()
        shift = event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and shift):
            event.accept()
            delta = self.mapToView(event.pos()) - self.mapToView(event.lastPos())
            self.translateBy(x=-delta.x(), y=-delta.y())
        elif button == Qt.MouseButton.RightButton:
            event.accept()
            step = event.pos() - event.lastPos()
            self._view.window_dragged.emit(float(step.x()), float(step.y()))
        elif button == Qt.MouseButton.LeftButton:
            event.accept()
            point = self.mapToView(event.pos())
            phase = "start" if event.isStart() else "finish" if event.isFinish() else "move"
            self._view.dragged.emit(phase, self._view.voxel_at(point))

    def mouseClickEvent(self, event):
        self._view.activated.emit()
        if event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self._view.clicked.emit(self._view.voxel_at(self.mapToView(event.pos())))
        elif event.button() == Qt.MouseButton.RightButton:
            event.accept()
            self._view.right_clicked.emit(self._view.voxel_at(self.mapToView(event.pos())))


class SliceView(QWidget):
    """A view of one plane; ``show_slice`` is the hot path (one image update + overlay text)."""

    scrolled = Signal(int)
    clicked = Signal(object)  # voxel (x, y, z)
    right_clicked = Signal(object)  # voxel (a right-drag sets the window instead)
    dragged = Signal(str, object)  # "start" | "move" | "finish", voxel
    window_dragged = Signal(float, float)
    hovered = Signal(object)  # voxel or None
    activated = Signal()

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.plane: Plane | None = None
        self.index = 0
        self.graphics = pg.GraphicsView(background="k")
        self.box = _ViewBox(self)
        self.graphics.setCentralItem(self.box)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        pen = QPen(CROSSHAIR)
        pen.setCosmetic(True)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        for line in (self.h_line, self.v_line):
            line.setZValue(10)
            self.box.addItem(line, ignoreBounds=True)
        self.scale_bar = pg.ScaleBar(size=10, suffix="m", pen=pg.mkPen("w", width=2))
        self.scale_bar.setParentItem(self.box)
        self.scale_bar.anchor((1, 1), (1, 1), offset=(-30, -30))
        self.scale_bar.text.fill = pg.mkBrush(0, 0, 0, 120)  # readable over bone, as the other overlays
        self.box.sigRangeChanged.connect(self._fit_scale_bar)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.letters = {side: self._overlay_label() for side in ("left", "right", "top", "bottom")}
        for label in self.letters.values():
            label.setFont(QFont(label.font().family(), 13, QFont.Weight.Bold))
        self.info = self._overlay_label()  # top-left: view name, slice, slab
        self.probe = self._overlay_label()  # bottom-left: HU and mm under the cursor
        self.probe.hide()
        self.window_label = self._overlay_label()  # top-right: W/L
        # Above those, the study: who and when (top left), what series (top right); see
        # core.imaging.corner_text.
        self.corners = {"left": self._overlay_label(), "right": self._overlay_label()}
        self.corners["right"].setAlignment(Qt.AlignmentFlag.AlignRight)
        self._corner_text = {"left": "", "right": ""}
        self._texts = {self.info: "", self.window_label: "", self.probe: ""}  # as given, before cutting
        self._held, self._placement_due = 0, False  # see holding_overlays
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.setMinimumSize(120, 120)

    def _overlay_label(self) -> QLabel:
        label = QLabel(self.graphics)
        label.setStyleSheet(_OVERLAY_STYLE)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    # -- set-up ----------------------------------------------------------------------------------
    def set_plane(self, plane: Plane) -> None:
        self.plane = plane
        width, height = plane.pixel_mm
        self.image.setTransform(QTransform.fromScale(width, height))
        for side, label in self.letters.items():
            label.setText(plane.letters[side])
            label.adjustSize()
        self._place_overlays()

    def reset_view(self) -> None:
        if self.plane is None:
            return
        rows, cols = self.plane.shape
        width, height = self.plane.pixel_mm
        self.box.setRange(xRange=(0, cols * width), yRange=(0, rows * height), padding=0.02)

    # -- the hot path ------------------------------------------------------------------------------
    def show_slice(self, image: np.ndarray, index: int, levels: tuple[float, float], text: str) -> None:
        self.index = index
        self.image.setImage(image, autoLevels=False, levels=levels)
        if text != self._texts[self.info]:
            whole = self.info.text() == self._texts[self.info]  # not cut short for a narrow view
            self._texts[self.info] = text
            size = self.info.size()
            self.info.setText(text)
            self.info.adjustSize()
            if self.info.size() != size or not whole:  # mostly the same size: as many digits
                self._place_overlays()

    def set_levels(self, levels: tuple[float, float], text: str) -> None:
        self.image.setLevels(levels)
        self._texts[self.window_label] = text
        self.window_label.setText(text)
        self.window_label.adjustSize()
        self._place_overlays()

    def set_inverted(self, on: bool) -> None:
        """White air and black bone: a lookup table reversing the windowed grey levels."""
        self.image.setLookupTable(_INVERTED if on else None)

    def set_crosshair(self, u: float, v: float, visible: bool | None = None) -> None:
        width, height = self.plane.pixel_mm
        self.v_line.setPos(u * width)
        self.h_line.setPos(v * height)
        if visible is not None:
            self.v_line.setVisible(visible)
            self.h_line.setVisible(visible)

    def centre_on(self, u: float, v: float) -> None:
        """Bring screen point ``(u, v)`` towards the middle of the view without panning the image out
        of it: along an axis where the whole slice fits it stays centred, elsewhere the view stops at
        the image's edge."""
        width, height = self.plane.pixel_mm
        rows, cols = self.plane.shape
        view = self.box.viewRect()
        self.box.translateBy(
            x=_pan(u * width, view.left(), view.width(), cols * width),
            y=_pan(v * height, view.top(), view.height(), rows * height),
        )

    # -- coordinates -------------------------------------------------------------------------------
    def voxel_at(self, point: QPointF) -> np.ndarray:
        width, height = self.plane.pixel_mm
        return self.plane.to_voxel(point.x() / width, point.y() / height, self.index)

    def scene_point(self, voxel: np.ndarray) -> tuple[float, float]:
        u, v, _ = self.plane.to_screen(voxel)
        width, height = self.plane.pixel_mm
        return u * width, v * height

    def _mouse_moved(self, position) -> None:
        if self.plane is None or not self.box.sceneBoundingRect().contains(position):
            self.hovered.emit(None)
            return
        self.hovered.emit(self.voxel_at(self.box.mapSceneToView(position)))

    def _fit_scale_bar(self) -> None:
        """A round length (5 mm to 20 cm) about a fifth of the view's width."""
        width_mm = self.box.viewRect().width()
        length = next((mm for mm in (5, 10, 20, 50, 100, 200) if mm >= width_mm / 6), 200)
        if length != self.scale_bar.size:
            self.scale_bar.size = length
            self.scale_bar.text.setText(f"{length} mm" if length < 100 else f"{length // 10} cm")
        self.scale_bar.updateBar()

    def set_probe(self, text: str) -> None:
        self._texts[self.probe] = text
        self.probe.setText(text)
        self.probe.adjustSize()
        self._place_overlays()

    def set_corners(self, left: str, right: str) -> None:
        """The study's text in the top corners (lines; each cut short with "..." where the view is
        narrow, all left out where it is small)."""
        self._corner_text = {"left": left, "right": right}
        self._fit_corners()

    # -- layout ------------------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_corners()

    def _fit_corners(self) -> None:
        """Cut long lines short; leave the study out of views too small for it to leave the image seen."""
        room = max((self.width() - self.letters["top"].width()) // 2 - 12, 40)  # padding in
        for side, label in self.corners.items():
            metrics = label.fontMetrics()
            lines = self._corner_text[side].splitlines()
            cut = (metrics.elidedText(line, Qt.TextElideMode.ElideRight, room - 10) for line in lines)
            label.setText("\n".join(cut))
            label.adjustSize()
        self._place_overlays()

    @contextmanager
    def holding_overlays(self) -> Iterator[None]:
        """Texts changed several times in one go (a new study sets the plane, the levels, the slice and
        the corners) are placed once, at the end: each placement moves and shows nine labels over the
        image, and twelve of them held the window ~5 ms while a study was shown."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._placement_due:
                self._placement_due = False
                self._place()

    def _place_overlays(self) -> None:
        self._placement_due = bool(self._held)
        if not self._held:
            self._place()

    def _place(self) -> None:
        """The texts around the image, never over one another: the study and the slice at the top left,
        the series and W/L at the top right; where the view is too narrow for the two columns side by
        side, one column under the top letter (cut short to the view's width); HU under the cursor at
        the bottom left, above the bottom letter when it would reach it. In a view too small for all,
        the less important go (the study, then the probe, then W/L)."""
        w, h = self.width(), self.height()  # the graphics' size once laid out (it fills the view)
        left, right, top, bottom = (self.letters[s] for s in ("left", "right", "top", "bottom"))
        left.move(6, (h - left.height()) // 2)
        right.move(w - right.width() - 6, (h - right.height()) // 2)
        top.move((w - top.width()) // 2, 4)
        bottom.move((w - bottom.width()) // 2, h - bottom.height() - 4)
        corner, series = self.corners["left"], self.corners["right"]
        wanted = {
            corner: bool(self._corner_text["left"]) and w >= CORNERS_MIN_WIDTH,
            series: bool(self._corner_text["right"]) and w >= CORNERS_MIN_WIDTH,
            self.info: True,
            self.window_label: True,
            self.probe: bool(self._texts[self.probe]),
        }
        for label in (self.info, self.window_label, self.probe):
            self._cut(label, w - 12)
        columns = [
            [c for c in (corner, self.info) if wanted[c]],
            [c for c in (series, self.window_label) if wanted[c]],
        ]
        widths = [max((c.width() for c in column), default=0) for column in columns]
        if sum(widths) + top.width() + 24 <= w:  # side by side, at the top corners
            for column, at_right in zip(columns, (False, True), strict=True):
                y = 4
                for label in column:
                    label.move(w - label.width() - 6 if at_right else 6, y)
                    y += label.height() + 2
        else:  # one column, under the top letter
            y = top.y() + top.height() + 2
            for label in columns[0] + columns[1]:
                label.move(6, y)
                y += label.height() + 2
        probe = self.probe
        probe.move(6, h - probe.height() - 4)
        if probe.geometry().intersects(bottom.geometry()):
            probe.move(6, bottom.y() - probe.height() - 2)
        placed = []  # most important first: the orientation, the slice, W/L, HU, the study
        for label in (left, right, top, bottom, self.info, self.window_label, probe, corner, series):
            box = label.geometry()
            shown = wanted.get(label, True) and box.top() >= 0 and box.bottom() < h
            shown = shown and not any(box.intersects(other) for other in placed)
            label.setVisible(shown)
            if shown:
                placed.append(box)

    def _cut(self, label: QLabel, room: int) -> None:
        """``label``'s text, each line cut short with "..." to fit ``room`` px (its padding included)."""
        text = self._texts[label]
        metrics = label.fontMetrics()
        if text and max(metrics.horizontalAdvance(line) for line in text.splitlines()) + 10 > room:
            lines = (
                metrics.elidedText(line, Qt.TextElideMode.ElideRight, room - 10) for line in text.splitlines()
            )
            text = "\n".join(lines)
        if text != label.text():
            label.setText(text)
            label.adjustSize()

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        self.activated.emit()
