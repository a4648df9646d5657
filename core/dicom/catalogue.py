"""Header-only catalogue of a folder, a file or a list of files: patients -> studies -> series.

Nothing here reads pixel data. Every file is accounted for: in a series, one of the study's own
companion files (``markers.json``, a phantom's ``ground_truth.json``, a phantom follow-up's
``follow_up_truth.json``), or skipped with a reason.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.dicom.errors import SeriesNotFoundError, StudyLoadError
from core.dicom.geometry import all_finite, consistency_problems, plan_series_geometry
from core.dicom.headers import read_descriptive, read_header
from core.dicom.slice_header import SliceHeader

SCHEMA = "mtmr-reader/catalogue/1"
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
OTHER_SUFFIXES = (".json", ".txt", ".csv", ".md", ".xml", ".png", ".jpg", ".jpeg", ".pdf", ".html")
COMPANIONS = (
    "markers.json",
    "ground_truth.json",
    "follow_up_truth.json",
)  # the study's own files: read by the app, not skipped


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass
class SeriesEntry:
    series_uid: str
    modality: str
    description: str
    number: int | None
    date: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slice_spacing: float | None
    n_images: int  # slices (frames of a multi-frame file count one each)
    files: tuple[Path, ...]
    problems: list[str] = field(default_factory=list)
    loadable: bool = True  # False: a problem (unusable values, disagreeing files) refuses the load

    @property
    def is_ct(self) -> bool:
        return self.modality == "CT"

    def to_dict(self) -> dict:
        return {
            "series_uid": self.series_uid,
            "modality": self.modality,
            "is_ct": self.is_ct,
            "description": self.description,
            "number": self.number,
            "date": self.date,
            "n_files": len(self.files),
            "n_images": self.n_images,
            "rows": self.rows,
            "columns": self.columns,
            "pixel_spacing_mm": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_thickness_mm": self.slice_thickness,
            "slice_spacing_mm": self.slice_spacing,
            "problems": list(self.problems),
            "loadable": self.loadable,
        }


@dataclass
class StudyEntry:
    study_uid: str
    date: str
    description: str
    series: list[SeriesEntry] = field(default_factory=list)


@dataclass
class PatientEntry:
    patient_id: str
    name: str
    studies: list[StudyEntry] = field(default_factory=list)


@dataclass
class Catalogue:
    """What a folder holds. ``skipped`` lists every file that is neither part of an image series nor
    one of the study's ``companions``."""

    patients: list[PatientEntry]
    skipped: list[SkippedFile]
    root: Path | None = None
    companions: list[Path] = field(default_factory=list)

    def all_series(self) -> Iterator[SeriesEntry]:
        for patient in self.patients:
            for study in patient.studies:
                yield from study.series

    def find_series(self, series_uid: str | None = None) -> SeriesEntry:
        """The series with this UID, or when none is given the CT series with the most images
        (one that can be loaded, when there is any)."""
        if series_uid:
            for series in self.all_series():
                if series.series_uid == series_uid:
                    return series
            raise SeriesNotFoundError(self.root, f"no series with UID {series_uid}")
        ct = [s for s in self.all_series() if s.is_ct]
        if not ct:
            found = sorted({s.modality or "?" for s in self.all_series()})
            what = f"only {', '.join(found)} series" if found else "no image series"
            raise SeriesNotFoundError(
                self.root, f"no CT series found ({what}; {len(self.skipped)} files skipped)"
            )
        return max(ct, key=lambda s: (s.loadable, s.n_images, s.rows * s.columns))

    def paths(self) -> Iterator[Path]:
        """Every file accounted for: in a series or skipped."""
        for series in self.all_series():
            yield from series.files
        yield from (skipped.path for skipped in self.skipped)

    def to_dict(self) -> dict:
        """The ``info --json`` document; ``core.report.anonymise.anonymised_info`` anonymises it."""

        def person(p: PatientEntry) -> dict:
            return {
                "patient_id": p.patient_id,
                "name": p.name,
                "studies": [
                    {
                        "study_uid": s.study_uid,
                        "date": s.date,
                        "description": s.description,
                        "series": [se.to_dict() for se in s.series],
                    }
                    for s in p.studies
                ],
            }

        return {
            "schema": SCHEMA,
            "root": None if self.root is None else str(self.root),
            "patients": [person(p) for p in self.patients],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
        }


