"""The selected nodule's follow-up under the prior view: its pair's numbers and a small plot of its
volume over time on a log axis (the two time points of the reading, with the VDT).

A reading holds two studies (``FollowUp``: prior and current), so the plot has two points; a new
nodule has one, a nodule marked after the reading none (the widget says so).
"""

from __future__ import annotations

import datetime as dt
import math

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.followup.compare import FollowUp


class NoduleHistory(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel(wordWrap=True)
        self.text.setStyleSheet("color: #ddd; background: #303030; padding: 4px;")
        self.plot = pg.PlotWidget(background="#202020")
        self.plot.setLogMode(y=True)
        self.plot.setLabel("left", "volume", units="mm³")
        self.plot.setLabel("bottom", "days since the prior")
        self.plot.setMaximumHeight(160)
        self.plot.setMouseEnabled(False, False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.text)
        layout.addWidget(self.plot)
        self.points: list[tuple[float, float]] = []  # (days since the prior, volume mm³) plotted

    def show_nodule(self, reading: FollowUp | None, marker_id: str, name: str = "") -> None:
        self.plot.clear()
        self.points = []
        if reading is None or not marker_id:
            self.text.setText("Select a nodule to see its follow-up")
            return
        label = name or marker_id
        days = reading.interval_days
        pair = next((p for p in reading.pairs if p.current_id == marker_id), None)
        new = next((n for n in reading.new if n.current_id == marker_id), None)
        if pair is not None and pair.growth is not None:
            g = pair.growth
            self.text.setText(
                f"{label}: {_date(reading.prior.date)} -> {_date(reading.current.date)} ({days} days); mean "
                f"diameter {g.prior_mean_diameter_mm:.1f} -> {g.current_mean_diameter_mm:.1f} mm"
                + (
                    f"; volume {g.prior_volume_mm3:.0f} -> {g.current_volume_mm3:.0f} mm³ "
                    f"({g.volume_change_percent:+.0f} %)"
                    if g.volume_change_percent is not None
                    else ""
                )
                + f"; {g.trend}; VDT {g.vdt_text}"
                + (f"; Lung-RADS {pair.lung_rads.category}" if pair.lung_rads else "")
            )
            if g.prior_volume_mm3 and g.current_volume_mm3:
                self.points = [(0.0, g.prior_volume_mm3), (float(days), g.current_volume_mm3)]
        elif pair is not None:
            self.text.setText(f"{label}: paired with the prior's {pair.prior_id}, not measured: {pair.error}")
        elif new is not None:
            size = f", {new.size.volume_mm3:.0f} mm³" if new.size else ""
            self.text.setText(f"{label}: new since {_date(reading.prior.date)}{size}")
            if new.size and new.size.volume_mm3 > 0:
                self.points = [(float(days), new.size.volume_mm3)]
        else:
            self.text.setText(f"{label}: marked after the follow-up reading (press P to compare again)")
        if self.points:
            xs = [x for x, _ in self.points]
            ys = [y for _, y in self.points]
            self.plot.plot(xs, ys, pen=pg.mkPen("#f6d365", width=2), symbol="o", symbolBrush="#f6d365")
            low, high = min(ys), max(ys)
            self.plot.setYRange(math.log10(low) - 0.3, math.log10(high) + 0.3, padding=0)
            self.plot.setXRange(-0.05 * max(days, 1), 1.05 * max(days, 1), padding=0)


def _date(value: dt.date) -> str:
    return value.isoformat()
