"""Page 1 of the printable report: the title, who and what was read, the image warnings, the study's
Lung-RADS category, and the table of nodules (``ReportCanvas.nodule_table``); and the DICOM values
(dates, person names) as the report writes them."""

from __future__ import annotations

import datetime as dt

from core.imaging.corner_text import person_name
from core.imaging.corner_text import study_date as dicom_date
from core.report.content import StudyReport
from core.report.pdf_parts import CONTENT_W, FILL_BAND, MARGIN, MUTED, TEXT, ReportCanvas

TITLE = "Lung nodule report"
PRODUCER = "MTMR Reader"
SEX = {"M": "male", "F": "female", "O": "other"}


class SummaryPage(ReportCanvas):
    """Page 1: ``summary_page`` draws it, block by block, each returning the y below it."""

    def summary_page(self) -> None:
        report = self.report
        self.add_page()
        self.font(17, "B")
        self.set_xy(MARGIN, MARGIN - 2)
        self.cell(110, 9, TITLE)
        self.font(8)
        self.set_text_color(*MUTED)
        created = created_at(report.created).strftime("%Y-%m-%d %H:%M UTC")
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
                ("Patient", person_name(patient.get("name", "")) or "not given"),
                ("Patient ID", patient.get("id", "") or "not given"),
                ("Birth date", dicom_date(patient.get("birth_date", "")) or "not given"),
                ("Sex", f"{sex} ({SEX[sex.upper()]})" if sex.upper() in SEX else sex or "not given"),
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
            ("Study date", dicom_date(study.get("study_date", "")) or "not given"),
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


def created_at(text: str) -> dt.datetime:
    """When the report was made (ISO 8601, UTC when it has no zone); now when it cannot be read."""
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return dt.datetime.now(dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def patient_line(report: StudyReport) -> str:
    """The patient as each page after the first names them: "FAMILY, Given (ID ...)"."""
    patient = report.patient
    name = person_name(patient.get("name", "")) or "name not given"
    pid = patient.get("id", "")
    return f"{name}" + (f" (ID {pid})" if pid else "")
