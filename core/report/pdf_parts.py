"""The drawing pieces of the printable report (``core.report.pdf``): page geometry and greys, the
text helpers (fit, wrap, Latin-1 fallback for the core font), the ranked table of nodules, the pictures
with orientation letters and a scale bar, the malignancy gauge and the attribute chart.

``ReportCanvas`` is an A4 ``FPDF`` in mm holding them; ``core.report.pdf`` lays its pages out with them.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np
from fpdf import FPDF
from PIL import Image

from core.imaging.mpr import plane
from core.nodule.meanings import TITLES, meaning
from core.nodule.ratings import ATTRIBUTES, RATING_MAX
from core.report.content import NoduleReport, StudyReport
from core.volume import CTVolume

PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
MARGIN = 14.0
CONTENT_W = PAGE_W - 2 * MARGIN
FOOTER_H = 17.0  # from the bottom edge: the footer's band
BODY_BOTTOM = PAGE_H - FOOTER_H - 2.0
TEXT = (20, 20, 20)  # near black
MUTED = (70, 70, 70)  # still dark enough to print
FILL_HEADER = (205, 205, 205)
FILL_BAND = (238, 238, 238)
FILL_BAR = (165, 165, 165)

_ASCII = {  # stand-ins the core font (Latin-1) can write
    "≥": ">=",
    "≤": "<=",
    "→": "->",
    "←": "<-",
    "–": "-",
    "—": "-",
    "−": "-",
    "…": "...",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "≈": "~",
    "×": "x",
}


class ReportCanvas(FPDF):
    """The page pieces; a subclass sets ``report``, ``unicode`` (DejaVu loaded) and ``family`` (its name)."""

    report: StudyReport
    unicode: bool
    family: str

    # ---- text helpers -------------------------------------------------------------------------------

    def t(self, text: object) -> str:
        """``text`` as the current font can write it."""
        text = str(text)
        if self.unicode:
            return text
        return "".join(_latin1(ch) for ch in text)

    def font(self, size: float, style: str = "") -> None:
        self.set_font(self.family, style, size)

    def fit(self, text: object, width: float) -> str:
        """``text`` cut (with "...") to fit ``width`` mm in the current font."""
        text = self.t(text)
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(text + "...") > width:
            text = text[:-1]
        return text.rstrip() + "..."

    def put(self, x: float, y: float, w: float, h: float, text: object, align: str = "L", **kwargs) -> None:
        """One line of text in a box, cut to fit."""
        self.set_xy(x, y)
        self.cell(w, h, self.fit(text, w - 2 * self.c_margin), align=align, **kwargs)

    def para(
        self, x: float, y: float, w: float, text: object, size: float, style: str = "", line: float = 0.0,
        max_lines: int = 99,
    ) -> float:  # fmt: skip
        """A wrapped paragraph of at most ``max_lines`` (the last cut with "..."); returns the y below."""
        self.font(size, style)
        line = line or size * 0.42
        self.set_xy(x, y)
        lines = self.multi_cell(w, line, self.t(text), dry_run=True, output="LINES")
        if len(lines) > max_lines:
            lines = [*lines[: max_lines - 1], self.fit(lines[max_lines - 1] + " ...", w - 2 * self.c_margin)]
        for i, part in enumerate(lines):
            self.set_xy(x, y + i * line)
            self.cell(w, line, part)
        return y + len(lines) * line

    # ---- the table of nodules (page 1) --------------------------------------------------------------

    def nodule_table(self, y: float) -> None:
        report = self.report
        analysed = sum(1 for n in report.nodules if n.result is not None)
        self.font(10, "B")
        self.put(
            MARGIN, y, CONTENT_W, 6, f"Nodules ranked by the model's malignancy score ({len(report.nodules)})"
        )
        y += 6.5
        if not report.nodules:
            self.para(MARGIN, y, CONTENT_W, "No nodule markers were placed on this study.", 9)
            return
        columns = [
            ("Rank", 10.0, "C"),
            ("Marker", 20.0, "L"),
            ("Location", 40.0, "L"),
            ("Diameter", 16.0, "R"),
            ("Malignancy", 29.0, "R"),
            ("Lung-RADS", 19.0, "C"),
            ("Reader-confirmed", CONTENT_W - 134.0, "L"),
        ]
        row = 5.0
        y = self._table_header(columns, y)
        for i, nodule in enumerate(report.nodules):
            if y + row > BODY_BOTTOM - 8:
                self.add_page()
                y = self._table_header(columns, MARGIN + 2)
            values = _table_row(nodule, analysed)
            if i % 2:
                self.set_fill_color(*FILL_BAND)
                self.rect(MARGIN, y, CONTENT_W, row, style="F")
            x = MARGIN
            for column, ((_, width, align), value) in enumerate(zip(columns, values, strict=True)):
                self.font(8.5, "B" if column in (1, 5) else "")  # marker and category stand out
                self.put(x, y, width, row, value, align=align)
                x += width
            y += row
        self.set_line_width(0.3)
        self.line(MARGIN, y, PAGE_W - MARGIN, y)
        note = (
            "Malignancy: the model's calibrated probability of malignancy and its range over eight "
            "orientations ('?': it crosses the 10 % / 70 % decision band; 'out of distribution': no "
            "reliable score, see its page). Diameter: the reader's marker. Lung-RADS: estimated from the "
            "model's texture guess and the marker diameter (reader-confirmed ratings take precedence). Each "
            "nodule has its own page below, in this order."
        )
        if y + 12 <= BODY_BOTTOM:
            self.set_text_color(*MUTED)
            self.para(MARGIN, y + 1.5, CONTENT_W, note, 7.5, max_lines=4)
            self.set_text_color(*TEXT)

    def _table_header(self, columns, y: float) -> float:
        self.set_fill_color(*FILL_HEADER)
        self.rect(MARGIN, y, CONTENT_W, 6, style="F")
        self.set_line_width(0.3)
        self.line(MARGIN, y + 6, PAGE_W - MARGIN, y + 6)
        x = MARGIN
        self.font(7.5, "B")
        for title, width, align in columns:
            self.put(x, y, width, 6, title, align=align)
            x += width
        return y + 6

    # ---- pictures, gauge and chart (nodule pages) ---------------------------------------------------

    def picture(self, array: np.ndarray, x: float, y: float, w: float, h: float) -> None:
        array = np.asarray(array, np.uint8)
        if (
            array.ndim == 3
            and np.array_equal(array[..., 0], array[..., 1])
            and np.array_equal(array[..., 0], array[..., 2])
        ):
            array = array[..., 0]  # grey: a third of the bytes
        self.image(Image.fromarray(np.ascontiguousarray(array)), x, y, w, h)
        self.set_line_width(0.2)
        self.rect(x, y, w, h, style="D")

    def orientation_letters(self, volume: CTVolume, view: str, x: float, y: float, side: float) -> None:
        letters = plane(volume, view).letters
        size = 3.6
        self.font(7, "B")
        self.set_fill_color(255, 255, 255)
        self.set_line_width(0.15)
        spots = {
            "left": (x + 0.6, y + side / 2 - size / 2),
            "right": (x + side - size - 0.6, y + side / 2 - size / 2),
            "top": (x + side / 2 - size / 2, y + 0.6),
            "bottom": (x + side / 2 - size / 2, y + side - size - 0.6),
        }
        for edge, (lx, ly) in spots.items():
            self.set_xy(lx, ly)
            self.cell(size, size, self.t(letters[edge]), border=1, align="C", fill=True)

    def scale_bar(self, x: float, y: float, width: float, crop_mm: float, what: str) -> None:
        """A 10 mm bar to the image's scale and a caption, under an image ``width`` mm wide."""
        length = width * 10.0 / crop_mm
        self.set_line_width(0.6)
        self.line(x, y + 1.6, x + length, y + 1.6)
        self.set_line_width(0.3)
        self.line(x, y + 0.6, x, y + 2.6)
        self.line(x + length, y + 0.6, x + length, y + 2.6)
        self.font(7)
        self.put(x + length + 1, y, 11, 3.2, "10 mm")
        self.set_text_color(*MUTED)
        self.para(
            x + length + 11, y + 0.2, width - length - 11,
            f"{what}; lung window W1500/L-600; {crop_mm:.0f} mm field; ring = marker", 6.5, max_lines=2,
        )  # fmt: skip
        self.set_text_color(*TEXT)

    def gauge(self, x: float, y: float, w: float, p: float, u: float) -> None:
        """0..100 % bar, grey to ``p``, black error bar ``p`` ± ``u`` with end caps."""
        h = 4.0
        self.set_fill_color(*FILL_BAR)
        self.rect(x, y, w * min(max(p, 0.0), 1.0), h, style="F")
        self.set_line_width(0.25)
        self.rect(x, y, w, h, style="D")
        self.font(6)
        for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
            tx = x + w * tick
            self.line(tx, y + h, tx, y + h + 1)
            self.put(tx - 6, y + h + 0.9, 12, 2.6, f"{100 * tick:.0f}%", align="C")
        lo, hi = x + w * max(p - u, 0.0), x + w * min(p + u, 1.0)
        mid = y + h / 2
        self.set_line_width(0.5)
        self.line(lo, mid, hi, mid)
        self.line(lo, mid - 1.3, lo, mid + 1.3)
        self.line(hi, mid - 1.3, hi, mid + 1.3)
        self.line(x + w * p, y - 0.8, x + w * p, y + h + 0.8)

    def attribute_chart(self, nodule: NoduleReport, y: float) -> None:
        """Eight bars against their scale maxima, with values and the LIDC words; reader values as
        black diamonds, labelled."""
        result, reader = nodule.result, nodule.reader
        model = dict(result.attributes) if result else {}
        confirmed = dict(reader.attributes) if reader else {}
        self.font(10, "B")
        self.put(MARGIN, y, CONTENT_W, 5, "Attributes (LIDC rating scales, 1 to the scale maximum)")
        y += 5.5
        room = BODY_BOTTOM - y - 5
        row = min(7.6, room / len(ATTRIBUTES))
        title_w, track_w, value_w = 33.0, 52.0, 16.0
        words_x = MARGIN + title_w + track_w + value_w + 3
        words_w = PAGE_W - MARGIN - words_x
        for i, name in enumerate(ATTRIBUTES):
            yy = y + i * row
            top = RATING_MAX[name]
            if i % 2 == 0:
                self.set_fill_color(*FILL_BAND)
                self.rect(MARGIN, yy, CONTENT_W, row, style="F")
            self.font(8.5, "B")
            self.put(MARGIN, yy, title_w, row, TITLES[name])
            tx, ty, th = MARGIN + title_w, yy + row / 2 - 1.8, 3.6
            value = model.get(name)
            if value is not None and math.isfinite(value):
                fraction = (min(max(value, 1.0), top) - 1.0) / (top - 1.0)
                self.set_fill_color(*FILL_BAR)
                self.rect(tx, ty, max(track_w * fraction, 0.4), th, style="F")
            self.set_line_width(0.25)
            self.rect(tx, ty, track_w, th, style="D")
            self.set_line_width(0.15)
            for tick in range(2, top):
                x_tick = tx + track_w * (tick - 1) / (top - 1)
                self.line(x_tick, ty + th - 1.0, x_tick, ty + th)
            mine = confirmed.get(name)
            if mine is not None:
                cx = tx + track_w * (min(max(mine, 1.0), top) - 1.0) / (top - 1.0)
                cy = ty + th / 2
                self.set_fill_color(*TEXT)
                self.polygon([(cx, cy - 2.3), (cx + 1.6, cy), (cx, cy + 2.3), (cx - 1.6, cy)], style="FD")
            self.font(8.5)
            shown = f"{value:.1f} of {top}" if value is not None else f"- of {top}"
            self.put(tx + track_w + 1, yy, value_w, row, shown, align="R")
            self.font(7.5)
            words = f"model: {meaning(name, value)}" if value is not None else "model: not scored"
            if mine is None:
                self.font(7.5)
                lines = len(self.multi_cell(words_w, 3.2, self.t(words), dry_run=True, output="LINES"))
                top_y = yy + row / 2 - 1.6 * min(lines, 2)
                self.para(words_x, top_y, words_w, words, 7.5, line=3.2, max_lines=2)
            else:
                self.put(words_x, yy + row / 2 - 3.3, words_w, 3.3, words)
                self.font(7.5, "B")
                self.put(
                    words_x, yy + row / 2, words_w, 3.3, f"reader-confirmed: {mine:g} ({meaning(name, mine)})"
                )
        y += len(ATTRIBUTES) * row + 1.0
        self.set_fill_color(*FILL_BAR)
        self.set_line_width(0.2)
        self.rect(MARGIN, y + 0.7, 6, 2.6, style="FD")
        self.font(7)
        self.put(MARGIN + 7, y, 34, 4, "model score")
        self.set_fill_color(*TEXT)
        cx, cy = MARGIN + 44, y + 2
        self.polygon([(cx, cy - 1.8), (cx + 1.3, cy), (cx, cy + 1.8), (cx - 1.3, cy)], style="FD")
        self.put(MARGIN + 46, y, 60, 4, "reader-confirmed value")
        self.set_text_color(*MUTED)
        self.put(
            MARGIN + 90,
            y,
            CONTENT_W - 90,
            4,
            "Internal structure, calcification: categories; read the words.",
        )
        self.set_text_color(*TEXT)


