"""The prior study beside the current one: an axial view of the prior linked to the workspace through
the follow-up's registration.

The workspace stays the reader's: its 3D cursor, its axial view's zoom and pan and its window/level
drive this view. The cursor (current LPS mm) is carried into the prior by ``Registration.to_prior``
and the prior's axial slice through it is shown with the crosshair on it; the current axial view's
centre is carried the same way and the prior view shows the same mm per screen pixel around it, so
zooming and panning follow. Scrolling over the prior view scrolls the current axial view (and so both);
a click (or a left-drag) in it puts the cursor there: the prior point carried into the current study by
``Registration.to_current``, so both views' crosshairs move to it.
The prior's nodules are drawn on it by name, the one paired with the selected nodule highlighted. Under
it, the selected nodule's follow-up (``app.compare_history``).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.compare_history import NoduleHistory
from app.marker_layer import MarkerLayer
from app.slice_view import SliceView
from core.followup.compare import FollowUp
from core.followup.register import Registration
from core.imaging.mpr import plane
from core.volume import CTVolume


class PriorView(QWidget):
    def __init__(self, workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.volume: CTVolume | None = None
        self.registration: Registration | None = None
        self.reading: FollowUp | None = None
        self.prior = None  # app.compare_prior.PriorStudy shown
        self.proposed = None  # a NoduleMarker proposed in the prior (app.compare_lookback), drawn too
        self.pair_patches = None  # app.compare_patches.PairPatches of the detail panel
        self.plane = None
        self.title = QLabel()
        self.title.setStyleSheet("color: #ddd; background: #303030; padding: 4px;")
        self.view = SliceView("axial")
        self.markers = MarkerLayer(self.view)  # the prior's nodules
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        self.history = NoduleHistory()  # the selected nodule's pair and volume over time
        layout.addWidget(self.history)
        self.view.scrolled.connect(lambda steps: workspace.scroll(steps, "axial"))
        self.view.clicked.connect(self.point_at)
        self.view.dragged.connect(lambda _, voxel: self.point_at(voxel))
        workspace.cursor_moved.connect(lambda _: self.follow())
        workspace.view_changed.connect(self.follow)
        workspace.views["axial"].box.sigRangeChanged.connect(lambda *_: self.follow())
        workspace.markers.selection_changed.connect(lambda _: self.show_selected())
        workspace.markers.changed.connect(self.show_selected)  # a moved or resized nodule
        self.hide()

    def show_prior(self, prior, reading: FollowUp) -> None:
        """Show ``prior`` (``app.compare_prior.PriorStudy``: its volume, markers and masks) linked
        through ``reading``'s registration."""
        self.prior = prior
        volume = prior.volume
        self.volume, self.registration, self.reading = volume, reading.registration, reading
        self.plane = plane(volume, "axial")
        self.view.set_plane(self.plane)
        title = reading.prior.date.isoformat()
        self.view.set_corners("", title)
        self.title.setText(f"Prior: {title}  (linked to the current study through the registration)")
        self.show()
        self.view.reset_view()
        self.follow()
        self.show_selected()

    def set_reading(self, reading: FollowUp) -> None:
        """The same prior, another reading of it (the reader re-paired its nodules)."""
        self.reading, self.registration = reading, reading.registration
        self.show_selected()

    def show_selected(self) -> None:
        """The selected nodule's follow-up under the view, and its two time points side by side in the
        detail panel (``pair_patches``, set by the window) when it is paired."""
        marker = self.workspace.markers.get(self.workspace.markers.selected)
        reading = self.reading
        if reading is not None:
            self.history.show_nodule(reading, marker.id if marker else "", marker.name if marker else "")
            self.draw_markers()
        if self.pair_patches is None:
            return
        pair = marker and reading and next((p for p in reading.pairs if p.current_id == marker.id), None)
        if not pair or self.prior is None:
            self.pair_patches.hide()
            return
        prior_marker = next((m for m in self.prior.markers if m.id == pair.prior_id), None)
        dates = reading.prior.date.isoformat(), reading.current.date.isoformat()
        self.pair_patches.show_pair(self.volume, prior_marker, self.workspace.volume, marker, dates)

    def clear(self) -> None:
        """Another study is shown: the prior is no longer the one beside it."""
        self.volume = self.registration = self.plane = self.reading = self.prior = self.proposed = None
        self.view.image.clear()
        if self.pair_patches is not None:
            self.pair_patches.hide()
        self.hide()

    def prior_voxel(self, current_mm) -> np.ndarray:
        """The prior's voxel (x, y, z) at a point of the current study (LPS mm), inside the prior."""
        mm = self.registration.to_prior(np.asarray(current_mm, float))
        size = np.array(self.volume.shape[::-1]) - 1
        return np.clip(self.volume.mm_to_voxel(mm), 0, size)

    def point_at(self, prior_voxel) -> None:
        """The cursor to a point of the prior (voxel x, y, z), in both views: carried into the current
        study through the registration."""
        ws = self.workspace
        if self.volume is None or ws.volume is None:
            return
        current_mm = self.registration.to_current(self.volume.voxel_to_mm(np.asarray(prior_voxel, float)))
        ws.move_cursor(ws.volume.mm_to_voxel(current_mm))

    def follow(self) -> None:
        """Show the prior where the workspace is: its cursor's slice, crosshair, zoom and window."""
        ws = self.workspace
        if self.volume is None or ws.volume is None or self.isHidden():
            return
        p = self.plane
        voxel = self.prior_voxel(ws.cursor_mm())
        index = round(voxel[p.normal])
        text = f"Prior axial  {index + 1}/{p.depth}"
        self.view.show_slice(p.image(self.volume.array, index), index, ws.levels(), text)
        self.view.set_levels(ws.levels(), f"W {ws.window[0]:.0f}  L {ws.window[1]:.0f}")
        self.view.set_inverted(ws.inverted)
        u, v, _ = p.to_screen(voxel)
        self.view.set_crosshair(u, v, ws.crosshair)
        self.draw_markers()
        current = ws.views["axial"]
        if current.plane is None:
            return
        rect = current.box.viewRect()
        centre = ws.volume.voxel_to_mm(current.voxel_at(rect.center()))
        cu, cv, _ = p.to_screen(self.prior_voxel(centre))
        width, height = p.pixel_mm
        x, y = cu * width, cv * height
        # the same mm per screen pixel as the current view (the two views' shapes differ)
        per_px = current.box.viewPixelSize()
        box = self.view.box
        span_x = box.width() * per_px[0] if box.width() > 0 else rect.width()
        span_y = box.height() * per_px[1] if box.height() > 0 else rect.height()
        box.setRange(
            xRange=(x - span_x / 2, x + span_x / 2), yRange=(y - span_y / 2, y + span_y / 2), padding=0
        )

    def draw_markers(self) -> None:
        """The prior's nodules on the shown slice, by name; the one paired with the selected nodule
        highlighted (the re-pairing menu names them)."""
        if self.prior is None or self.view.plane is None:
            return
        selected = self.workspace.markers.selected
        pair = next((p for p in self.reading.pairs if p.current_id == selected), None) if selected else None
        shown = [*self.prior.markers, *([self.proposed] if self.proposed is not None else [])]
        self.markers.draw(self.volume, shown, pair.prior_id if pair else "")

    def centre_mm(self) -> np.ndarray:
        """The prior point (LPS mm) the view's crosshair is on."""
        p = self.plane
        u, v = self.view.v_line.value() / p.pixel_mm[0], self.view.h_line.value() / p.pixel_mm[1]
        return self.volume.voxel_to_mm(p.to_voxel(u, v, self.view.index))
