"""The ranked nodule list: most suspicious first, every score with its LIDC meaning, Lung-RADS with
the rule that fired, and small in-cell bars so the eye reads the table at a glance.

Reader-confirmed values are shown in bold with a tick and a tinted cell, never mixed up with the
model's output (whose value stays in the tooltip).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QStyledItemDelegate, QTableWidget, QTableWidgetItem

from app.compare_columns import FOLLOW_UP_COLUMNS, fill_follow_up
from core.imaging.location import ZONE_NOTE
from core.nodule.labels import NoduleLabel
from core.nodule.lungrads import LungRads
from core.nodule.markers import NoduleMarker
from core.nodule.meanings import TITLES, describe, meaning
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES, RATING_MAX

SHORT = {
    "subtlety": "Subtl.",
    "internal_structure": "Struct.",
    "calcification": "Calc.",
    "sphericity": "Spher.",
    "margin": "Margin",
    "lobulation": "Lobul.",
    "spiculation": "Spic.",
    "texture": "Texture",
}
COLUMNS = [
    "Rank",
    "Marker",
    "Location",
    "Diameter",
    "Volume",
    "Axes",
    "Solid",
    "Malignancy",
    *[SHORT[a] for a in ATTRIBUTES],
    "Lung-RADS",
    *FOLLOW_UP_COLUMNS,  # shown with a follow-up reading (app.compare_columns)
]
LOCATION, DIAMETER, VOLUME, AXES, SOLID = 2, 3, 4, 5, 6  # the last three from the 3D mask (core.measure)
MALIGNANCY, FIRST_ATTRIBUTE, LUNG_RADS = 7, 8, 8 + len(ATTRIBUTES)
FOLLOW_UP = LUNG_RADS + 1
SORT_KEY = Qt.ItemDataRole.UserRole + 1
BAR = Qt.ItemDataRole.UserRole + 2  # fraction 0..1 drawn as a bar behind the text
READER = QColor(255, 244, 200)
RADS_ORDER = {"1": 1, "2": 2, "3": 3, "4A": 4, "4B": 5, "4X": 6}


class _Item(QTableWidgetItem):
    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_KEY), other.data(SORT_KEY)
        if mine is None or theirs is None:
            return (mine is None) < (theirs is None)
        return mine < theirs


class _BarDelegate(QStyledItemDelegate):
    def paint(self, painter, option, index) -> None:
        fraction = index.data(BAR)
        if fraction is not None:
            rect: QRect = option.rect.adjusted(2, option.rect.height() - 6, -2, -2)
            painter.fillRect(rect, QColor(225, 225, 225))
            width = int(rect.width() * max(0.0, min(1.0, float(fraction))))
            painter.fillRect(QRect(rect.left(), rect.top(), width, rect.height()), QColor(70, 110, 170))
        super().paint(painter, option, index)


class NoduleTable(QTableWidget):
    marker_selected = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        for column, name in enumerate(ATTRIBUTES, start=FIRST_ATTRIBUTE):
            self.horizontalHeaderItem(column).setToolTip(f"{TITLES[name]} (1-{RATING_MAX[name]}, LIDC scale)")
        self.horizontalHeaderItem(LOCATION).setToolTip(f"Side, lung zone and axial slice; {ZONE_NOTE}")
        self.horizontalHeaderItem(VOLUME).setToolTip("Volume of the nodule's 3D mask (segmented on Analyse)")
        self.horizontalHeaderItem(AXES).setToolTip(
            "Long and short axis (their mean, Lung-RADS v2022) on the slice where the long axis is greatest"
        )
        self.horizontalHeaderItem(SOLID).setToolTip("Mean diameter of the solid part (part-solid nodules)")
        self.horizontalHeaderItem(MALIGNANCY).setToolTip("Model malignancy probability +/- its uncertainty")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        # Only the columns with bars paint through Python: each cell painted so costs ~40 us, and the
        # whole table's repaint took ~4.5 ms of the window's turn while a study was shown.
        bars = _BarDelegate(self)
        for column in (DIAMETER, MALIGNANCY, *range(FIRST_ATTRIBUTE, LUNG_RADS)):
            self.setItemDelegateForColumn(column, bars)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.itemSelectionChanged.connect(self._selected)
        self._filling = False
        self.set_follow_up(None)

    def set_follow_up(self, reading, fill: bool = True) -> None:
        """The study's follow-up reading (``FollowUp``) or None: its columns shown or hidden; filled by
        the next ``fill`` alone with ``fill=False`` (its rows are about to be replaced)."""
        self.follow_up = reading
        if fill:
            fill_follow_up(self, FOLLOW_UP, reading)

    def fill(
        self,
        markers: list[NoduleMarker],
        results: dict[str, NoduleResult],
        labels: dict[str, NoduleLabel],
        locations: dict[str, str],
        rads: dict[str, LungRads],
        selected: str = "",
        sizes: dict[str, tuple] | None = None,
    ) -> None:
        """``sizes``: marker id -> (its NoduleMask, NoduleMeasurement, why it was not segmented), each
        None or "" when missing."""
        self._filling = True
        self.setSortingEnabled(False)
        self.setRowCount(len(markers))
        for row, marker in enumerate(markers):
            result, label = results.get(marker.id), labels.get(marker.id)
            cells = [self._rank(result), self._text(marker.name, marker.name)]
            cells[1].setData(Qt.ItemDataRole.UserRole, marker.id)
            where = self._text(locations.get(marker.id, ""), locations.get(marker.id, ""))
            x, y, z = marker.centre_mm
            where.setToolTip(f"centre ({x:.1f}, {y:.1f}, {z:.1f}) mm, patient LPS; {ZONE_NOTE}")
            cells.append(where)
            cells.append(
                self._number(f"{marker.diameter_mm:.1f} mm", marker.diameter_mm, marker.diameter_mm / 30)
            )
            cells.extend(self._sizes(*(sizes or {}).get(marker.id, (None, None, "", ""))))
            cells.append(self._malignancy(result, label))
            for name in ATTRIBUTES:
                cells.append(self._attribute(name, result, label))
            cells.append(self._rads(rads.get(marker.id)))
            for column, cell in enumerate(cells):
                self.setItem(row, column, cell)
        fill_follow_up(self, FOLLOW_UP, self.follow_up)
        self.setSortingEnabled(True)
        self.sortItems(0, Qt.SortOrder.AscendingOrder)
        self.resizeColumnsToContents()
        self._filling = False
        self.select(selected)

    def set_locations(self, locations: dict[str, str]) -> None:
        """The location column alone, from marker id -> text (the lungs are found after the rest is
        shown: refilling every cell for them took 5-10 ms of the window's turn)."""
        self.setSortingEnabled(False)  # its rows stay where they are; sorted again as they were
        for row in range(self.rowCount()):
            item = self.item(row, LOCATION)
            text = locations.get(self.marker_at(row), "")
            if item is not None and item.text() != text:
                item.setText(text)
                item.setData(SORT_KEY, text)
        self.setSortingEnabled(True)
        self.resizeColumnToContents(LOCATION)

    # -- cells ---------------------------------------------------------------------------------------
    def _text(self, text: str, key) -> QTableWidgetItem:
        item = _Item(text)
        item.setData(SORT_KEY, key)
        return item

    def _number(self, text: str, key: float, bar: float | None = None) -> QTableWidgetItem:
        item = self._text(text, key)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if bar is not None:
            item.setData(BAR, bar)
        return item

    def _sizes(self, mask, measured, error: str, unmeasured: str = "") -> list[QTableWidgetItem]:
        """Volume, axes and solid part; "failed" with its reason, or blank until segmented."""
        if measured is None:
            volume = self._text("failed" if error else "", None)
            volume.setToolTip(f"Not segmented: {error}" if error else "Segmented when you press Analyse")
            if mask is not None and not error:
                volume.setText(("edited" if mask.edited else "segmented") if unmeasured else "…")
                volume.setToolTip(
                    f"Segmented, not measured: {unmeasured}" if unmeasured else "Being measured"
                )
            return [volume, self._text("", None), self._text("", None)]
        edited = " ✎" if measured.edited or (mask is not None and mask.edited) else ""
        volume = self._number(f"{measured.volume_mm3:.0f} mm³{edited}", measured.volume_mm3)
        how = "edited by the reader" if edited else f"segmented ({measured.method})"
        volume.setToolTip(
            f"Mask {how}; effective diameter {measured.effective_diameter_mm:.1f} mm"
            + "".join(f"\n{w}" for w in measured.warnings)
        )
        axes = self._number(
            f"{measured.long_axis_mm:.1f} × {measured.short_axis_mm:.1f} ({measured.mean_diameter_mm:.1f})",
            measured.mean_diameter_mm,
        )
        axes.setToolTip(
            f"Long × short axis (mean) in mm, on {measured.plane} slice {measured.slice_index + 1}"
        )
        solid = measured.solid_diameter_mm
        solid_cell = self._number("" if solid is None else f"{solid:.1f} mm", solid)
        solid_cell.setToolTip(f"{measured.texture}; solid volume {measured.solid_volume_mm3:.0f} mm³")
        return [volume, axes, solid_cell]

    def _rank(self, result: NoduleResult | None) -> QTableWidgetItem:
        if result is None:
            item = self._text("-", None)
            item.setToolTip("Not analysed yet (press Analyse)")
            return item
        return self._number(str(result.rank), result.rank)

    def _malignancy(self, result: NoduleResult | None, label: NoduleLabel | None) -> QTableWidgetItem:
        if result is None:
            item = self._text("", None)
        else:
            item = self._number(_score_cell(result), result.malignancy, result.malignancy)
            item.setToolTip(_score_tip(result))
        if label is not None and label.malignancy is not None:
            _mark_reader(item, f"{item.text()}  reader {label.malignancy:g} ✓")
            words = meaning("malignancy", label.malignancy)
            item.setToolTip(f"Reader-confirmed malignancy {label.malignancy:g}: {words}\n{item.toolTip()}")
        return item

    def _attribute(
        self, name: str, result: NoduleResult | None, label: NoduleLabel | None
    ) -> QTableWidgetItem:
        top = RATING_MAX[name]
        model = result.attributes.get(name) if result is not None else None
        confirmed = label.attributes.get(name) if label is not None else None
        value = confirmed if confirmed is not None else model
        if value is None:
            return self._text("", None)
        item = self._number(f"{value:.1f}", value, (value - 1) / (top - 1))
        tooltip = describe(name, value)
        if confirmed is not None:
            _mark_reader(item, f"{confirmed:g} ✓")
            tooltip = f"Reader-confirmed: {tooltip}" + (f"\nModel: {describe(name, model)}" if model else "")
        else:
            tooltip = f"Model: {tooltip}"
        item.setToolTip(tooltip)
        return item

    def _rads(self, rads: LungRads | None) -> QTableWidgetItem:
        if rads is None:
            return self._text("", None)
        item = self._text(rads.category, RADS_ORDER.get(rads.category, 0))
        item.setToolTip(f"{rads.rule}\nFollow-up: {rads.follow_up}\n{rads.basis}")
        return item

    # -- selection -----------------------------------------------------------------------------------
    def marker_at(self, row: int) -> str:
        item = self.item(row, 1)
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def select(self, marker_id: str) -> None:
        self._filling = True
        self.clearSelection()
        for row in range(self.rowCount()):
            if self.marker_at(row) == marker_id:
                self.selectRow(row)
                self.scrollToItem(self.item(row, 0))
        self._filling = False

    def _selected(self) -> None:
        if self._filling:
            return
        rows = self.selectionModel().selectedRows()
        if rows:
            self.marker_selected.emit(self.marker_at(rows[0].row()))


def _mark_reader(item: QTableWidgetItem, text: str) -> None:
    item.setText(text)
    font = QFont(item.font())
    font.setBold(True)
    item.setFont(font)
    item.setBackground(QBrush(READER))


def _score_cell(result: NoduleResult) -> str:
    """The malignancy cell: ``0.34 (0.22-0.47)``, ``?`` after it when the interval crosses the decision
    band, ``⚠ out of distribution`` instead when the model was not trained for this nodule."""
    if result.warnings:
        return "⚠ out of distribution"
    text = result.score_text.removeprefix("p = ")
    return text + ("  ?" if result.indeterminate else "")


def _score_tip(result: NoduleResult) -> str:
    lines = [
        f"Model: malignancy {result.score_text} (calibrated; the interval is its range over eight "
        "orientations, not a confidence interval with a guaranteed coverage); spread over slices and "
        f"mirror images {result.uncertainty:.2f}"
    ]
    if result.indeterminate:
        lines.append("? indeterminate: the interval crosses the 10 % / 70 % decision band")
    if result.warnings:
        lines.append(f"⚠ {result.warning_text}: the score is not reliable")
    return "\n".join(lines)
