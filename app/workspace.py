"""The reading workspace: axial, coronal and sagittal views linked by one 3D cursor.

The workspace owns the state every view shares (the cursor in voxels, window/level, MIP slab, layout,
the active view, the tool) and redraws only the views a change touches: scrolling the axial view
repaints the axial image and moves the crosshair lines of the other two, nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app.marker_layer import MarkerLayer
from app.marker_store import MarkerStore
from app.ruler_layer import rulers_from
from app.slice_view import SliceView
from app.workspace_tools import TOOLS, WorkspaceTools
from core.imaging.corner_text import what, who_and_when
from core.imaging.mpr import VIEWS, Plane, XPlanes, plane, slab_slices
from core.nodule.markers import DEFAULT_DIAMETER_MM, MarkerError, NoduleMarker, check_inside
from core.volume import CTVolume

LAYOUTS = ("1x1", "1x3", "2x2", "1+2")
DEFAULT_LAYOUT = "1+2"  # a large axial view: tall narrow 1x3 views leave most of their height empty
# layout -> (view -> grid row, column, row span, column span), (column stretches, row stretches)
_LAYOUT_PLACES = {
    "1x1": ({}, ((1,), (1,))),
    "1x3": ({"axial": (0, 0, 1, 1), "coronal": (0, 1, 1, 1), "sagittal": (0, 2, 1, 1)}, ((1, 1, 1), (1,))),
    "2x2": ({"axial": (0, 0, 1, 1), "coronal": (0, 1, 1, 1), "sagittal": (1, 0, 1, 1)}, ((1, 1), (1, 1))),
    "1+2": ({"axial": (0, 0, 2, 1), "coronal": (0, 1, 1, 1), "sagittal": (1, 1, 1, 1)}, ((2, 1), (1, 1))),
}
MIN_WIDTH = 1.0
_ACROSS = {"axial": 2, "coronal": 1, "sagittal": 0}  # the LPS axis each view's slices are stacked along


class Workspace(WorkspaceTools, QWidget):
    cursor_moved = Signal(object)  # voxel (x, y, z)
    view_changed = Signal()  # window, slab, layout or slices: the view state to save
    message = Signal(str)  # for the status bar

    def __init__(self, markers: MarkerStore, presets: dict[str, tuple[float, float]], parent=None) -> None:
        super().__init__(parent)
        self.markers = markers
        self.presets = presets
        self.volume: CTVolume | None = None
        self.planes: dict[str, Plane] = {}
        self.cursor = np.zeros(3)
        self.window = next(iter(presets.values()))
        self.slab_mm = 0.0
        self.slab_thickness = 10.0
        self.layout_name = DEFAULT_LAYOUT
        self._held: list[str] = []  # views laid out whose paint waits (``lay_out_for``)
        self.active = "axial"
        self.tool = "navigate"
        self.crosshair = True
        self.hide_identity = False  # the patient's name and ID left out of the corners
        self.inverted = False  # white air, black bone (I)
        self._drag: dict | None = None
        self.views = {name: SliceView(name) for name in VIEWS}
        self.layers = {name: MarkerLayer(view) for name, view in self.views.items()}
        self._init_tools()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setStyleSheet("color: #ccc; background: black; padding: 12px;")
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.setStyleSheet("background: #202020;")
        for name, view in self.views.items():
            view.scrolled.connect(lambda steps, n=name: self.scroll(steps, n))
            view.clicked.connect(lambda voxel, n=name: self._clicked(n, voxel))
            view.right_clicked.connect(lambda voxel, n=name: self.remove_ruler_at(n, voxel))
            view.dragged.connect(lambda phase, voxel, n=name: self._dragged(n, phase, voxel))
            view.window_dragged.connect(self._window_dragged)
            view.hovered.connect(lambda voxel, n=name: self._hovered(n, voxel))
            view.activated.connect(lambda n=name: self.set_active(n))
        self.cine = QTimer(self)
        self.cine.setInterval(100)
        self.cine.timeout.connect(lambda: self.scroll(1, wrap=True))
        markers.changed.connect(self.redraw_markers)
        markers.changed.connect(self.redraw_overlays)  # a moved marker's automatic mask is hidden
        markers.preview_changed.connect(self.redraw_markers)
        markers.selection_changed.connect(lambda _: (self.redraw_markers(), self.redraw_overlays()))
        self.set_layout(DEFAULT_LAYOUT)

    # -- volume --------------------------------------------------------------------------------------
    def set_volume(
        self, volume: CTVolume, state: dict | None = None, focus_mm=None, render_now: Sequence[str] = VIEWS
    ) -> None:
        """Show ``volume`` with a saved view ``state``; ``focus_mm``: a point to open on, centred in
        every view (set before the first render, so the slices are cut once, not twice). Only the
        views in ``render_now`` get their slice here (the others are left blank for the caller to
        ``render`` in later turns of the event loop: three first paints in one turn held the window)."""
        self.paint_held()  # never a view left unpainted
        with ExitStack() as held:  # each view's texts placed once, at the end
            for view in self.views.values():
                held.enter_context(view.holding_overlays())
            self._set_volume(volume, state, focus_mm, render_now)

    def _set_volume(self, volume: CTVolume, state, focus_mm, render_now: Sequence[str]) -> None:
        self.cine.stop()
        self.volume = volume
        self.rulers = []  # the last study's
        self.planes = {name: plane(volume, name) for name in VIEWS}
        self._x_planes = XPlanes(volume.array)
        self.cursor = (np.array(volume.shape[::-1], dtype=float) - 1) / 2
        for name, view in self.views.items():
            view.set_plane(self.planes[name])
        self._restore(state or {})
        if focus_mm is not None:
            size = np.array(volume.shape[::-1]) - 1
            self.cursor = np.clip(volume.mm_to_voxel(np.asarray(focus_mm, float)), 0, size)
        for name, view in self.views.items():
            view.reset_view()
            if focus_mm is not None:
                view.centre_on(*self.planes[name].to_screen(self.cursor)[:2])
        for name in VIEWS:
            if name in render_now:
                self.render(name)
            else:
                self.views[name].image.clear()  # never the last study's slice under this one's overlays
        self._crosshairs()
        self.set_window(*self.window)
        self._update_info()
        self._show_corners()

    def lay_out_for(self, state: dict | None) -> list[str]:
        """A study's saved layout laid out before its views are shown (after ``leave``), the views
        blank, when it differs from the one in use: laying out three views and repainting the last
        study's slices at their new sizes in the step that showed the slices held the window ~40 ms.
        The views laid out paint only when ``paint_held`` lets them, one per turn (their three
        paints after a layout held the window 10-16 ms together): their names, in order."""
        layout = (state or {}).get("layout")
        if self.volume is None and layout in LAYOUTS and layout != self.layout_name:
            for view in self.views.values():
                view.image.clear()
            self.set_layout(layout)
            self._held = [name for name, view in self.views.items() if not view.isHidden()]
            for name in self._held:
                self.views[name].setUpdatesEnabled(False)
        return list(self._held)

    def paint_held(self, name: str | None = None) -> None:
        """Let the view ``name`` held by ``lay_out_for`` paint again (None: every view held)."""
        for held in [n for n in self._held if name is None or n == name]:
            self._held.remove(held)
            self.views[held].setUpdatesEnabled(True)

    def leave(self) -> None:
        """The study shown is being replaced: until ``set_volume`` the views keep its slices and draw
        nothing of the next one (whose markers and masks, drawn on these slices, were in the wrong
        places, and redrawing them twice held the window ~5 ms while a study was shown)."""
        self.cine.stop()
        self.volume = None

    def view_state(self) -> dict:
        return {
            "cursor_mm": [round(float(v), 2) for v in self.cursor_mm()],
            "window": list(self.window),
            "slab_mm": self.slab_mm,
            "slab_thickness": self.slab_thickness,
            "layout": self.layout_name,
            "active": self.active,
            "inverted": self.inverted,
            "rulers": [ruler.to_dict() for ruler in self.rulers],
        }

    def _restore(self, state: dict) -> None:
        try:
            if "cursor_mm" in state and self.volume.contains_mm(np.array(state["cursor_mm"], float)):
                self.cursor = self.volume.mm_to_voxel(np.array(state["cursor_mm"], float))
            if "window" in state:
                width, level = _finite(*state["window"])
                self.window = (max(width, MIN_WIDTH), level)
            # 1e999 reads back as infinity, which no save can write (allow_nan=False): every later
            # save of this series would fail and its markers go unsaved
            self.slab_mm, self.slab_thickness = _finite(
                state.get("slab_mm", 0.0), state.get("slab_thickness", self.slab_thickness)
            )
            if state.get("active") in VIEWS:
                self.active = state["active"]
            layout = state.get("layout")
            if layout in LAYOUTS and (layout != self.layout_name or layout == "1x1"):
                self.set_layout(layout)  # laying the same grid out again cost ~6 ms per study shown
            if "inverted" in state:
                self.set_inverted(state["inverted"] is True)
            self.rulers = rulers_from(state.get("rulers"))
        except (TypeError, ValueError):
            pass  # a view state from another version: start from the defaults

    def cursor_mm(self) -> np.ndarray:
        return self.volume.voxel_to_mm(self.cursor) if self.volume is not None else np.zeros(3)

    # -- layout ----------------------------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        self.paint_held()
        self.layout_name = name
        places, stretches = _LAYOUT_PLACES[name]
        if name == "1x1":
            places = {self.active: (0, 0, 1, 1)}
        if name == "2x2":
            places = {**places, "info": (1, 1, 1, 1)}
        for view_name, widget in (*self.views.items(), ("info", self.info)):
            self.grid.removeWidget(widget)
            if view_name not in places:  # a view that stays is moved, not hidden and shown again:
                widget.hide()  # that resized it twice and reactivated its scene (~20 ms a layout)
        for view_name, place in places.items():
            widget = self.info if view_name == "info" else self.views[view_name]
            self.grid.addWidget(widget, *place)
            widget.show()
        columns, rows = stretches
        for index in range(3):
            self.grid.setColumnStretch(index, columns[index] if index < len(columns) else 0)
            self.grid.setRowStretch(index, rows[index] if index < len(rows) else 0)
        self.view_changed.emit()

    def set_active(self, name: str) -> None:
        if name != self.active:
            self.active = name
            if self.layout_name == "1x1":
                self.set_layout("1x1")
            self._update_info()

    # -- rendering -------------------------------------------------------------------------------------
    def render(self, name: str) -> None:
        if self.volume is None:
            return
        p = self.planes[name]
        index = int(np.clip(round(self.cursor[p.normal]), 0, p.depth - 1))
        slab = slab_slices(p, self.slab_thickness) if self.slab_mm else 1
        image = p.image(self.volume.array, index, slab, self._x_planes)
        text = f"{name.capitalize()}  {index + 1}/{p.depth}"
        if slab > 1:
            text += f"  MIP {slab * p.spacing[p.normal]:.0f} mm"
        text += "\n" + self._position(p, index)
        self.views[name].show_slice(image, index, self.levels(), text)
        self.layers[name].draw(self.volume, self.markers, self.markers.selected)
        self.draw_overlays(name)

    def _position(self, p: Plane, index: int) -> str:
        """Where the slice lies: its LPS coordinate across the view (z axial, y coronal, x sagittal)."""
        voxel = self.cursor.copy()
        voxel[p.normal] = index
        axis = _ACROSS[p.name]
        return f"{'xyz'[axis]} {self.volume.voxel_to_mm(voxel)[axis]:.1f} mm"

    def set_hide_identity(self, on: bool) -> None:
        self.hide_identity = on
        self._show_corners()

    def _show_corners(self) -> None:
        if self.volume is None:
            return
        meta = self.volume.metadata
        for view in self.views.values():
            view.set_corners(who_and_when(meta, self.hide_identity), what(meta))

    def redraw_markers(self) -> None:
        if self.volume is None:
            return
        for layer in self.layers.values():
            layer.draw(self.volume, self.markers, self.markers.selected)

    def _crosshairs(self) -> None:
        for name, view in self.views.items():
            u, v, _ = self.planes[name].to_screen(self.cursor)
            view.set_crosshair(u, v)

    def levels(self) -> tuple[float, float]:
        width, level = self.window
        return level - width / 2, level + width / 2

    # -- navigation ------------------------------------------------------------------------------------
    def scroll(self, steps: int, name: str | None = None, wrap: bool = False) -> None:
        if self.volume is None:
            return
        name = name or self.active
        p = self.planes[name]
        index = round(self.cursor[p.normal]) + steps
        index = index % p.depth if wrap else int(np.clip(index, 0, p.depth - 1))
        self.set_slice(name, index)

    def set_slice(self, name: str, index: int) -> None:
        p = self.planes[name]
        index = int(np.clip(index, 0, p.depth - 1))
        if index == round(self.cursor[p.normal]) and self.views[name].index == index:
            return
        self.cursor[p.normal] = index
        self.render(name)
        self._crosshairs()
        self.cursor_moved.emit(self.cursor.copy())

    def move_cursor(self, voxel: np.ndarray, centre: bool = False) -> None:
        """Put the 3D cursor at ``voxel``; every view shows the slice through it."""
        if self.volume is None:
            return
        size = np.array(self.volume.shape[::-1]) - 1
        old = np.round(self.cursor)
        self.cursor = np.clip(np.asarray(voxel, float), 0, size)
        for name, p in self.planes.items():
            if round(self.cursor[p.normal]) != old[p.normal] or self.views[name].index != round(
                self.cursor[p.normal]
            ):
                self.render(name)
            if centre:
                u, v, _ = p.to_screen(self.cursor)
                self.views[name].centre_on(u, v)
        self._crosshairs()
        self.cursor_moved.emit(self.cursor.copy())

    def centre_on_mm(self, lps) -> None:
        if self.volume is None:
            return
        self.move_cursor(self.volume.mm_to_voxel(np.asarray(lps, float)), centre=True)

    def show_crosshair(self, on: bool) -> None:
        """Hide the reference lines to see a small nodule unobstructed (the cursor stays)."""
        self.crosshair = on
        for view in self.views.values():
            view.h_line.setVisible(on)
            view.v_line.setVisible(on)

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    # -- window / level, slab, cine --------------------------------------------------------------------
    def set_window(self, width: float, level: float) -> None:
        if not (math.isfinite(width) and math.isfinite(level)):
            return  # a hand-edited preset: a NaN window would make every session save fail
        self.window = (max(float(width), MIN_WIDTH), float(level))
        text = f"W {self.window[0]:.0f}  L {self.window[1]:.0f}" + ("  inverted" if self.inverted else "")
        for view in self.views.values():
            view.set_levels(self.levels(), text)
        self.view_changed.emit()

    def set_inverted(self, on: bool) -> None:
        self.inverted = bool(on)
        for view in self.views.values():
            view.set_inverted(self.inverted)
        self.set_window(*self.window)  # says so beside W/L, and saves the view state

    def apply_preset(self, number: int) -> None:
        names = list(self.presets)
        if 0 <= number < len(names):
            self.set_window(*self.presets[names[number]])
            self.message.emit(f"Window: {names[number]} {self.window[0]:.0f}/{self.window[1]:.0f}")

    def _window_dragged(self, dx: float, dy: float) -> None:
        width, level = self.window
        factor = max(width, 50.0) / 200.0  # wider windows move faster, as in most viewers
        self.set_window(width + dx * factor, level - dy * factor)

    def set_slab(self, on: bool, thickness_mm: float | None = None) -> None:
        if thickness_mm is not None:
            self.slab_thickness = float(np.clip(thickness_mm, 5.0, 20.0))
        self.slab_mm = self.slab_thickness if on else 0.0
        for name in VIEWS:
            self.render(name)
        self.view_changed.emit()

    def toggle_cine(self) -> None:
        if self.cine.isActive():
            self.cine.stop()
        elif self.volume is not None:
            self.cine.start()

    # -- mouse: crosshair and markers ----------------------------------------------------------------------
    def _clicked(self, name: str, voxel: np.ndarray) -> None:
        if self.volume is None:
            return  # the next study is being shown (``leave``)
        if self.tool in ("brush", "eraser"):
            self._tool_drag(name, "start", voxel)
            self._tool_drag(name, "finish", voxel)
            return
        hit = self.layers[name].hit(voxel)
        if hit is not None:
            self.markers.select(hit[0])
            return
        if self.tool == "marker":
            self._place(voxel, DEFAULT_DIAMETER_MM)
            return
        self.markers.select("")
        self.move_cursor(voxel)

    def _place(self, voxel: np.ndarray, diameter_mm: float) -> None:
        centre = self.volume.voxel_to_mm(voxel)
        try:
            check_inside(self.volume, centre)
        except MarkerError as exc:
            self.message.emit(str(exc))
            return
        self.markers.new_marker(centre, round(diameter_mm, 1))

    def _dragged(self, name: str, phase: str, voxel: np.ndarray) -> None:
        if self.volume is None:
            return
        if self.tool in TOOLS:
            self._tool_drag(name, phase, voxel)
            return
        if phase == "start":
            hit = self.layers[name].hit(voxel)
            if hit is not None:
                marker = self.markers.get(hit[0])
                self.markers.select(marker.id)
                self._drag = {"mode": hit[1], "marker": marker, "start": voxel}
            elif self.tool == "marker":
                self._drag = {"mode": "create", "start": voxel}
            else:
                self._drag = {"mode": "cursor"}
                self.move_cursor(voxel)
            return
        drag = self._drag
        if drag is None:
            return
        mode = drag["mode"]
        if mode == "cursor":
            self.move_cursor(voxel)
        elif mode == "move":
            shift = self.volume.voxel_to_mm(voxel) - self.volume.voxel_to_mm(drag["start"])
            centre = np.asarray(drag["marker"].centre_mm) + shift
            moved = replace(drag["marker"], centre_mm=tuple(float(v) for v in centre))
            if phase == "finish":
                self._commit(moved, "move")
            else:
                self.markers.set_preview(moved)
        elif mode == "resize":
            marker = drag["marker"]
            radius = self.layers[name].in_plane_distance(voxel, np.asarray(marker.centre_mm))
            resized = replace(marker, diameter_mm=round(float(np.clip(2 * radius, 2.0, 100.0)), 1))
            if phase == "finish":
                self.markers.edit(resized, "resize")
            else:
                self.markers.set_preview(resized)
        elif mode == "create":
            centre = self.volume.voxel_to_mm(drag["start"])
            radius = self.layers[name].in_plane_distance(voxel, centre)
            diameter = (
                round(float(np.clip(2 * radius, 2.0, 100.0)), 1) if radius > 1.0 else DEFAULT_DIAMETER_MM
            )
            if phase == "finish":
                self.markers.set_preview(None)
                self._place(drag["start"], diameter)
            else:
                self.markers.set_preview(self._ghost(centre, diameter))
        if phase == "finish":
            self._drag = None

    def _ghost(self, centre, diameter: float) -> NoduleMarker:
        return NoduleMarker("(new)", "new", tuple(float(v) for v in centre), diameter)

    def _commit(self, marker, text: str) -> None:
        try:
            check_inside(self.volume, marker.centre_mm)
        except MarkerError as exc:
            self.markers.set_preview(None)
            self.message.emit(f"{exc}; the marker stays where it was")
            return
        self.markers.edit(marker, text)

    def _hovered(self, name: str, voxel) -> None:
        view = self.views[name]
        if voxel is None or self.volume is None:
            view.set_probe("")
            return
        index = np.round(voxel).astype(int)
        size = np.array(self.volume.shape[::-1])
        if np.any(index < 0) or np.any(index >= size):
            view.set_probe("")
            return
        hu = int(self.volume.array[index[2], index[1], index[0]])
        x, y, z = self.volume.voxel_to_mm(voxel)
        view.set_probe(f"{hu} HU   ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS")

    def _update_info(self) -> None:
        if self.volume is None:
            return
        z, y, x = self.volume.shape
        sx, sy, sz = self.volume.spacing
        meta = self.volume.metadata
        self.info.setText(
            f"<b>{meta.series_description or 'CT series'}</b><br>{x} x {y} x {z} voxels<br>"
            f"{sx:.2f} x {sy:.2f} x {sz:.2f} mm<br>{meta.manufacturer} {meta.convolution_kernel}<br><br>"
            f"Press F1 for the keys and mouse."
        )


def _finite(*values) -> tuple[float, ...]:
    """The values as floats; ValueError when one is NaN or infinite (a damaged view state)."""
    numbers = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError("not finite")
    return numbers
