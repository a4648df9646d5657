"""What a view's corners say about the study, as on every PACS viewer (formatting only, no Qt).

Top left: who and when (patient name and ID, study date); top right: what (series description, slice
thickness and reconstruction kernel). The name and ID are left out when the reader hides them or the
data is anonymised (blank); they identify a person, so this text is shown, never logged.
"""

from __future__ import annotations

from core.volume import VolumeMetadata


def person_name(value: object) -> str:
    """A DICOM person name (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``) as "FAMILY, GIVEN MIDDLE": the
    alphabetic representation only (before any ``=``: ideographic and phonetic ones follow it). The one
    rule for the view's corners and the PDF report."""
    parts = [p.strip() for p in str(value or "").split("=")[0].split("^")]
    family, rest = parts[0], [p for p in parts[1:] if p]
    if family and rest:
        return f"{family}, {' '.join(rest)}"
    return family or " ".join(rest)


def study_date(value: object) -> str:
    """A DICOM date ``YYYYMMDD`` as ``YYYY-MM-DD``; anything else as it is (the corners and the PDF)."""
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


def who_and_when(meta: VolumeMetadata, hide_identity: bool) -> str:
    lines = [] if hide_identity else [person_name(meta.patient_name.strip()), meta.patient_id.strip()]
    lines.append(study_date(meta.study_date))
    return "\n".join(line for line in lines if line)


def what(meta: VolumeMetadata) -> str:
    thickness = f"{meta.slice_thickness:g} mm" if meta.slice_thickness else ""
    acquisition = "  ".join(part for part in (thickness, meta.convolution_kernel.strip()) if part)
    return "\n".join(line for line in (meta.series_description.strip(), acquisition) if line)
