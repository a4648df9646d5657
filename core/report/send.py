"""Send a written report to a PACS node: its DICOM objects (the SR, the SEG when written) as they are,
and the PDF wrapped as an Encapsulated PDF (``report-pdf.dcm``, written atomically beside it) in the
same study. The one sender of ``main.py report --send`` and the app's export dialog.

The study the PDF is filed in comes from the SR when one was written (so an anonymised export stays
anonymised); without an SR, from the CT series' first header, never for an anonymised export (that
PDF is then not sent, and the note says why). Sending only reads the files: a failed send leaves them
on disk, to be sent again (``main.py pacs send``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from core.pacs import client
from core.pacs.encapsulated_pdf import write_encapsulated_pdf
from core.pacs.nodes import Node
from core.pacs.sendlog import SendResult
from core.report.export import Export

PDF_DICOM_NAME = "report-pdf.dcm"


@dataclass
class Sent:
    results: list[SendResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[SendResult]:
        return [r for r in self.results if r.outcome == "failure"]


def send_export(done: Export, node: Node, source_files: Sequence[Path] = (), anonymise: bool = False) -> Sent:
    """Send what ``write_report`` wrote into its folder to ``node``; one result per object."""
    sent = Sent()
    dicom = [o.path for o in done.outcomes if o.written and o.path.suffix == ".dcm"]
    pdf = next((o.path for o in done.outcomes if o.written and o.format == "pdf"), None)
    if pdf is not None:
        study = _study_source(dicom, source_files, anonymise)
        if study is None:
            sent.notes.append(f"{pdf.name} not sent: an anonymised PDF is sent with its SR only")
        else:
            try:
                dicom.append(write_encapsulated_pdf(pdf, study, pdf.with_name(PDF_DICOM_NAME)))
            except (OSError, ValueError) as exc:
                sent.notes.append(f"{pdf.name} not sent: it cannot be wrapped as DICOM ({exc})")
    if dicom:
        sent.results = client.send(node, dicom)
    return sent


def _study_source(dicom: Sequence[Path], source_files: Sequence[Path], anonymise: bool):
    """The header whose patient and study the PDF is filed under (None when none may be used)."""
    candidates = list(dicom) if anonymise else [*dicom, *source_files[:1]]
    for path in candidates:
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError):
            continue
    return None
