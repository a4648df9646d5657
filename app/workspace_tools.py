"""The workspace's mask overlays and measuring/editing tools: outlines and calipers (toggled), the
ruler (drag: a distance in mm; a right-click on one removes it, Esc all; kept with the view state),
and the brush and eraser (a ball of ``brush_mm`` radius painted into the selected nodule's mask; one
drag is one undoable edit)."""

from __future__ import annotations

import contextlib

import numpy as np

from app.mask_edit import painted
from app.mask_layer import MaskLayer
from app.ruler_layer import Ruler, RulerLayer
from core.imaging.mpr import VIEWS, slab_slices
from core.measure.mask import NoduleMask

TOOLS = ("ruler", "brush", "eraser")
RULER_PICK_MM = 3.0  # a right-click this near a ruler's line takes it away
BRUSH_RANGE_MM = (0.5, 20.0)
THRESHOLD_HU = -500.0  # the threshold control's first value: soft tissue and dense ground glass


class WorkspaceTools:
    """A ``Workspace`` mixin; ``segmentation`` (app.segmentation.Segmentation) is set by the window."""

    def _init_tools(self) -> None:
        self.segmentation = None
        self.masks_shown = True
        self.rulers: list[Ruler] = []
        self.brush_mm = 2.5
        self._stroke: tuple[str, NoduleMask | None, NoduleMask] | None = None  # id, before, now
        self.mask_layers = {name: MaskLayer(view) for name, view in self.views.items()}
        self.ruler_layers = {name: RulerLayer(view) for name, view in self.views.items()}

    # -- drawing -------------------------------------------------------------------------------------
    def _masks(self) -> tuple[dict, dict]:
        if self.segmentation is None:
            return {}, {}
        masks = self.segmentation.current()
        if self._stroke is not None:
            masks[self._stroke[0]] = self._stroke[2]
        return masks, self.segmentation.measurements()

    def draw_overlays(self, name: str, masks_measurements: tuple[dict, dict] | None = None) -> None:
        if self.volume is None:
            return
        masks, measurements = masks_measurements or self._masks()
        p = self.planes[name]
        slab = slab_slices(p, self.slab_thickness) if self.slab_mm else 1
        avoid = self.layers[name].label_rects()  # the markers are drawn first (render, redraw)
        self.mask_layers[name].draw(
            self.volume, masks, measurements, self.markers.selected, slab, self.masks_shown, avoid
        )
        self.ruler_layers[name].draw(self.volume, self.rulers)

    def redraw_overlays(self) -> None:
        if self.volume is None:
            return
        found = self._masks()
        for name in VIEWS:
            self.draw_overlays(name, found)

    def show_masks(self, on: bool) -> None:
        self.masks_shown = bool(on)
        self.redraw_overlays()

    def clear_rulers(self) -> None:
        if self.rulers:
            self.rulers = []
            self.redraw_overlays()
            self.message.emit("Rulers cleared")
            self.view_changed.emit()  # kept with the session's view state

    def remove_ruler_at(self, name: str, voxel) -> None:
        """Take away the ruler shown in view ``name`` nearest ``voxel`` (a right-click on it, within
        ``RULER_PICK_MM``); nothing when none is that near."""
        if self.volume is None or voxel is None:
            return
        index = self.views[name].index
        near = [
            (d, n)
            for n, r in enumerate(self.rulers)
            if r.view == name
            and r.index == index
            and (d := r.distance_mm(self.volume, voxel)) <= RULER_PICK_MM
        ]
        if near:
            removed = self.rulers.pop(min(near)[1])
            self.draw_overlays(name)
            self.message.emit(f"Ruler of {removed.length_mm(self.volume):.1f} mm removed")
            self.view_changed.emit()

    def set_brush_mm(self, radius_mm: float) -> None:
        self.brush_mm = float(np.clip(radius_mm, *BRUSH_RANGE_MM))

    # -- the tools -----------------------------------------------------------------------------------
    def _tool_drag(self, name: str, phase: str, voxel: np.ndarray) -> None:
        if self.tool == "ruler":
            self._ruler(name, phase, voxel)
        else:
            self._paint(name, phase, voxel)

    def _ruler(self, name: str, phase: str, voxel: np.ndarray) -> None:
        index = self.views[name].index
        if phase == "start":
            self.rulers.append(Ruler(name, index, tuple(map(float, voxel)), tuple(map(float, voxel))))
        elif self.rulers:
            self.rulers[-1] = Ruler(name, index, self.rulers[-1].start, tuple(map(float, voxel)))
            if phase == "finish":
                self.message.emit(
                    f"Ruler: {self.rulers[-1].length_mm(self.volume):.1f} mm "
                    "(right-click on it removes it, Esc all)"
                )
                self.view_changed.emit()  # kept with the session's view state
        self.draw_overlays(name)

    def _paint(self, name: str, phase: str, voxel: np.ndarray) -> None:
        marker_id = self.markers.selected
        marker = self.markers.get(marker_id)
        if self.segmentation is None or marker is None:
            if phase == "start":
                self.message.emit("Select a nodule first: the brush and eraser edit the selected one's mask")
            return
        if phase == "start" or self._stroke is None:
            before = self.segmentation.mask(marker_id)
            start = before or NoduleMask(
                tuple(int(v) for v in np.round(voxel[::-1])),
                np.zeros((1, 1, 1), bool),
                "edited",
                marker.centre_mm,
                marker.diameter_mm,
            )
            self._stroke = (marker_id, before, start)
        marker_id, before, now = self._stroke
        with contextlib.suppress(ValueError):  # erasing the last voxels: the stroke keeps what is left
            now = painted(
                now,
                voxel[::-1],
                self.brush_mm,
                self.volume.spacing[::-1],
                self.volume.shape,
                add=self.tool == "brush",
            )
        self._stroke = (marker_id, before, now)
        if phase == "finish":
            self._stroke = None
            if now.mask.any() and now is not before:
                self.segmentation.edit(marker_id, now, "paint" if self.tool == "brush" else "erase")
        self.redraw_overlays()
