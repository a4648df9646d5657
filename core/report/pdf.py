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

This module makes the document (fonts, metadata, the running header and footer); page 1 is laid out in
``core.report.pdf_summary_page``, each nodule's page in ``core.report.pdf_nodule_page``, and the pieces
they are drawn with (the table of nodules, pictures, gauge, attribute chart, text helpers) are in
``core.report.pdf_parts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from fpdf import FPDF

from core.report.content import StudyReport
from core.report.pdf_follow_up import FollowUpPage, PriorImages
from core.report.pdf_nodule_page import NodulePage
from core.report.pdf_parts import CONTENT_W, FOOTER_H, MARGIN, MUTED, PAGE_H, PAGE_W, TEXT
from core.report.pdf_summary_page import PRODUCER, TITLE, SummaryPage, created_at, dicom_date, patient_line
from core.util.atomic import atomic_write_bytes
from core.volume import CTVolume

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


def write_pdf(
    report: StudyReport,
    volume: CTVolume,
    path: str | Path,
    explanation_images: Mapping[str, np.ndarray] | None = None,
    prior: PriorImages | None = None,
) -> Path:
    """Write the report of ``report`` as an A4 PDF to ``path`` (atomically) and return the path.

    ``volume`` is the study's CT (the pictures come from it). ``explanation_images`` maps a marker id
    to a uint8 picture (grey ``(h, w)`` or RGB ``(h, w, 3)``, e.g. ``core.model.explain.overlay_rgb``) shown
    as a fourth panel on that nodule's page. The page count is one per nodule plus the summary (one
    page up to about 34 nodules; the table carries on over further pages after that), and with a
    follow-up reading (``NoduleReport.prior``) a comparison page (``core.report.pdf_follow_up``),
    with ``prior`` (the prior study and the reading) each paired nodule's prior and current key images.
    """
    path = Path(path)
    explanation_images = dict(explanation_images or {})
    for marker_id, picture in explanation_images.items():
        _check_picture(marker_id, picture)
    pdf = _ReportPDF(report)
    pdf.summary_page()
    pdf.follow_up_page(volume, prior)
    for nodule in report.nodules:
        pdf.nodule_page(volume, nodule, explanation_images.get(nodule.marker.id))
    atomic_write_bytes(path, bytes(pdf.output()))
    return path


class _ReportPDF(SummaryPage, FollowUpPage, NodulePage):
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
        self.set_creation_date(created_at(report.created))
        self.set_text_color(*TEXT)
        self.set_draw_color(*TEXT)

    # ---- running header and footer ------------------------------------------------------------------

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.font(7.5)
        self.set_text_color(*MUTED)
        study = self.report.study
        who = "Patient: anonymised" if self.report.anonymised else f"Patient: {patient_line(self.report)}"
        date = dicom_date(study.get("study_date", ""))
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
        y = self.para(MARGIN, top + 1.2, CONTENT_W - 24, f"Model: {model.text}{digest}", 7, max_lines=3)
        self.set_text_color(*TEXT)
        self.para(MARGIN, y + 0.3, CONTENT_W - 24, self.report.disclaimer, 7, "B", max_lines=2)
        self.font(7.5)
        self.set_xy(PAGE_W - MARGIN - 24, top + 1.2)
        self.cell(24, 3.2, f"Page {self.page_no()} of {{nb}}", align="R")


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
