"""The CT instances the DICOM SR report (``core.report.sr``) references: minimal copies of their
headers as the SR's evidence, with the patient and study identity (from the source, or from the report
alone when it is anonymised) and the UIDs mapped through the report's; and the Image Library (TID 1600)
that lists them, grouped by their shared descriptors.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.report.content import StudyReport
from core.report.sr_codes import COSINE, MODALITIES, PIXELS, SOURCE

# Patient and General Study attributes copied from the source when the report is not anonymised
_PATIENT_STUDY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
)  # fmt: skip
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip
_SHARED = ("Rows", "Columns", "PixelSpacing", "SliceThickness", "ImageOrientationPatient")


# --- image library --------------------------------------------------------------------------------


def image_library(evidence: Sequence[Dataset]) -> hd.sr.ContainerContentItem:
    """TID 1600: one Image Library Group per set of instances that share their descriptors (modality,
    frame of reference, size, pixel spacing, slice thickness, orientation; TID 1602/1604), each instance
    an IMAGE entry (TID 1601) without descriptors of its own."""
    groups: dict[tuple, list[Dataset]] = {}
    for ds in evidence:
        key = tuple(str(ds.get(keyword, "")) for keyword in ("Modality", "FrameOfReferenceUID", *_SHARED))
        groups.setdefault(key, []).append(ds)
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    library = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type=contains)
    items = []
    for datasets in groups.values():
        group = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibraryGroup, relationship_type=contains)
        entries = [
            hd.sr.ImageContentItem(
                name=SOURCE,
                referenced_sop_class_uid=ds.SOPClassUID,
                referenced_sop_instance_uid=ds.SOPInstanceUID,
                relationship_type=contains,
            )
            for ds in datasets
        ]
        group.ContentSequence = hd.sr.ContentSequence([*_descriptors(datasets[0]), *entries])
        items.append(group)
    library.ContentSequence = hd.sr.ContentSequence(items)
    return library


def _descriptors(ds: Dataset) -> list:
    """The shared Image Library Entry Descriptors of ``ds`` (those it has)."""
    context = hd.sr.RelationshipTypeValues.HAS_ACQ_CONTEXT
    modality = str(ds.Modality)
    items: list = [
        hd.sr.CodeContentItem(
            name=codes.DCM.Modality,
            value=hd.sr.CodedConcept(
                value=modality, scheme_designator="DCM", meaning=MODALITIES.get(modality, modality)
            ),
            relationship_type=context,
        )
    ]
    if "FrameOfReferenceUID" in ds:
        items.append(
            hd.sr.UIDRefContentItem(
                name=codes.DCM.FrameOfReferenceUID, value=ds.FrameOfReferenceUID, relationship_type=context
            )
        )
    numbers = []
    if "Rows" in ds and "Columns" in ds:
        numbers += [
            (codes.DCM.PixelDataRows, ds.Rows, PIXELS),
            (codes.DCM.PixelDataColumns, ds.Columns, PIXELS),
        ]
    if "PixelSpacing" in ds:
        numbers += [
            (codes.DCM.HorizontalPixelSpacing, ds.PixelSpacing[1], codes.UCUM.Millimeter),
            (codes.DCM.VerticalPixelSpacing, ds.PixelSpacing[0], codes.UCUM.Millimeter),
        ]
    if "SliceThickness" in ds:
        numbers.append((codes.DCM.SliceThickness, ds.SliceThickness, codes.UCUM.Millimeter))
    if "ImageOrientationPatient" in ds:
        names = ("RowX", "RowY", "RowZ", "ColumnX", "ColumnY", "ColumnZ")
        numbers += [
            (getattr(codes.DCM, f"ImageOrientationPatient{name}"), value, COSINE)
            for name, value in zip(names, ds.ImageOrientationPatient, strict=False)
        ]
    items += [
        hd.sr.NumContentItem(name=name, value=float(value), unit=unit, relationship_type=context)
        for name, value, unit in numbers
    ]
    return items


# --- evidence, identity, UIDs ---------------------------------------------------------------------


class UidMap:
    """Old UIDs to the report's: identity unless anonymised; then ``report.uid_map``, else a random UID
    (the same for the same old UID within this SR)."""

    def __init__(self, report: StudyReport) -> None:
        self.anonymised = report.anonymised
        self.known = dict(report.uid_map or {})
        self.salt = secrets.token_hex(16)

    def __call__(self, uid: str) -> str:
        uid = str(uid)
        if uid in self.known:
            return str(self.known[uid])
        if not self.anonymised or not uid:
            return uid
        new = derived_uid("mtmr-reader/sr-anonymous", self.salt, uid)
        self.known[uid] = new
        return new


def evidence_headers(report: StudyReport, sources: Sequence[Dataset], uids: UidMap) -> list[Dataset]:
    """Minimal header copies of the series' instances, with the report's identity and UIDs."""
    series_uid = report.study.get("series_uid", "")
    evidence: dict[str, Dataset] = {}
    for source in sorted(sources, key=_instance_order):
        if "SOPInstanceUID" not in source or "SOPClassUID" not in source:
            continue
        if series_uid and uids(source.get("SeriesInstanceUID", "")) != series_uid:
            continue
        ds = Dataset()
        ds.SOPClassUID = source.SOPClassUID
        ds.SOPInstanceUID = uids(source.SOPInstanceUID)
        ds.SeriesInstanceUID = uids(source.SeriesInstanceUID)
        ds.Modality = source.get("Modality") or report.study.get("modality") or "CT"
        if "FrameOfReferenceUID" in source:
            ds.FrameOfReferenceUID = uids(source.FrameOfReferenceUID)
        for keyword in _SHARED:
            if source.get(keyword) not in (None, ""):
                setattr(ds, keyword, source.get(keyword))
        _identity(ds, report, source, uids)
        evidence.setdefault(ds.SOPInstanceUID, ds)
    if not evidence:
        raise ValueError(f"no instance of the report's CT series ({series_uid or 'unknown'}) was given")
    return list(evidence.values())


def _identity(ds: Dataset, report: StudyReport, source: Dataset, uids: UidMap) -> None:
    for keyword in _TYPE2:
        setattr(ds, keyword, "")
    if report.anonymised:
        patient, study = report.patient, report.study
        ds.PatientName = str(patient.get("name") or "")
        ds.PatientID = str(patient.get("id") or "")
        ds.PatientBirthDate = _date(patient.get("birth_date"))
        ds.PatientSex = patient.get("sex") if patient.get("sex") in ("M", "F", "O") else ""
        ds.StudyDate = _date(study.get("study_date"))
        if study.get("study_description"):
            ds.StudyDescription = str(study["study_description"])
    else:
        for keyword in _PATIENT_STUDY:
            value = source.get(keyword)
            if value not in (None, ""):
                setattr(ds, keyword, value)
    ds.StudyInstanceUID = uids(source.get("StudyInstanceUID", "")) or report.study.get("study_uid", "")
    if not ds.StudyInstanceUID:
        raise ValueError("the CT series has no study instance UID")


def _instance_order(ds: Dataset) -> tuple[int, str]:
    try:
        number = int(ds.get("InstanceNumber") or 0)
    except (TypeError, ValueError):
        number = 0
    return number, str(ds.get("SOPInstanceUID", ""))


def read_headers(files: Iterable[str | Path]) -> list[Dataset]:
    """The headers of the CT files; ValueError naming the first that is not a readable DICOM file."""
    headers = []
    for path in map(Path, files):
        try:
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as exc:  # pydicom raises anything from OSError to struct.error on a bad file
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            reason = getattr(exc, "strerror", None) or text or type(exc).__name__
            raise ValueError(f"{path.name}: not a readable DICOM file ({reason})") from exc
    return headers


@contextlib.contextmanager
def quiet_person_names() -> Iterator[None]:
    """Drop highdicom's warning about a one-part person name: it quotes the name, so a patient named
    ``DOE`` in the CT's header ended up in the terminal and the logs. The name is copied as is."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The string .* is unlikely to represent the intended person name"
        )
        yield


def derived_uid(*parts: str) -> str:
    """A 2.25 UID fixed by ``parts``."""
    digest = hashlib.sha256("\n".join(str(p) for p in parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _date(value) -> str:
    text = str(value or "").replace("-", "")
    return text if re.fullmatch(r"\d{8}", text) else ""
