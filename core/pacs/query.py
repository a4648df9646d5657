"""What a study search asks and what it answers, the same for C-FIND and QIDO-RS.

``Query`` holds the filters (patient name with ``*`` wildcards, patient ID, a study date range,
accession number, modality) and ``limit``, the most studies wanted: a server that has more is
cut off there and ``Found.limited`` says so. ``StudyMatch`` and ``SeriesInfo`` are built from the
answer data sets of either protocol.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date

from pydicom.dataset import Dataset

DEFAULT_LIMIT = 200
STUDY_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)


def parse_date_range(text: str) -> tuple[str, str]:
    """``YYYYMMDD-YYYYMMDD`` (either end may be left open, ``YYYY-MM-DD`` too) as a pair of DICOM dates."""
    text = text.strip()
    parts = re.fullmatch(r"(\d{4}-?\d{2}-?\d{2})?\s*(?:(-|\.\.|/)\s*(\d{4}-?\d{2}-?\d{2})?)?", text)
    if not text or parts is None:
        raise ValueError(f"date range {text!r}: expected YYYYMMDD-YYYYMMDD (either end may be empty)")
    start, sep, end = parts.group(1) or "", parts.group(2), parts.group(3) or ""
    start, end = start.replace("-", ""), end.replace("-", "")
    if not sep:
        end = start
    for value in (start, end):
        if value:
            try:
                date(int(value[:4]), int(value[4:6]), int(value[6:]))
            except ValueError:
                raise ValueError(f"date range {text!r}: {value} is not a date") from None
    if start and end and start > end:
        raise ValueError(f"date range {text!r}: starts after it ends")
    return start, end


@dataclass(frozen=True)
class Query:
    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    accession: str = ""
    modality: str = ""
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be a whole number >= 1, not {self.limit!r}")

    @property
    def date_range(self) -> str:
        if not (self.date_from or self.date_to):
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"

    def filters(self) -> dict[str, str]:
        """The matching keys with a value, by DICOM keyword."""
        pairs = {
            "PatientName": self.patient_name,
            "PatientID": self.patient_id,
            "StudyDate": self.date_range,
            "AccessionNumber": self.accession,
            "ModalitiesInStudy": self.modality,
        }
        return {k: v for k, v in pairs.items() if v}


@dataclass(frozen=True)
class StudyMatch:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    accession: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    series: int | None = None
    instances: int | None = None
    birth_date: str = ""  # DICOM DA: compared by the follow-up's prior search, never a filter

    def to_dict(self) -> dict:
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        return data


@dataclass(frozen=True)
class SeriesInfo:
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    instances: int | None = None

    @property
    def is_ct(self) -> bool:
        """A CT series, the kind this reader analyses; others are listed but greyed out."""
        return self.modality.upper() == "CT"


@dataclass(frozen=True)
class Found:
    studies: list[StudyMatch] = field(default_factory=list)
    limited: bool = False


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _count(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def study_from(ds: Dataset) -> StudyMatch:
    modalities = ds.get("ModalitiesInStudy", "") or ""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return StudyMatch(
        study_uid=_text(ds, "StudyInstanceUID"),
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        study_date=_text(ds, "StudyDate"),
        accession=_text(ds, "AccessionNumber"),
        description=_text(ds, "StudyDescription"),
        modalities=tuple(str(m) for m in modalities),
        series=_count(ds, "NumberOfStudyRelatedSeries"),
        instances=_count(ds, "NumberOfStudyRelatedInstances"),
        birth_date=_text(ds, "PatientBirthDate"),
    )


def series_from(ds: Dataset) -> SeriesInfo:
    return SeriesInfo(
        series_uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"),
        number=_count(ds, "SeriesNumber"),
        description=_text(ds, "SeriesDescription"),
        instances=_count(ds, "NumberOfSeriesRelatedInstances"),
    )
