"""What a view's corners say about the study, as on every PACS viewer (formatting only, no Qt).

Top left: who and when (patient name and ID, study date); top right: what (series description, slice
thickness and reconstruction kernel). The name and ID are left out when the reader hides them or the
data is anonymised (blank); they identify a person, so this text is shown, never logged.
"""

from __future__ import annotations

from core.volume import VolumeMetadata


def person_name(dicom_name: str) -> str:
    """DICOM's ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`` as "FAMILY, GIVEN MIDDLE"."""
    family, *rest = dicom_name.split("^")
    given = " ".join(part for part in rest if part.strip())
    return f"{family}, {given}" if family and given else family or given


def study_date(dicom_date: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD``; anything else as it is."""
    text = dicom_date.strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


def who_and_when(meta: VolumeMetadata, hide_identity: bool) -> str:
    lines = [] if hide_identity else [person_name(meta.patient_name.strip()), meta.patient_id.strip()]
    lines.append(study_date(meta.study_date))
    return "\n".join(line for line in lines if line)


def what(meta: VolumeMetadata) -> str:
    thickness = f"{meta.slice_thickness:g} mm" if meta.slice_thickness else ""
    acquisition = "  ".join(part for part in (thickness, meta.convolution_kernel.strip()) if part)
    return "\n".join(line for line in (meta.series_description.strip(), acquisition) if line)
