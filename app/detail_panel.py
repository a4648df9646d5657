"""The selected nodule in detail: axial/coronal/sagittal patches (and, when it is paired with a prior
nodule, both time points side by side: ``app.compare_patches``), the model's input with its Grad-CAM
heat-map, the eight scores against their scales, the malignancy with its uncertainty, and the form
where the reader confirms or corrects them (stored as a reader label, shown apart from the model's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.imaging.location import ZONE_NOTE
from core.imaging.mpr import VIEWS, plane
from core.model.explain import overlay_rgb
from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.nodule.meanings import TITLES, describe, meaning
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES, RATING_MAX, RATINGS
from core.volume import CTVolume

LUNG = (-1350.0, 150.0)
NOT_RATED = 0.0
THUMB = 132  # px per thumbnail: two columns fit the 340 px dock at 1280x800 and 1600x1000
SMALL = "color: #666; font-size: 10px;"


def titled(view: _Patch) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(1)
    layout.addWidget(QLabel(view.title))
    layout.addWidget(view)
    return box


class _Scores(QWidget):
    """The eight attribute scores: name, a bar against the scale, and the scale's words in full
    (wrapped, never cut), one row each."""

    def __init__(self) -> None:
        super().__init__()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        self.bars: dict[str, QProgressBar] = {}
        self.words: dict[str, QLabel] = {}
        for row, name in enumerate(ATTRIBUTES):
            title = QLabel(TITLES[name])
            title.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            title.setStyleSheet("color: #555;")
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            bar.setFixedHeight(6)
            words = QLabel()
            words.setWordWrap(True)
            cell = QVBoxLayout()
            cell.setSpacing(1)
            cell.addWidget(bar)
            cell.addWidget(words)
            grid.addWidget(title, row, 0)
            grid.addLayout(cell, row, 1)
            self.bars[name], self.words[name] = bar, words

    def show_result(self, result: NoduleResult | None) -> None:
        for name in ATTRIBUTES:
            value = None if result is None else result.attributes[name]
            fraction = 0.0 if value is None else (value - 1) / (RATING_MAX[name] - 1)
            self.bars[name].setValue(round(1000 * min(max(fraction, 0.0), 1.0)))
            text = "" if value is None else f"{value:.1f}/{RATING_MAX[name]} {meaning(name, value)}"
            self.words[name].setText(text)
            self.words[name].setToolTip("" if value is None else describe(name, value))


NOT_ANALYSED_NOTE = "Model input and its Grad-CAM map: shown once the nodule is analysed (press Analyse)."


class _Patch(pg.GraphicsLayoutWidget):
    """A small fixed view of one image (no mouse interaction), with an optional circle; its title is
    a label above it (``titled``), never drawn over the image."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.setBackground("k")
        self.setFixedSize(THUMB, THUMB)
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.box = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self.circle = pg.QtWidgets.QGraphicsEllipseItem()
        pen = QPen(pg.mkColor(0, 220, 255))
        pen.setCosmetic(True)
        self.circle.setPen(pen)
        self.box.addItem(self.circle)

    def show_image(self, image: np.ndarray, pixel_mm: tuple[float, float], levels=None) -> None:
        from PySide6.QtGui import QTransform

        self.image.setImage(image, autoLevels=levels is None, levels=levels)
        self.image.setTransform(QTransform.fromScale(*pixel_mm))
        rows, cols = image.shape[:2]  # the image exactly, whatever the circle's extent (autoRange took it in)
        self.box.setRange(QRectF(0, 0, cols * pixel_mm[0], rows * pixel_mm[1]), padding=0)

    def show_circle(self, x: float, y: float, radius: float) -> None:
        self.circle.setRect(QRectF(x - radius, y - radius, 2 * radius, 2 * radius))
        self.circle.setVisible(radius > 0)


