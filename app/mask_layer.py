"""Nodule masks drawn in one view: the outline where each mask cuts the shown slice (or slab), and the
long and short axis as calipers with their lengths on the slice where they were measured (or on a MIP
slab holding that slice), their labels moved clear of the markers' names and of each other.

Cheap on a slice change: a mask whose box does not reach the slice costs one comparison; one that
does costs its box's slice (a few hundred pixels), its edge and a small RGBA image. An automatic mask
is outlined in green, a reader-edited one in orange (and its calipers say "edited").
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QColor, QPen, QTransform
from PySide6.QtWidgets import QGraphicsLineItem
from scipy import ndimage

from app.marker_layer import label_rect

AUTOMATIC = (60, 230, 120)
EDITED = (255, 150, 30)
CALIPER = QColor(255, 255, 255)
CALIPER_ANCHOR = (0, 0)  # a caliper's length hangs below-right of its end


def box_slice(mask, p, lo: int, hi: int) -> tuple[np.ndarray, float, float] | None:
    """The mask's box cut by slices ``lo..hi-1`` of plane ``p`` (their union), as displayed: the bool
    image (rows, cols) and the screen position of its top-left pixel's corner; None when it misses."""
    axis = 2 - p.normal  # numpy order is (z, y, x)
    start, count = mask.origin_zyx[axis], mask.mask.shape[axis]
    a, b = max(lo - start, 0), min(hi - start, count)
    if a >= b:
        return None
    cut: list = [slice(None)] * 3
    cut[axis] = slice(a, b)
    image = mask.mask[tuple(cut)].any(axis=axis)
    if not image.any():
        return None
    remaining = [v for v in (2, 1, 0) if v != p.normal]
    if remaining.index(p.rows) != 0:
        image = image.T
    image = image[:: -1 if p.flip_rows else 1, :: -1 if p.flip_cols else 1]
    first = np.array(mask.origin_zyx[::-1], float)  # voxel (x, y, z) corners of the box
    last = first + np.array(mask.mask.shape[::-1]) - 1
    u0 = min(p.to_screen(first)[0], p.to_screen(last)[0]) - 0.5
    v0 = min(p.to_screen(first)[1], p.to_screen(last)[1]) - 0.5
    return image, u0, v0


def outline(image: np.ndarray) -> np.ndarray:
    """The pixels of ``image`` on its edge (next to a pixel outside it, 4-connected)."""
    return image & ~ndimage.binary_erosion(image, border_value=0)


class MaskLayer:
    def __init__(self, view) -> None:
        self.view = view
        self.images: list[pg.ImageItem] = []
        self.lines: list[QGraphicsLineItem] = []
        self.texts: list[pg.TextItem] = []
        self.drawn: list[str] = []  # marker ids outlined on the shown slice
        self.calipers: list[tuple[str, str, float]] = []  # marker id, "long" | "short", length mm

    def _image(self, n: int) -> pg.ImageItem:
        while len(self.images) <= n:
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(15)
            self.view.box.addItem(item, ignoreBounds=True)
            self.images.append(item)
        return self.images[n]

    def _caliper(self, n: int) -> tuple[QGraphicsLineItem, pg.TextItem]:
        while len(self.lines) <= n:
            line = QGraphicsLineItem()
            line.setZValue(22)
            text = pg.TextItem(anchor=CALIPER_ANCHOR, fill=(0, 0, 0, 140))
            text.setZValue(23)
            self.view.box.addItem(line, ignoreBounds=True)
            self.view.box.addItem(text, ignoreBounds=True)
            self.lines.append(line)
            self.texts.append(text)
        return self.lines[n], self.texts[n]

    def draw(
        self, volume, masks: dict, measurements: dict, selected: str, slab: int, shown: bool, avoid=()
    ) -> None:
        """Outline ``masks`` (marker id -> NoduleMask) crossing the shown slice or ``slab`` slices, with
        the calipers measured on one of them; their labels kept off ``avoid`` (the markers' labels,
        scene rects) and off each other."""
        p, index = self.view.plane, self.view.index
        self.drawn, self.calipers = [], []
        n = 0
        lo = max(index - slab // 2, 0)
        for marker_id, mask in masks.items() if shown else ():
            cut = box_slice(mask, p, lo, lo + slab)
            if cut is None:
                continue
            image, u0, v0 = cut
            rgba = np.zeros((*image.shape, 4), dtype=np.uint8)
            rgba[outline(image)] = (
                *(EDITED if mask.edited else AUTOMATIC),
                255 if marker_id == selected else 190,
            )
            item = self._image(n)
            item.setImage(rgba, autoLevels=False)
            width, height = p.pixel_mm
            item.setTransform(QTransform(width, 0, 0, height, u0 * width, v0 * height))
            item.show()
            self.drawn.append(marker_id)
            n += 1
        for item in self.images[n:]:
            item.hide()
        self._draw_calipers(volume, masks, measurements if shown else {}, range(lo, lo + slab), avoid)

    def _draw_calipers(self, volume, masks: dict, measurements: dict, slices: range, avoid) -> None:
        """The calipers measured on one of ``slices`` (the shown slice, or the MIP slab's)."""
        n = 0
        for marker_id, m in measurements.items():
            if m.plane != self.view.name or m.slice_index not in slices:
                continue
            edited = " (edited)" if masks.get(marker_id) is not None and masks[marker_id].edited else ""
            for which, ends, length in (
                ("long", m.long_axis_ends_mm, m.long_axis_mm),
                ("short", m.short_axis_ends_mm, m.short_axis_mm),
            ):
                a, b = (self.view.scene_point(volume.mm_to_voxel(np.asarray(e, float))) for e in ends)
                line, text = self._caliper(n)
                pen = QPen(CALIPER, 1.5)
                pen.setCosmetic(True)
                line.setPen(pen)
                line.setLine(QLineF(*a, *b))
                text.setText(f"{length:.1f} mm{edited if which == 'long' else ''}", color=CALIPER)
                text.setPos(*max(a, b))
                line.show()
                text.show()
                self.calipers.append((marker_id, which, length))
                n += 1
        for line, text in zip(self.lines[n:], self.texts[n:], strict=True):
            line.hide()
            text.hide()
        self._apart(self.texts[:n], list(avoid))

    def _apart(self, texts, taken: list[QRectF]) -> None:
        """Move each caliper label down the screen, past any label it would cover (a marker's name or
        another caliper's length), so every one stays readable."""
        for text in texts:
            rect = label_rect(self.view, text, CALIPER_ANCHOR)
            for _ in range(len(taken)):
                hit = next((r for r in taken if r.intersects(rect)), None)
                if hit is None:
                    break
                at = self.view.box.mapViewToScene(text.pos()) + QPointF(0, hit.bottom() - rect.top() + 1)
                text.setPos(self.view.box.mapSceneToView(at))
                rect = label_rect(self.view, text, CALIPER_ANCHOR)
            taken.append(rect)
