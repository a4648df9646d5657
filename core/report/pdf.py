"""The printable report of one study (A4 PDF, fpdf2, no Qt), from ``core.report.content``.

Page 1 (more only when the table of nodules runs over): who and what was read (patient name, ID,
birth date and sex, or "anonymised"; study date and description; series; reader), the study's
Lung-RADS category with the rule that fired and its follow-up, and the nodules ranked by the model's
malignancy score. Then one page per nodule, in rank order: the key axial image with the marker circle,
the axial/coronal/sagittal triptych (with the Grad-CAM map as a fourth panel when given), the model's
malignancy with its uncertainty, the Lung-RADS category with its rule, basis and follow-up, and the
eight attribute scores as bars against their scale maxima with the LIDC words for each. Values the
reader confirmed are drawn and labelled as such. Every page's footer names the model (name, version,
training data) and carries the disclaimer; every page after the first repeats who the report is about.

Printed in black and white it loses nothing: dark text, grey fills, and nothing told by colour alone
(the marker ring is a light and a dark line, reader values are black diamonds and labelled; only the
optional Grad-CAM panel is in colour, and it says so). Text is DejaVu Sans when the system has it (any
script in a patient's name), otherwise the PDF core font Helvetica, which holds Latin-1 only: other
characters are then spelt in ASCII where there is a usual spelling or lose their accents ("Ō" -> "O"),
and the rest (a Chinese name, say) become "?".
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image

from core.atomic import atomic_write_bytes
from core.lidc.meanings import TITLES, meaning
from core.lidc.records import ATTRIBUTES, RATING_MAX
from core.mpr import plane
from core.report import images
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
TITLE = "Lung nodule report"
PRODUCER = "MTMR Reader"
EXPLANATION_CAPTION = "Grad-CAM (colour): where the model looked, not why"

# DejaVu Sans (regular, bold): Debian/Ubuntu, Fedora, Arch, and a user's own copy.
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / "Library/Fonts",
)
_ASCII = {
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
_SEX = {"M": "male", "F": "female", "O": "other"}


def write_pdf(
    report: StudyReport,
    volume: CTVolume,
    path: str | Path,
    explanation_images: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write the report of ``report`` as an A4 PDF to ``path`` (atomically) and return the path.

    ``volume`` is the study's CT (the pictures come from it). ``explanation_images`` maps a marker id
    to a uint8 picture (grey ``(h, w)`` or RGB ``(h, w, 3)``, e.g. ``core.explain.overlay_rgb``) shown
    as a fourth panel on that nodule's page. The page count is one per nodule plus the summary (one
    page up to about 34 nodules; the table carries on over further pages after that).
    """
    path = Path(path)
    explanation_images = dict(explanation_images or {})
    for marker_id, picture in explanation_images.items():
        _check_picture(marker_id, picture)
    pdf = _ReportPDF(report)
    pdf.summary_page()
    for nodule in report.nodules:
        pdf.nodule_page(volume, nodule, explanation_images.get(nodule.marker.id))
    atomic_write_bytes(path, bytes(pdf.output()))
    return path