class DetailPanel(QWidget):
    label_confirmed = Signal(str, object)  # marker id, NoduleLabel or None (cleared)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marker: NoduleMarker | None = None
        self._patched: tuple = (None, None)  # the volume and marker the patches show
        self._patches_held, self._patches_due = False, None  # see holding_patches
        self.result: NoduleResult | None = None
        self.explanation = None
        self.title = QLabel("Select a nodule")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: bold; font-size: 13px;")
        self.where_note = QLabel()
        self.where_note.setWordWrap(True)
        self.where_note.setStyleSheet(SMALL)
        self.size = QLabel()  # the measured size, from the nodule's 3D mask
        self.size.setWordWrap(True)
        self.score = QLabel()
        self.score.setWordWrap(True)
        self.model = QLabel()
        self.model.setWordWrap(True)
        self.model.setStyleSheet(SMALL)
        self.patches = {name: _Patch(name.capitalize()) for name in VIEWS}
        from app.compare_patches import PairPatches  # it draws with this module's patches

        self.pair = PairPatches()  # prior and current side by side, while the nodule is paired
        self.cam = _Patch("Model input")
        self.cam_toggle = QCheckBox("Grad-CAM heat-map")
        self.cam_toggle.setChecked(True)
        self.cam_toggle.setToolTip("Where the model looked for its malignancy score; not proof of why")
        self.cam_toggle.toggled.connect(self._show_cam)
        self.cam_note = QLabel()
        self.cam_note.setWordWrap(True)
        self.cam_note.setStyleSheet(SMALL)
        grid = QGridLayout()
        for index, view in enumerate((*self.patches.values(), self.cam)):
            grid.addWidget(titled(view), index // 2, index % 2)
        self.scores = _Scores()
        self.form = QFormLayout()
        self.inputs: dict[str, QDoubleSpinBox] = {}
        for name in RATINGS[::-1][:1] + RATINGS[:8]:  # malignancy first
            box = QDoubleSpinBox()
            box.setRange(NOT_RATED, RATING_MAX[name])
            box.setDecimals(0)
            box.setSpecialValueText("not rated")
            box.valueChanged.connect(
                lambda value, n=name, b=box: b.setToolTip(meaning(n, value) if value else "")
            )
            self.inputs[name] = box
            self.form.addRow(TITLES[name], box)
        self.confirm = QPushButton("Confirm as reader")
        self.confirm.setToolTip("Store these values as the reader's label (used for fine-tuning later)")
        self.confirm.clicked.connect(self._confirm)
        self.clear = QPushButton("Clear reader label")
        self.clear.clicked.connect(lambda: self.marker and self.label_confirmed.emit(self.marker.id, None))
        self.reader_state = QLabel()
        self.reader_state.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.confirm)
        buttons.addWidget(self.clear)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.where_note)
        layout.addWidget(self.size)
        layout.addWidget(self.score)
        layout.addWidget(self.pair)
        layout.addLayout(grid)
        layout.addWidget(self.cam_toggle)
        layout.addWidget(self.cam_note)
        heading = QLabel("<b>Model's attribute scores</b>")
        heading.setToolTip("Each bar runs from 1 to the top of its LIDC scale; hover the words for more")
        layout.addWidget(heading)
        layout.addWidget(self.scores)
        layout.addWidget(QLabel("<b>Reader's assessment</b> (LIDC scales)"))
        layout.addLayout(self.form)
        layout.addWidget(self.reader_state)
        layout.addLayout(buttons)
        layout.addWidget(self.model)
        layout.addStretch(1)
        self.reader = ""
        self.show_nodule(None, None, None, None, "")

    # -- content -------------------------------------------------------------------------------------
    def show_nodule(
        self,
        volume: CTVolume | None,
        marker: NoduleMarker | None,
        result: NoduleResult | None,
        label: NoduleLabel | None,
        model_text: str,
        location: str = "",
    ) -> None:
        if (marker is None) != (self.marker is None):
            self._hold_space(marker is None)
        self.marker, self.result, self.explanation = marker, result, None
        enabled = marker is not None
        for widget in (self.confirm, self.clear, *self.inputs.values()):
            widget.setEnabled(enabled)
        self.model.setText(model_text)
        self.size.setText("")
        if marker is None or volume is None:
            self.title.setText("Select a nodule in the list")
            self.where_note.setText("")
            self.score.setText("")
            self.scores.show_result(None)
            return
        self.show_location(location)
        if result is None:
            self.score.setText("Not analysed yet: press Analyse.")
        else:
            self.score.setText(score_html(result))
        if self._patches_held:
            self._patches_due = (volume, marker)
        else:
            self._patches(volume, marker)
        self.scores.show_result(result)
        self._form(result, label)
        if self.cam.image.image is not None:  # clearing an empty one repainted its scene all the same
            self.cam.image.clear()
        self.cam.circle.setVisible(False)
        self.cam_note.setText(NOT_ANALYSED_NOTE if result is None else "")

    def show_location(self, location: str) -> None:
        """The shown nodule's title with its ``location`` (side, zone, slice), all else left as is."""
        if self.marker is None:
            return
        marker = self.marker
        self.title.setText(
            f"{marker.name}: {marker.diameter_mm:.1f} mm" + (f", {location}" if location else "")
        )
        zone = "zone" in location
        self.where_note.setText("Zone: a third of the lung's height, not a lobe." if zone else "")
        self.where_note.setToolTip(f"{ZONE_NOTE[0].upper()}{ZONE_NOTE[1:]}." if zone else "")

    @contextmanager
    def holding_patches(self) -> Iterator[None]:
        """A nodule shown meanwhile gets its slices at ``release_patches``, in a later turn of the event
        loop: as a study is shown its nodule is selected in one turn, and the three thumbnails' new
        images and repaint made that turn the window's longest stall (until then, ~10 ms, the
        thumbnails still show the last nodule's slices)."""
        self._patches_held = True
        try:
            yield
        finally:
            self._patches_held = False

    def release_patches(self) -> None:
        due, self._patches_due = self._patches_due, None
        if due is not None and due[1] == self.marker:  # not another nodule shown since
            self._patches(*due)

    def _hold_space(self, hold: bool) -> None:
        """Cleared, the texts keep the height the nodule's took, and the next nodule's take theirs back:
        opening a study clears the panel, then shows its nodule, and each change of height moved the
        ~35 widgets below and repainted the whole panel (~5 ms each, twice, as the study was shown)."""
        for label in (self.where_note, self.size, self.score, *self.scores.words.values()):
            label.setMinimumHeight(label.height() if hold else 0)

    def show_size(self, mask, measured, error: str = "", unmeasured: str = "") -> None:
        """The nodule's measured size (``NoduleMeasurement``), or why it has none."""
        if measured is None:
            if error:
                text = f"<b>Not segmented:</b> {escape(error)}"
            elif mask is not None:
                text = "Mask " + ("edited by the reader" if mask.edited else "segmented") + "; "
                text += f"not measured: {escape(unmeasured)}" if unmeasured else "measuring..."
            else:
                text = "Not segmented yet: press Analyse to outline and measure it."
            self.size.setText(text)
            return
        m = measured
        edited = (mask is not None and mask.edited) or m.edited
        lines = [
            f"<b>Volume {m.volume_mm3:.0f} mm³</b> (effective diameter {m.effective_diameter_mm:.1f} mm)",
            f"Axes {m.long_axis_mm:.1f} × {m.short_axis_mm:.1f} mm, mean <b>{m.mean_diameter_mm:.1f} mm</b>"
            f" ({m.plane} slice {m.slice_index + 1})",
            f"{m.texture.capitalize()}"
            + (f", solid part {m.solid_diameter_mm:.1f} mm" if m.solid_diameter_mm is not None else "")
            + f"; mean {m.mean_hu:.0f} HU"
            + (", touches the pleura" if m.touches_pleura else ""),
            "<b>Mask edited by the reader</b>" if edited else f"Mask: {escape(m.method)}",
            *(escape(w) for w in m.warnings),
        ]
        self.size.setText("<br>".join(lines))

    def _patches(self, volume: CTVolume, marker: NoduleMarker) -> None:
        """The nodule's slices; kept when they show it already (the list's refill as its lungs were
        found, ~2 ms more as a study opened, and their repaint)."""
        if self._patched[0] is volume and self._patched[1] == marker:
            return
        self._patched = (volume, marker)
        voxel = volume.mm_to_voxel(np.asarray(marker.centre_mm, float))
        half_mm = max(20.0, 1.5 * marker.diameter_mm)
        for name, view in self.patches.items():
            p = plane(volume, name)
            u, v, depth = p.to_screen(voxel)
            image = p.image(volume.array, round(depth))
            width, height = p.pixel_mm
            c0, c1 = int(max(u - half_mm / width, 0)), int(min(u + half_mm / width, image.shape[1]))
            r0, r1 = int(max(v - half_mm / height, 0)), int(min(v + half_mm / height, image.shape[0]))
            view.show_image(np.ascontiguousarray(image[r0:r1, c0:c1]), (width, height), LUNG)
            view.show_circle((u - c0) * width, (v - r0) * height, marker.diameter_mm / 2)

    def _form(self, result: NoduleResult | None, label: NoduleLabel | None) -> None:
        for name, box in self.inputs.items():
            value = None
            if label is not None:
                value = label.malignancy if name == "malignancy" else label.attributes.get(name)
            elif result is not None and name != "malignancy":  # malignancy: the reader's own call
                value = result.attributes.get(name)
            box.setValue(round(value) if value is not None else NOT_RATED)
        if label is None:
            self.reader_state.setText(
                "Not confirmed by a reader: attributes prefilled from the model; malignancy is yours to rate."
            )
        else:
            when = label.confirmed_at[:16].replace("T", " ")
            self.reader_state.setText(f"<b>Reader-confirmed</b> {when} {label.reader}".strip())

    # -- explanation -----------------------------------------------------------------------------------
    def set_explanation(self, marker_id: str, explanation) -> None:
        if self.marker is None or marker_id != self.marker.id:
            return
        self.explanation = explanation
        self._show_cam()

    def _show_cam(self) -> None:
        if self.explanation is None:
            self.cam.image.clear()
            self.cam.circle.setVisible(False)
            self.cam_note.setText("")
            return
        e = self.explanation
        shown = self.cam_toggle.isChecked() and float(e.heatmap.max()) > 0
        rgb = overlay_rgb(e.patch, e.heatmap, None, 0.45 if shown else 0.0)
        scale = f"Model input, {e.side_mm:.1f} mm across; circle: the marker." if e.side_mm > 0 else ""
        if shown and not e.on_nodule:
            scale = f"<b>The model looked elsewhere, not at the nodule.</b> {scale}"
        self.cam_note.setText(f"{scale} {e.note}".strip() if self.cam_toggle.isChecked() else scale)
        self.cam.show_image(rgb, (1.0, 1.0))
        middle = rgb.shape[1] / 2, rgb.shape[0] / 2
        self.cam.show_circle(*middle, e.marker_radius_px)
        self.cam.setToolTip(f"{scale} {e.note}".strip())

    # -- the reader's label -----------------------------------------------------------------------------
    def _confirm(self) -> None:
        if self.marker is None:
            return
        values = {name: box.value() for name, box in self.inputs.items() if box.value() != NOT_RATED}
        label = NoduleLabel(
            malignancy=values.pop("malignancy", None),
            attributes=values,
            source="reader",
            reader=self.reader,
            confirmed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        self.label_confirmed.emit(self.marker.id, label)


def score_html(result) -> str:
    """``p = 0.34 (0.22-0.47)`` and rank: one uncertainty, the interval; the slice-to-slice spread
    (``± 0.05``) only for a result without one (saved before intervals existed, or no TTA). A warning
    instead when the model was not trained for this nodule (``core.model.ood``); ``indeterminate`` when
    the interval crosses the decision band."""
    if result.warnings:
        return (
            "<span style='font-size:15px; color:#b00000'><b>⚠ Out of distribution</b></span><br>"
            f"{escape(result.warning_text)}.<br>The model's {result.score_text} is not reliable here."
        )
    text = (
        f"<span style='font-size:15px'><b>Malignancy probability {result.score_text}</b></span>"
        + ("" if result.interval else f" ± {result.uncertainty:.2f}")
        + f" (model; rank {result.rank})"
    )
    if result.indeterminate:
        text += "<br><b>Indeterminate</b>: the interval crosses the 10 % / 70 % decision band."
    return text
