"""The selected nodule at both time points, side by side in the detail panel: an axial patch of the prior
around its paired prior nodule and one of the current study around the nodule, with their dates.

Both patches span the same millimetres in views of the same size (the same mm per pixel, whatever each
study's pixel spacing) and use the same window, so sizes and densities compare by eye. Shown only
while the selected nodule is paired in the reading and the prior is loaded; hidden otherwise.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app.detail_panel import LUNG, _Patch, titled
from core.imaging.mpr import plane

MIN_HALF_MM = 20.0  # a patch spans at least 40 mm, and 3 diameters of the larger nodule


class PairPatches(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("<b>Prior and current</b> (same scale and window)")
        self.prior, self.current = _Patch("Prior"), _Patch("Current")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.caption, 0, 0, 1, 2)
        self.boxes = [titled(self.prior), titled(self.current)]
        grid.addWidget(self.boxes[0], 1, 0)
        grid.addWidget(self.boxes[1], 1, 1)
        self.half_mm = 0.0
        self.hide()

    def show_pair(self, prior_volume, prior_marker, current_volume, current_marker, dates) -> None:
        """The two nodules (markers, each of its own volume), ``dates`` (prior, current) as text; any
        of them None: hidden."""
        if None in (prior_volume, prior_marker, current_volume, current_marker):
            self.hide()
            return
        self.half_mm = max(MIN_HALF_MM, 1.5 * max(prior_marker.diameter_mm, current_marker.diameter_mm))
        for patch, volume, marker, date, box in zip(
            (self.prior, self.current),
            (prior_volume, current_volume),
            (prior_marker, current_marker),
            dates,
            self.boxes,
            strict=True,
        ):
            _show(patch, volume, marker, self.half_mm)
            box.findChild(QLabel).setText(f"{patch.title} {date}: {marker.name}")
        self.show()


def _show(patch: _Patch, volume, marker, half_mm: float) -> None:
    """``patch`` centred on ``marker``'s axial slice, ``half_mm`` each way, in the lung window."""
    p = plane(volume, "axial")
    voxel = volume.mm_to_voxel(np.asarray(marker.centre_mm, float))
    u, v, depth = p.to_screen(voxel)
    image = p.image(volume.array, int(np.clip(round(depth), 0, p.depth - 1)))
    width, height = p.pixel_mm
    c0, c1 = int(max(u - half_mm / width, 0)), int(min(u + half_mm / width + 1, image.shape[1]))
    r0, r1 = int(max(v - half_mm / height, 0)), int(min(v + half_mm / height + 1, image.shape[0]))
    patch.show_image(np.ascontiguousarray(image[r0:r1, c0:c1]), (width, height), LUNG)
    x, y = (u - c0) * width, (v - r0) * height  # the nodule, in the patch's mm
    patch.box.setRange(QRectF(x - half_mm, y - half_mm, 2 * half_mm, 2 * half_mm), padding=0)
    patch.show_circle(x, y, marker.diameter_mm / 2)
