"""The selected nodule in detail: axial/coronal/sagittal patches, the model's input with its Grad-CAM
heat-map, the eight scores against their scales, the malignancy with its uncertainty, and the form
where the reader confirms or corrects them (stored as a reader label, shown apart from the model's).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.explain import overlay_rgb
from core.inference import NoduleResult
from core.labels import NoduleLabel
from core.lidc.meanings import TITLES, describe, meaning
from core.lidc.records import ATTRIBUTES, RATING_MAX, RATINGS
from core.markers import NoduleMarker
from core.mpr import VIEWS, plane
from core.volume import CTVolume

LUNG = (-1350.0, 150.0)
NOT_RATED = 0.0


class _Patch(pg.GraphicsLayoutWidget):
    """A small fixed view of one image (no mouse interaction), with an optional circle."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.setBackground("k")
        self.setFixedSize(132, 132)
        self.box = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self.circle = pg.QtWidgets.QGraphicsEllipseItem()
        pen = QPen(pg.mkColor(0, 220, 255))
        pen.setCosmetic(True)
        self.circle.setPen(pen)
        self.box.addItem(self.circle)
        self.label = pg.TextItem(title, color="w", anchor=(0, 0))
        self.label.setParentItem(self.box)

    def show_image(self, image: np.ndarray, pixel_mm: tuple[float, float], levels=None) -> None:
        from PySide6.QtGui import QTransform

        self.image.setImage(image, autoLevels=levels is None, levels=levels)
        self.image.setTransform(QTransform.fromScale(*pixel_mm))
        self.box.autoRange(padding=0)

    def show_circle(self, x: float, y: float, radius: float) -> None:
        self.circle.setRect(QRectF(x - radius, y - radius, 2 * radius, 2 * radius))
        self.circle.setVisible(radius > 0)


class DetailPanel(QWidget):
    label_confirmed = Signal(str, object)  # marker id, NoduleLabel or None (cleared)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marker: NoduleMarker | None = None
        self.result: NoduleResult | None = None
        self.explanation = None
        self.title = QLabel("Select a nodule")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: bold; font-size: 13px;")
        self.score = QLabel()
        self.score.setWordWrap(True)
        self.model = QLabel()
        self.model.setWordWrap(True)
        self.model.setStyleSheet("color: #666; font-size: 10px;")
        self.patches = {name: _Patch(name.capitalize()) for name in VIEWS}
        self.cam = _Patch("Model input")
        self.cam_toggle = QCheckBox("Grad-CAM heat-map")
        self.cam_toggle.setChecked(True)
        self.cam_toggle.setToolTip("Where the model looked for its malignancy score; not proof of why")
        self.cam_toggle.toggled.connect(self._show_cam)
        self.cam_note = QLabel()
        self.cam_note.setWordWrap(True)
        self.cam_note.setStyleSheet("color: #666; font-size: 10px;")
        grid = QGridLayout()
        for index, view in enumerate((*self.patches.values(), self.cam)):
            grid.addWidget(view, index // 2, index % 2)
        self.bars = pg.PlotWidget(background="w")
        self.bars.setFixedHeight(190)
        self.bars.setMouseEnabled(False, False)
        self.bars.hideButtons()
        self.bars.setXRange(0, 1, padding=0.02)
        self.bars.getAxis("bottom").setTicks([[(0, "1"), (0.5, "mid"), (1, "max")]])
        self.bars.getAxis("left").setTicks([[(i, TITLES[a]) for i, a in enumerate(ATTRIBUTES)]])
        self.bars.invertY(True)
        self.bars.getViewBox().setYRange(-0.6, len(ATTRIBUTES) - 0.4, padding=0)
        self.bar_items: list = []
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
        layout.addWidget(self.score)
        layout.addLayout(grid)
        layout.addWidget(self.cam_toggle)
        layout.addWidget(self.cam_note)
        layout.addWidget(self.bars)
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
        self.marker, self.result, self.explanation = marker, result, None
        enabled = marker is not None
        for widget in (self.confirm, self.clear, *self.inputs.values()):
            widget.setEnabled(enabled)
        self.model.setText(model_text)
        if marker is None or volume is None:
            self.title.setText("Select a nodule in the list")
            self.score.setText("")
            self._bars(None)
            return
        self.title.setText(
            f"{marker.name}: {marker.diameter_mm:.1f} mm" + (f", {location}" if location else "")
        )
        if result is None:
            self.score.setText("Not analysed yet: press Analyse.")
        else:
            self.score.setText(
                f"<span style='font-size:15px'><b>Malignancy probability {result.malignancy:.2f}</b></span>"
                f" ± {result.uncertainty:.2f} (model; rank {result.rank})"
            )
        self._patches(volume, marker)
        self._bars(result)
        self._form(result, label)
        self.cam.image.clear()

    def _patches(self, volume: CTVolume, marker: NoduleMarker) -> None:
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

    def _bars(self, result: NoduleResult | None) -> None:
        for item in self.bar_items:
            self.bars.removeItem(item)
        self.bar_items = []
        if result is None:
            return
        values = [result.attributes[a] for a in ATTRIBUTES]
        fractions = [(v - 1) / (RATING_MAX[a] - 1) for a, v in zip(ATTRIBUTES, values, strict=True)]
        bars = pg.BarGraphItem(
            x0=0, y=list(range(len(ATTRIBUTES))), height=0.6, width=fractions, brush=(170, 195, 230)
        )
        self.bars.addItem(bars)
        self.bar_items.append(bars)
        for i, (name, value) in enumerate(zip(ATTRIBUTES, values, strict=True)):
            text = pg.TextItem(f"{value:.1f}/{RATING_MAX[name]} {meaning(name, value)}", color=(20, 20, 20))
            text.setPos(0.02, i - 0.45)
            text.setToolTip(describe(name, value))
            self.bars.addItem(text)
            self.bar_items.append(text)

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
            self.cam_note.setText("")
            return
        e = self.explanation
        shown = self.cam_toggle.isChecked() and float(e.heatmap.max()) > 0
        rgb = overlay_rgb(e.patch, e.heatmap, None, 0.45 if shown else 0.0)
        scale = f"Model input, {e.side_mm:.1f} mm across." if e.side_mm > 0 else ""
        self.cam_note.setText(f"{scale} {e.note}".strip() if self.cam_toggle.isChecked() else scale)
        self.cam.show_image(rgb, (1.0, 1.0))
        self.cam.circle.setVisible(False)
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