class _ReportPDF(FPDF):
    def __init__(self, report: StudyReport) -> None:
        super().__init__("P", "mm", "A4")
        self.report = report
        self.unicode = _add_fonts(self)
        self.family = "DejaVu" if self.unicode else "Helvetica"
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(False)
        self.alias_nb_pages()
        self.set_title(TITLE)  # metadata never names the patient
        self.set_subject("Lung nodules on chest CT: model scores and Lung-RADS estimates (research use)")
        self.set_creator(PRODUCER)
        self.set_producer(PRODUCER)
        self.set_lang("en")
        self.set_creation_date(_created(report.created))
        self.set_text_color(*TEXT)
        self.set_draw_color(*TEXT)

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

    # ---- running header and footer ------------------------------------------------------------------

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.font(7.5)
        self.set_text_color(*MUTED)
        study = self.report.study
        who = "Patient: anonymised" if self.report.anonymised else f"Patient: {_patient_line(self.report)}"
        date = _date(study.get("study_date", ""))
        self.put(MARGIN, 7.0, CONTENT_W * 0.72, 4.0, f"{who}   Study date: {date or 'not given'}")
        self.put(MARGIN + CONTENT_W * 0.72, 7.0, CONTENT_W * 0.28, 4.0, TITLE, align="R")
        self.set_line_width(0.2)
        self.line(MARGIN, 11.5, PAGE_W - MARGIN, 11.5)
        self.set_text_color(*TEXT)

    def footer(self) -> None:
        top = PAGE_H - FOOTER_H
        self.set_line_width(0.2)
        self.set_draw_color(*TEXT)
        self.line(MARGIN, top, PAGE_W - MARGIN, top)
        model = self.report.model
        digest = f"; weights sha256 {model.weights_sha256[:12]}" if model.weights_sha256 else ""
        self.set_text_color(*MUTED)
        y = self.para(MARGIN, top + 1.2, CONTENT_W - 24, f"Model: {model.text}{digest}", 7, max_lines=2)
        self.set_text_color(*TEXT)
        self.para(MARGIN, y + 0.3, CONTENT_W - 24, self.report.disclaimer, 7, "B", max_lines=2)
        self.font(7.5)
        self.set_xy(PAGE_W - MARGIN - 24, top + 1.2)
        self.cell(24, 3.2, f"Page {self.page_no()} of {{nb}}", align="R")

    # ---- page 1 -------------------------------------------------------------------------------------

    def summary_page(self) -> None:
        report = self.report
        self.add_page()
        self.font(17, "B")
        self.set_xy(MARGIN, MARGIN - 2)
        self.cell(110, 9, TITLE)
        self.font(8)
        self.set_text_color(*MUTED)
        created = _created(report.created).strftime("%Y-%m-%d %H:%M UTC")
        self.put(MARGIN + 110, MARGIN - 1, CONTENT_W - 110, 4, f"{PRODUCER}, created {created}", align="R")
        self.put(MARGIN + 110, MARGIN + 3, CONTENT_W - 110, 4, "Research use only", align="R")
        self.set_text_color(*TEXT)
        y = self.identity_block(MARGIN + 10)
        y = self.study_lung_rads_block(y + 4)
        self.nodule_table(y + 5)

    def identity_block(self, y: float) -> float:
        report, study = self.report, self.report.study
        if report.anonymised:
            left = [("Patient", "anonymised"), ("Patient ID", "anonymised"), ("Birth date", "anonymised")]
            left.append(("Sex", "anonymised"))
        else:
            patient = report.patient
            sex = str(patient.get("sex", "") or "")
            left = [
                ("Patient", _person_name(patient.get("name", "")) or "not given"),
                ("Patient ID", patient.get("id", "") or "not given"),
                ("Birth date", _date(patient.get("birth_date", "")) or "not given"),
                ("Sex", f"{sex} ({_SEX[sex.upper()]})" if sex.upper() in _SEX else sex or "not given"),
            ]
        series = " ".join(
            part
            for part in (
                f"{study.get('modality') or 'CT'}",
                f"series {study['series_number']}" if study.get("series_number") not in (None, "") else "",
                f"- {study['series_description']}" if study.get("series_description") else "",
            )
            if part
        )
        right = [
            ("Study date", _date(study.get("study_date", "")) or "not given"),
            ("Study", study.get("study_description", "") or "not given"),
            ("Series", series),
            ("Reader", report.reader_name or "not given"),
        ]
        row, label_w = 5.2, 21.0
        columns = ((MARGIN, CONTENT_W * 0.42, left), (MARGIN + CONTENT_W * 0.42, CONTENT_W * 0.58, right))
        heights = []
        for _, width, pairs in columns:  # a long study description may take two lines
            self.font(9.5)
            heights.append(
                [
                    min(
                        2,
                        len(
                            self.multi_cell(width - label_w - 3, 4.2, self.t(v), dry_run=True, output="LINES")
                        ),
                    )
                    for _, v in pairs
                ]
            )
        rows = [max(a, b) for a, b in zip(*heights, strict=True)]
        height = sum(row + 4.2 * (n - 1) for n in rows) + 3
        self.set_fill_color(*FILL_BAND)
        self.rect(MARGIN, y, CONTENT_W, height, style="F")
        for x, width, pairs in columns:
            yy = y + 1.5
            for (label, value), lines in zip(pairs, rows, strict=True):
                self.font(8)
                self.set_text_color(*MUTED)
                self.put(x + 1, yy, label_w, row, label)
                self.set_text_color(*TEXT)
                style = "B" if label in ("Patient", "Patient ID") else ""
                if lines == 1:
                    self.font(9.5, style)
                    self.put(x + 1 + label_w, yy, width - label_w - 3, row, value)
                else:
                    self.para(x + 1 + label_w, yy + 0.5, width - label_w - 3, value, 9.5, style,
                              line=4.2, max_lines=2)  # fmt: skip
                yy += row + 4.2 * (lines - 1)
        return y + height

    def study_lung_rads_block(self, y: float) -> float:
        report = self.report
        rads = report.study_lung_rads
        box = 22.0
        self.set_line_width(0.4)
        if rads is None:
            analysed = any(n.result is not None for n in report.nodules)
            if not report.nodules:
                text = (
                    "No nodules marked, so no Lung-RADS category was derived; "
                    "category 1 is for the reader to assign."
                )
            elif not analysed:
                text = "Not assessed: no nodule has the model's results."
            else:
                text = "Not assessed: the model's results do not give the ratings Lung-RADS needs."
            self.font(10, "B")
            self.put(MARGIN, y, CONTENT_W, 6, "Study Lung-RADS v2022 (estimate)")
            return self.para(MARGIN, y + 6.5, CONTENT_W, text, 9)
        source = next((n for n in report.nodules if n.lung_rads == rads), None)
        self.rect(MARGIN, y, box, 17, style="D")
        self.font(7)
        self.put(MARGIN, y + 0.8, box, 3.5, "Lung-RADS", align="C")
        self.font(20, "B")
        self.put(MARGIN, y + 4.5, box, 11, rads.category, align="C")
        x, w = MARGIN + box + 4, CONTENT_W - box - 4
        name = f", from nodule {source.marker.name or source.marker.id}" if source else ""
        yy = self.para(
            x, y, w, f"Study Lung-RADS v2022: {rads.category} (the highest category{name})", 10, "B"
        )
        yy = self.para(x, yy + 0.8, w, f"Follow-up: {rads.follow_up}", 9, "B")
        yy = self.para(x, yy + 0.6, w, f"Rule: {rads.rule}", 8, max_lines=4)
        yy = self.para(x, yy + 0.6, w, rads.basis, 7, max_lines=3)
        return max(yy, y + 17)

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
            ("Location", 44.0, "L"),
            ("Diameter", 16.0, "R"),
            ("Malignancy", 25.0, "R"),
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
            "Malignancy: the model's probability of malignancy, ± the spread over the nodule's slices and "
            "their mirror images. Diameter: the reader's marker. Lung-RADS: estimated from the model's "
            "texture guess and the marker diameter (reader-confirmed ratings take precedence). Each nodule "
            "has its own page below, in this order."
        )
        if y + 12 <= BODY_BOTTOM:
            self.set_text_color(*MUTED)
            self.para(MARGIN, y + 1.5, CONTENT_W, note, 7.5, max_lines=3)
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

    # ---- one page per nodule ------------------------------------------------------------------------

    def nodule_page(self, volume: CTVolume, nodule: NoduleReport, explanation: np.ndarray | None) -> None:
        report = self.report
        marker, result = nodule.marker, nodule.result
        analysed = sum(1 for n in report.nodules if n.result is not None)
        self.add_page()
        y = 14.0
        self.font(15, "B")
        self.put(MARGIN, y, 80, 8, f"Nodule {marker.name or marker.id}")
        self.font(10)
        rank = f"rank {nodule.rank} of {analysed} by malignancy" if result is not None else "not analysed"
        self.put(MARGIN + 80, y + 1, CONTENT_W - 80, 7, rank, align="R")
        self.font(9)
        centre = ", ".join(f"{v:.1f}" for v in marker.centre_mm)
        where = nodule.location or f"slice {nodule.slice_number}"
        self.put(
            MARGIN, y + 8, CONTENT_W, 5,
            f"{where}   |   diameter {marker.diameter_mm:.1f} mm (marker)   |   centre ({centre}) mm LPS",
        )  # fmt: skip
        if marker.notes:
            self.set_text_color(*MUTED)
            self.put(MARGIN, y + 12.5, CONTENT_W, 4, f"Notes: {marker.notes}")
            self.set_text_color(*TEXT)
        top = y + 17.5

        # key image, left
        side = 92.0
        self.picture(images.key_image(volume, nodule), MARGIN, top, side, side)
        self.orientation_letters(volume, "axial", MARGIN, top, side)
        self.scale_bar(
            MARGIN, top + side + 1.2, side, images.KEY_CROP_MM, f"axial slice {nodule.slice_number}"
        )

        # malignancy and Lung-RADS, right
        x, w = MARGIN + side + 6, CONTENT_W - side - 6
        yy = self.malignancy_block(nodule, x, top, w)
        self.lung_rads_block(nodule, x, yy + 3, w, top + side + 7.5)

        # triptych (and Grad-CAM)
        self.views_row(volume, nodule, explanation, top + side + 9)

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

    def malignancy_block(self, nodule: NoduleReport, x: float, y: float, w: float) -> float:
        result, reader = nodule.result, nodule.reader
        self.font(10, "B")
        self.put(x, y, w, 5, "Malignancy (model)")
        y += 5.5
        if result is None:
            y = self.para(x, y, w, "Not analysed: the model has not scored this nodule.", 9)
        else:
            p, u = result.malignancy, result.uncertainty
            self.font(20, "B")
            text = f"{100 * p:.0f}%"
            self.put(x, y, self.get_string_width(text) + 3, 9, text)
            offset = self.get_string_width(text) + 3
            self.font(10)
            self.put(x + offset, y + 1.6, w - offset, 7, f"± {100 * u:.1f}% (uncertainty)")
            y += 10
            self.gauge(x, y, w - 4, p, u)
            y += 8.5
            y = self.para(
                x, y, w,
                "Probability of malignancy; ± is the spread over the nodule's slices and their mirror images "
                "(views that disagree give a larger spread).",
                7,
            )  # fmt: skip
        if reader is not None and reader.malignancy is not None:
            y = self.para(
                x, y + 1.2, w,
                f"Reader-confirmed malignancy: {reader.malignancy:g} of 5 "
                f"({meaning('malignancy', reader.malignancy)})" + _by(reader),
                8.5, "B",
            )  # fmt: skip
        return y

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

    def lung_rads_block(self, nodule: NoduleReport, x: float, y: float, w: float, bottom: float) -> None:
        rads, reader = nodule.lung_rads, nodule.reader
        self.font(10, "B")
        self.put(x, y, w, 5, "Lung-RADS v2022 (estimate)")
        y += 6
        if rads is None:
            why = "the model has not scored this nodule" if nodule.result is None else "ratings missing"
            self.para(x, y, w, f"Not assessed: {why}.", 9)
            return
        box = 17.0
        self.set_line_width(0.4)
        self.rect(x, y, box, 13, style="D")
        self.font(16, "B")
        self.put(x, y + 1, box, 11, rads.category, align="C")
        self.para(x + box + 2.5, y, w - box - 2.5, f"Follow-up: {rads.follow_up}", 9, "B", max_lines=3)
        y += 14.5
        used = [
            name
            for name in ("texture", "calcification", "spiculation")
            if reader and name in reader.attributes
        ]
        rule = f"Rule: {rads.rule}"
        y = self.para(x, y, w, rule, 7.5, max_lines=7)
        if used:
            y = self.para(
                x, y + 0.8, w, f"Reader-confirmed {', '.join(used)} used instead of the model's.", 7.5, "B"
            )
        self.set_text_color(*MUTED)
        lines = max(1, int((bottom - y - 0.8) / (6.5 * 0.42)))
        self.para(x, y + 0.8, w, rads.basis, 6.5, max_lines=lines)
        self.set_text_color(*TEXT)

    def views_row(
        self, volume: CTVolume, nodule: NoduleReport, explanation: np.ndarray | None, y: float
    ) -> None:
        """The triptych (and the Grad-CAM panel) with titles and orientation letters, then the chart."""
        panels = 3 + (explanation is not None)
        gap_mm = 3.0
        side = (CONTENT_W - gap_mm * (panels - 1)) / panels
        if explanation is None:
            side = min(side, 57.0)  # leaves room for the chart
        size, gap_px = images.TRIPTYCH_SIZE_PX, images.TRIPTYCH_GAP_PX
        strip = images.triptych(volume, nodule, size_px=size, gap_px=gap_px)
        titles = {
            "axial": f"Axial (slice {nodule.slice_number})",
            "coronal": "Coronal",
            "sagittal": "Sagittal",
        }
        self.font(8.5, "B")
        for i, view in enumerate(images.TRIPTYCH_VIEWS):
            px = MARGIN + i * (side + gap_mm)
            self.put(px, y, side, 4.5, titles[view])
            panel = strip[:, i * (size + gap_px) : i * (size + gap_px) + size]
            self.picture(panel, px, y + 4.8, side, side)
            self.orientation_letters(volume, view, px, y + 4.8, side)
        if explanation is not None:
            px = MARGIN + 3 * (side + gap_mm)
            self.put(px, y, side, 4.5, "Grad-CAM (colour)")
            height = side * explanation.shape[0] / explanation.shape[1]
            self.picture(explanation, px, y + 4.8, side, min(height, side))
        y_cap = y + 4.8 + side + 1.2
        self.scale_bar(
            MARGIN, y_cap, 3 * side + 2 * gap_mm, images.TRIPTYCH_CROP_MM, "through the marker centre"
        )
        if explanation is not None:
            self.set_text_color(*MUTED)
            self.para(
                MARGIN + 3 * (side + gap_mm),
                y + 4.8 + side + 1.0,
                side,
                EXPLANATION_CAPTION,
                6.5,
                max_lines=3,
            )
            self.set_text_color(*TEXT)
        self.attribute_chart(nodule, y_cap + 6)

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
        malignancy = f"{100 * result.malignancy:.0f}% ± {100 * result.uncertainty:.1f}%"
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


