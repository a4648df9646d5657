"""The comparison page of the printable report (``core.report.pdf``), with a follow-up reading: one
row per nodule of the reading, the prior's size beside the current one, the change, the volume
doubling time, the trend and Lung-RADS v2022 with priors (``NoduleReport.prior``,
``core.followup.compare``). A report without a follow-up reading has no such page."""

from __future__ import annotations

from core.report.content import NoduleReport
from core.report.pdf_parts import BODY_BOTTOM, CONTENT_W, FILL_BAND, MARGIN, MUTED, PAGE_W, TEXT, ReportCanvas

COLUMNS = (
    ("Marker", 20.0, "L"),
    ("Prior", 16.0, "L"),
    ("Prior size", 30.0, "R"),
    ("Current size", 30.0, "R"),
    ("Change", 22.0, "R"),
    ("VDT", 20.0, "R"),
    ("Trend", CONTENT_W - 156.0, "L"),
    ("Lung-RADS", 18.0, "C"),
)
NOTE = (
    "Sizes: volume and mean diameter measured on each study's 3D mask. Change: of the volume (of the "
    "mean diameter where a volume is missing). VDT: volume doubling time, t x ln 2 / ln(V2/V1), only "
    "for a nodule growing beyond measurement error. Lung-RADS v2022 with priors: growth is a mean "
    "diameter up by more than 1.5 mm within 12 months. Prior: the prior study's marker paired with it."
)


class FollowUpPage(ReportCanvas):
    """``follow_up_page`` draws the comparison table on a page of its own (more pages as needed)."""

    def follow_up_page(self) -> None:
        nodules = [n for n in self.report.nodules if n.follow_up_status]
        if not nodules:
            return
        self.add_page()
        y = MARGIN + 2
        self.font(12, "B")
        self.put(MARGIN, y, CONTENT_W, 7, f"Comparison with the prior study ({len(nodules)} nodules)")
        y = self._header(y + 9)
        row = 5.0
        for i, nodule in enumerate(nodules):
            if y + row > BODY_BOTTOM - 14:
                self.add_page()
                y = self._header(MARGIN + 2)
            if i % 2:
                self.set_fill_color(*FILL_BAND)
                self.rect(MARGIN, y, CONTENT_W, row, style="F")
            x = MARGIN
            for column, ((_, width, align), value) in enumerate(
                zip(COLUMNS, comparison_row(nodule), strict=True)
            ):
                self.font(8.5, "B" if column in (0, 7) else "")
                self.put(x, y, width, row, value, align=align)
                x += width
            y += row
        self.set_line_width(0.3)
        self.line(MARGIN, y, PAGE_W - MARGIN, y)
        self.set_text_color(*MUTED)
        self.para(MARGIN, y + 1.5, CONTENT_W, NOTE, 7.5, max_lines=4)
        self.set_text_color(*TEXT)

    def _header(self, y: float) -> float:
        return self._table_header(COLUMNS, y)


def comparison_row(nodule: NoduleReport) -> list[str]:
    """The cells of one nodule's row (see ``COLUMNS``)."""
    marker, pair = nodule.marker, nodule.prior
    g = pair.growth if pair is not None else None
    rads = nodule.lung_rads.category if nodule.lung_rads else "-"
    name = marker.name or marker.id
    if g is None:
        measured = nodule.measurement
        current = _size(measured.volume_mm3, measured.mean_diameter_mm) if measured else "-"
        why = "new" if pair is None else "not measured"
        return [name, pair.prior_id if pair else "-", "-", current, "-", "-", why, rads]
    if g.volume_change_percent is not None:
        change = f"{g.volume_change_percent:+.0f} %"
    else:
        change = f"{g.diameter_change_mm:+.1f} mm"
    return [
        name,
        pair.prior_id,
        _size(g.prior_volume_mm3, g.prior_mean_diameter_mm),
        _size(g.current_volume_mm3, g.current_mean_diameter_mm),
        change,
        g.vdt_text,
        g.trend,
        rads,
    ]


def _size(volume: float | None, diameter: float) -> str:
    return (f"{volume:.0f} mm³, " if volume is not None else "") + f"{diameter:.1f} mm"