def _table_row(nodule: NoduleReport, analysed: int) -> list[str]:
    marker, result, reader = nodule.marker, nodule.result, nodule.reader
    if result is not None:
        malignancy = f"{100 * result.malignancy:.0f}%"
        if result.interval is not None:
            low, high = result.interval
            malignancy += f" ({100 * low:.0f}-{100 * high:.0f}%)" + (" ?" if result.indeterminate else "")
        if result.warnings:
            malignancy = "out of distribution"
        rank = str(nodule.rank)
    else:
        malignancy, rank = "not analysed", "-"
    if reader is None:
        confirmed = "no"
    else:
        parts = [f"malignancy {reader.malignancy:g}"] if reader.malignancy is not None else []
        if reader.attributes:
            count = len(reader.attributes)
            parts.append(f"{count} rating{'s' if count != 1 else ''}")
        confirmed = "yes" + (f": {', '.join(parts)}" if parts else "")
    return [
        rank,
        marker.name or marker.id,
        nodule.location or f"slice {nodule.slice_number}",
        f"{marker.diameter_mm:.1f} mm",
        malignancy,
        nodule.lung_rads.category if nodule.lung_rads else "-",
        confirmed,
    ]


def _latin1(ch: str) -> str:
    """One character as Latin-1 text: itself, a usual ASCII spelling, its letter without accents, or "?"."""
    if ord(ch) < 256:
        return ch
    if ch in _ASCII:
        return _ASCII[ch]
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return base if base and all(ord(c) < 256 for c in base) else "?"
