"""The comparison page of the printable report (``core.report.pdf``), with a follow-up reading: one
row per nodule of the reading, the prior's size beside the current one, the change, the volume
doubling time, the trend and Lung-RADS v2022 with priors (``NoduleReport.prior``,
``core.followup.compare``). A report without a follow-up reading has no such page.

With the prior study's images (``PriorImages``: its volume and the follow-up reading, for the
registration and both dates) the table is followed by each paired nodule's key images: the prior's
(``core.report.images.prior_view_image``: the current patch cut from the prior through the
registration) beside the current one, at the same mm per pixel and window, each with its study date
under it (an anonymised report says only "prior" and "current", with the interval)."""

from __future__ import annotations

from dataclasses import dataclass

from core.followup.compare import FollowUp
from core.followup.growth import Repeatability
from core.measure.paired import METHOD as PAIRED
from core.report import images
from core.report.content import NoduleReport
from core.report.pdf_parts import BODY_BOTTOM, CONTENT_W, FILL_BAND, MARGIN, MUTED, PAGE_W, TEXT, ReportCanvas
from core.volume import CTVolume

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
    "Sizes: volume and mean diameter measured on each study's 3D mask; a prior volume marked * was "
    "measured together with the current one (the current's volume less the change read from both "
    "images over one region with one tissue level). Change: of the volume (of the "
    "mean diameter where a volume is missing). VDT: volume doubling time, t x ln 2 / ln(V2/V1), only "
    "for a nodule growing beyond measurement error. Lung-RADS v2022 with priors: growth is a mean "
    "diameter up by more than 1.5 mm within 12 months. Prior: the prior study's marker paired with it. "
    f"Trend 'within error': a change within measurement error, under {Repeatability().text}, the 95 % "
    "limit of the same nodule measured twice (README, Measuring nodules)."
)
SHORT_TRENDS = {"change within measurement error": "within error"}  # the column's width (see NOTE)
PAIR_SIDE = 43.0  # mm: each image of a prior/current pair; two pairs side by side
PAIR_GAP = 3.0  # mm between the prior and the current image
PAIR_H = 5.0 + PAIR_SIDE + 9.0  # title, images, date captions and space


@dataclass(frozen=True)
class PriorImages:
    """What the comparison page's key images are cut from: the prior study's volume and the follow-up
    reading (its registration, current -> prior, and both dates)."""

    volume: CTVolume
    reading: FollowUp


class FollowUpPage(ReportCanvas):
    """``follow_up_page`` draws the comparison table on a page of its own (more pages as needed), then
    each paired nodule's prior and current key images when ``prior`` is given."""

    def follow_up_page(self, volume: CTVolume | None = None, prior: PriorImages | None = None) -> None:
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
        y = self.para(MARGIN, y + 1.5, CONTENT_W, NOTE, 7.5, max_lines=8)
        self.set_text_color(*TEXT)
        paired = [n for n in nodules if n.prior is not None]
        if volume is not None and prior is not None and paired:
            self._key_images(volume, prior, paired, y + 4)

    def _key_images(
        self, volume: CTVolume, prior: PriorImages, nodules: list[NoduleReport], y: float
    ) -> None:
        """Two pairs (prior | current) per row, a heading first; more pages as needed."""
        reading = prior.reading
        if self.report.anonymised:
            dates = ("Prior", f"Current, {reading.interval_days} days later")
        else:
            dates = (f"Prior {reading.prior.date.isoformat()}", f"Current {reading.current.date.isoformat()}")
        block_w = 2 * PAIR_SIDE + PAIR_GAP
        space = CONTENT_W - 2 * block_w
        if y + 14 + PAIR_H > BODY_BOTTOM:  # the heading and a first row
            self.add_page()
            y = MARGIN + 2
        y = self._images_heading(y)
        for k, nodule in enumerate(nodules):
            column = k % 2
            if column == 0 and y + PAIR_H > BODY_BOTTOM:
                self.add_page()
                y = MARGIN + 2
            self._pair(volume, prior, nodule, dates, MARGIN + column * (block_w + space), y)
            if column == 1:
                y += PAIR_H

    def _images_heading(self, y: float) -> float:
        self.font(10, "B")
        self.put(MARGIN, y, CONTENT_W, 5, "Key images: prior (left) and current (right) of each pair")
        self.set_text_color(*MUTED)
        y = self.para(
            MARGIN, y + 5.2, CONTENT_W,
            f"The current axial slice through the nodule and the same patch of the prior, carried there by "
            f"the registration; both {images.TRIPTYCH_CROP_MM:.0f} mm wide, lung window W1500/L-600, "
            "the ring the current marker's size and place.", 7.5, max_lines=2,
        )  # fmt: skip
        self.set_text_color(*TEXT)
        return y + 2

    def _pair(self, volume, prior: PriorImages, nodule: NoduleReport, dates, x: float, y: float) -> None:
        marker = nodule.marker
        self.font(8.5, "B")
        self.put(
            x,
            y,
            2 * PAIR_SIDE + PAIR_GAP,
            4.5,
            f"{marker.name or marker.id}  (prior {nodule.prior.prior_id})",
        )
        pictures = (
            images.prior_view_image(
                prior.volume, volume, prior.reading.registration, marker.centre_mm, marker.diameter_mm
            ),
            images.view_image(volume, marker.centre_mm, marker.diameter_mm),
        )
        for k, (picture, date) in enumerate(zip(pictures, dates, strict=True)):
            left = x + k * (PAIR_SIDE + PAIR_GAP)
            self.picture(picture, left, y + 5, PAIR_SIDE, PAIR_SIDE)
            self.orientation_letters(volume, "axial", left, y + 5, PAIR_SIDE)  # both in the current's
            self.font(7.5)
            self.put(left, y + 5.5 + PAIR_SIDE, PAIR_SIDE, 3.5, date, align="C")

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
        _size(g.prior_volume_mm3, g.prior_mean_diameter_mm, g.volume_method == PAIRED),
        _size(g.current_volume_mm3, g.current_mean_diameter_mm),
        change,
        g.vdt_text,
        SHORT_TRENDS.get(g.trend, g.trend),
        rads,
    ]


def _size(volume: float | None, diameter: float, together: bool = False) -> str:
    mark = "*" if together else ""
    return (f"{volume:.0f}{mark} mm³, " if volume is not None else "") + f"{diameter:.1f} mm"
