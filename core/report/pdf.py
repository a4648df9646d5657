"""The printable report of one study (A4 PDF, fpdf2, no Qt), from ``core.report.content``.

Page 1 (more only when the table of nodules runs over): who and what was read (patient name, ID,
birth date and sex, or "anonymised"; study date and description; series; reader), the image
warnings when loading had to assume or correct something (a made-up voxel size), the study's
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

This module lays out the pages; the pieces they are drawn with (the table of nodules, pictures, gauge,
attribute chart, text helpers) are in ``core.report.pdf_parts``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from fpdf import FPDF

from core.nodule.meanings import meaning
from core.report import images
from core.report.content import NoduleReport, StudyReport
from core.report.pdf_parts import (
    BODY_BOTTOM,  # noqa: F401 (re-exported: importable from here as before the split)
    CONTENT_W,
    FILL_BAND,
    FILL_BAR,  # noqa: F401 (re-exported)
    FILL_HEADER,  # noqa: F401 (re-exported)
    FOOTER_H,
    MARGIN,
    MUTED,
    PAGE_H,
    PAGE_W,
    TEXT,
    ReportCanvas,
)
from core.util.atomic import atomic_write_bytes
from core.volume import CTVolume

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
_SEX = {"M": "male", "F": "female", "O": "other"}


def write_pdf(
    report: StudyReport,
    volume: CTVolume,
    path: str | Path,
    explanation_images: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write the report of ``report`` as an A4 PDF to ``path`` (atomically) and return the path.

    ``volume`` is the study's CT (the pictures come from it). ``explanation_images`` maps a marker id
    to a uint8 picture (grey ``(h, w)`` or RGB ``(h, w, 3)``, e.g. ``core.model.explain.overlay_rgb``) shown
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


class _ReportPDF(ReportCanvas):
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
        y = self.warnings_block(y)
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

    def warnings_block(self, y: float) -> float:
        """What the loader had to assume about the images (a made-up voxel size, say), under who and what."""
        if not self.report.warnings:
            return y
        text = "Image warnings: " + "; ".join(self.report.warnings)
        return self.para(MARGIN, y + 2, CONTENT_W, text, 8.5, "B", max_lines=4)

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