def _by(reader) -> str:
    who = f" by {reader.reader}" if reader.reader else ""
    when = f" on {reader.confirmed_at[:10]}" if reader.confirmed_at else ""
    return who + when


def _add_fonts(pdf: FPDF) -> bool:
    """DejaVu Sans (regular and bold) when the system has both; False: the core font Helvetica."""
    for folder in _FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            try:
                pdf.add_font("DejaVu", "", regular)
                pdf.add_font("DejaVu", "B", bold)
            except Exception:  # a damaged or unreadable font file: fall back to the core font
                continue
            return True
    return False


def _check_picture(marker_id: str, picture: object) -> None:
    array = np.asarray(picture)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(
            f"explanation image of marker {marker_id!r} must be uint8 (h, w) or (h, w, 3), "
            f"not {array.dtype} {array.shape}"
        )
    if min(array.shape[:2]) < 1:
        raise ValueError(f"explanation image of marker {marker_id!r} is empty")


def _created(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return dt.datetime.now(dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _date(value: object) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as given."""
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _person_name(value: object) -> str:
    """A DICOM person name (family^given^middle^prefix^suffix) as "FAMILY, Given Middle"."""
    parts = [p.strip() for p in str(value or "").split("=")[0].split("^")]
    family, rest = (parts[0], [p for p in parts[1:] if p]) if parts else ("", [])
    if family and rest:
        return f"{family}, {' '.join(rest)}"
    return family or " ".join(rest)


def _patient_line(report: StudyReport) -> str:
    patient = report.patient
    name = _person_name(patient.get("name", "")) or "name not given"
    pid = patient.get("id", "")
    return f"{name}" + (f" (ID {pid})" if pid else "")