def iter_files(source: str | Path | Sequence[str | Path]) -> Iterator[Path]:
    """Every regular file under a folder (recursively, sorted), or the files given."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    for item in sources:
        path = Path(item)
        if path.is_dir():
            for folder, dirs, names in os.walk(path, onerror=None):
                dirs.sort()
                for name in sorted(names):
                    yield Path(folder) / name
        elif path.exists():
            if path.name.upper() == "DICOMDIR":
                yield from iter_files(path.parent)  # its referenced files live below it
            else:
                yield path
        else:
            raise SeriesNotFoundError(path, "no such file or folder")


def catalogue(
    source: str | Path | Sequence[str | Path],
    progress: Callable[[int], None] | None = None,
) -> Catalogue:
    """Read the headers of every file under ``source`` and group them into series."""
    headers: list[SliceHeader] = []
    skipped: list[SkippedFile] = []
    companions: list[Path] = []
    seen: set[Path] = set()
    for count, path in enumerate(iter_files(source), 1):
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        if path.name.lower() in COMPANIONS:
            companions.append(path)
        elif path.name.lower().endswith(VOLUME_SUFFIXES):
            skipped.append(SkippedFile(path, "a NIfTI/MHD/NRRD volume, not DICOM: open it directly"))
        elif path.suffix.lower() in OTHER_SUFFIXES:
            skipped.append(SkippedFile(path, f"a {path.suffix[1:].upper()} file, not DICOM"))
        else:
            try:
                headers.append(read_header(path))
            except StudyLoadError as exc:
                skipped.append(SkippedFile(path, exc.reason))
        if progress is not None and count % 50 == 0:
            progress(count)
    root = Path(source) if isinstance(source, (str, Path)) else None
    return Catalogue(_group(headers), skipped, root, companions)


def _group(headers: Iterable[SliceHeader]) -> list[PatientEntry]:
    by_series: dict[str, list[SliceHeader]] = defaultdict(list)
    for header in headers:
        key = header.series_uid or f"(no series UID) {header.path.parent}"
        by_series[key].append(header)
    patients: dict[str, PatientEntry] = {}
    studies: dict[str, StudyEntry] = {}
    for uid, members in by_series.items():
        ds = read_descriptive(members[0].path)  # descriptions: once per series, not per file
        patient_key = str(ds.get("PatientID", "") or "")
        patient = patients.setdefault(
            patient_key, PatientEntry(patient_key, str(ds.get("PatientName", "") or ""))
        )
        study_uid = str(ds.get("StudyInstanceUID", "") or f"(no study UID) {patient_key}")
        study = studies.get(study_uid)
        if study is None:
            study = StudyEntry(
                study_uid,
                str(ds.get("StudyDate", "") or ""),
                str(ds.get("StudyDescription", "") or ""),
            )
            studies[study_uid] = study
            patient.studies.append(study)
        study.series.append(_series_entry(uid, members, ds))
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number is None, s.number or 0, s.series_uid))
    return sorted(patients.values(), key=lambda p: p.patient_id)


def _series_entry(uid: str, headers: list[SliceHeader], ds) -> SeriesEntry:
    first = headers[0]
    problems: list[str] = []
    if first.modality != "CT":
        problems.append(f"modality {first.modality or 'unknown'}: not CT, cannot be analysed")
    inconsistent = consistency_problems(headers)
    problems += inconsistent
    spacing, loadable = None, not inconsistent
    if len(headers) > 1 and not inconsistent:
        try:
            geometry = plan_series_geometry(headers)
        except StudyLoadError as exc:  # one unusable series never hides the others
            problems.append(exc.reason)
            loadable = False
        else:
            problems += list(geometry.warnings)
            spacing = round(float(np.linalg.norm(geometry.affine[:3, 2])), 4)
    number = ds.get("SeriesNumber")
    return SeriesEntry(
        series_uid=uid,
        modality=first.modality,
        description=str(ds.get("SeriesDescription", "") or ""),
        number=int(number) if number not in (None, "") else None,
        date=str(ds.get("SeriesDate", "") or ds.get("StudyDate", "") or ""),
        rows=first.rows,
        columns=first.columns,
        pixel_spacing=first.pixel_spacing if all_finite(first.pixel_spacing) else None,  # problems say why
        slice_thickness=first.slice_thickness if all_finite((first.slice_thickness or 0.0,)) else None,
        slice_spacing=spacing,
        n_images=sum(h.n_frames for h in headers),
        files=tuple(sorted(h.path for h in headers)),
        problems=problems,
        loadable=loadable,
    )
