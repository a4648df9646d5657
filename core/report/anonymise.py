"""Anonymised exports: a report and the DICOM headers it references, without names, IDs or dates.

Every UID is replaced by ``remap_uid(uid, salt)``, a ``2.25.`` UID made from a keyed hash (HMAC-SHA256)
of the old one: within one export (one salt) the same UID always maps to the same new one, so the SR's
references to its evidence, the tracking UIDs and the CSV/JSON stay consistent with each other, while
another export (another salt) cannot be linked to this one or to the original study. The salt is
never written anywhere; ``new_salt()`` makes a fresh one for each export.

``anonymised(report, salt)`` blanks the patient (name, ID, birth date, sex), the study date, the study
and series descriptions, the reader's name, the reader labels' author and time and the markers' notes;
marker ids (which may carry an LIDC patient ID) are replaced by keyed hashes and marker names that are
not short labels such as ``N3`` by ``N<k>``; the file name an image warning gives as an example
(``e.g. <name>``) is withheld. The study's series number, modality and manufacturer stay.
The export time (``created``) stays: it is when the report was made, not when the patient was scanned.

``anonymised_info(info, salt, file_names)`` does the same for ``python main.py info --anonymise``:
the catalogue tells no more than the anonymised SR would (no paths either).

``anonymise_dataset(ds, salt)`` follows the DICOM PS3.15 Basic Application Level Confidentiality
Profile (Annex E, table E.1-1) for the attributes CT series carry: person names, IDs, dates and times
emptied (type 2) or removed, institution, physicians, operators, accession number, station and device
serial numbers, descriptions and comments removed, private attributes removed, every instance UID
(study, series, SOP instance, frame of reference, referenced instances) remapped; the pixel data and
its geometry (position, orientation, spacing, rescale) are kept.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from core.report.content import StudyReport

# Study fields kept as they are; the UIDs are remapped; every other field of ``StudyReport.study``
# (dates, descriptions and whatever is added later) is blanked.
KEPT_STUDY_FIELDS = ("series_number", "modality", "manufacturer")
STUDY_UID_FIELDS = ("study_uid", "series_uid", "frame_of_reference_uid")
_SHORT_NAME = re.compile(r"[A-Za-z]{0,3}\d{1,3}")
_EXAMPLE = re.compile(r"e\.g\. [^;]*")  # the loader's warnings end with an example file's name

# PS3.15 table E.1-1, Basic Profile action Z (type 2: kept, empty) for the attributes CT series carry.
EMPTIED = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ContentDate",
        "ContentTime",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
    }
)
# Basic Profile action X (removed), and X/Z, X/D, X/Z/D where the attribute is optional in a CT image.
REMOVED = frozenset(
    {
        # the patient
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientBirthTime",
        "PatientBirthName",
        "PatientMotherBirthName",
        "OtherPatientIDs",
        "OtherPatientNames",
        "OtherPatientIDsSequence",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientComments",
        "AdditionalPatientHistory",
        "EthnicGroup",
        "Occupation",
        "MilitaryRank",
        "BranchOfService",
        "CountryOfResidence",
        "RegionOfResidence",
        "PatientReligiousPreference",
        "MedicalRecordLocator",
        "MedicalAlerts",
        "Allergies",
        "PatientState",
        "PregnancyStatus",
        "SmokingStatus",
        "LastMenstrualDate",
        "PatientInsurancePlanCodeSequence",
        "PatientPrimaryLanguageCodeSequence",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        "ReferencedPatientSequence",
        "ReferencedPatientPhotoSequence",
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "AdmissionID",
        "IssuerOfAdmissionIDSequence",
        "CurrentPatientLocation",
        "PatientInstitutionResidence",
        "ConfidentialityConstraintOnPatientDataDescription",
        # people and places
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "InstitutionCodeSequence",
        "InstitutionalDepartmentTypeCodeSequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianName",
        "ConsultingPhysicianIdentificationSequence",
        "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianName",
        "PerformingPhysicianIdentificationSequence",
        "NameOfPhysiciansReadingStudy",
        "PhysiciansReadingStudyIdentificationSequence",
        "RequestingPhysician",
        "RequestingService",
        "ScheduledPerformingPhysicianName",
        "OperatorsName",
        "OperatorIdentificationSequence",
        "PersonName",
        "PersonAddress",
        "PersonTelephoneNumbers",
        "ContentCreatorName",
        "ReviewerName",
        "StationName",
        "DeviceSerialNumber",
        "DetectorID",
        "GantryID",
        "PlateID",
        "CassetteID",
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
        # the study, its descriptions and comments
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndTime",
        "CommentsOnThePerformedProcedureStep",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepDescription",
        "RequestAttributesSequence",
        "ReferencedStudySequence",
        "ReferencedPerformedProcedureStepSequence",
        "ProcedureCodeSequence",
        "ReasonForStudy",
        "ReasonForTheRequestedProcedure",
        "RequestedContrastAgent",
        "StudyComments",
        "ImageComments",
        "DerivationDescription",
        "AcquisitionComments",
        "TextComments",
        "TextString",
        "VisitComments",
        "InterpretationText",
        "ClinicalTrialSponsorName",
        "ClinicalTrialProtocolID",
        "ClinicalTrialProtocolName",
        "ClinicalTrialSiteID",
        "ClinicalTrialSiteName",
        "ClinicalTrialSubjectID",
        "ClinicalTrialSubjectReadingID",
        "ClinicalTrialTimePointID",
        "ClinicalTrialTimePointDescription",
        "ClinicalTrialCoordinatingCenterName",
        "OriginalAttributesSequence",
        "ModifiedAttributesSequence",
        "DigitalSignaturesSequence",
        "AcquisitionDeviceProcessingDescription",
        "FrameComments",
        "IconImageSequence",
    }
)
# UIDs that name a class, a transfer syntax or a coding scheme rather than an instance: never remapped.
KEPT_UIDS = frozenset(
    {
        "TransferSyntaxUID",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "ContextGroupExtensionCreatorUID",
        "TemplateExtensionCreatorUID",
        "CodingSchemeRegistry",
    }
)
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
METHOD = "MTMR Reader: PS3.15 Basic Profile; UIDs as salted-hash 2.25 UIDs"  # LO: <= 64
WITHHELD = "(withheld)"


def new_salt() -> bytes:
    """A fresh secret for one export: 16 random bytes, kept in memory only."""
    return os.urandom(16)


def remap_uid(uid: str, salt: bytes) -> str:
    """The ``2.25.`` UID that replaces ``uid`` in an export made with ``salt`` ("" stays "")."""
    uid = str(uid).strip()
    if not uid:
        return ""
    digest = hmac.new(salt, uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def remap_marker_id(marker_id: str, salt: bytes) -> str:
    """A marker id that cannot be read back to the original (which may hold an LIDC patient ID)."""
    digest = hmac.new(salt, f"mtmr-reader/marker\n{marker_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:24]


def anonymised(report: StudyReport, salt: bytes) -> StudyReport:
    """A copy of ``report`` with no name, ID, date or free text that could identify the patient,
    and every UID remapped with ``salt``; ``uid_map`` holds old -> new (keep it local, never export
    it)."""
    uid_map: dict[str, str] = {}

    def uid(value: str) -> str:
        new = remap_uid(value, salt)
        if value:
            uid_map[str(value)] = new
        return new

    study = {}
    for key, value in report.study.items():
        if key in STUDY_UID_FIELDS:
            study[key] = uid(value or "")
        elif key in KEPT_STUDY_FIELDS:
            study[key] = value
        else:
            study[key] = None if value is None or isinstance(value, int | float) else ""
    names = _safe_names([n.marker.name for n in report.nodules])
    nodules = []
    for nodule, name in zip(report.nodules, names, strict=True):
        marker_id = remap_marker_id(nodule.marker.id, salt)
        marker = replace(nodule.marker, id=marker_id, name=name, notes="")
        result = replace(nodule.result, id=marker_id) if nodule.result is not None else None
        reader = replace(nodule.reader, reader="", confirmed_at="") if nodule.reader is not None else None
        nodules.append(
            replace(
                nodule, marker=marker, result=result, reader=reader, tracking_uid=uid(nodule.tracking_uid)
            )
        )
    return replace(
        report,
        patient={key: "" for key in ("name", "id", "birth_date", "sex")},
        study=study,
        reader_name="",
        nodules=tuple(nodules),
        warnings=tuple(_EXAMPLE.sub(f"e.g. {WITHHELD}", warning) for warning in report.warnings),
        anonymised=True,
        uid_map=uid_map,
    )


def anonymised_info(info: dict, salt: bytes, file_names: Iterable[str] = ()) -> dict:
    """The ``info`` document (``docs/info-json.md``) telling no more than the anonymised SR would.

    Patients become ``anonymous-N``; names, dates and descriptions are blanked; study and series UIDs
    are remapped with ``salt`` (the loaded volume's too, so it still matches its series); paths are
    withheld, and so is every name of ``file_names`` that a problem or warning gives as an example
    (folder and file names often carry a patient's name or ID).
    """
    examples = sorted({f"e.g. {name}" for name in file_names if name}, key=len, reverse=True)

    def text(value: str) -> str:
        for example in examples:
            value = value.replace(example, f"e.g. {WITHHELD}")
        return value

    def series(entry: dict) -> dict:
        return entry | {
            "series_uid": remap_uid(entry["series_uid"], salt),
            "description": "",
            "date": "",
            "problems": [text(problem) for problem in entry["problems"]],
        }

    out = dict(info)
    out["root"] = None
    out["patients"] = [
        {
            "patient_id": f"anonymous-{i + 1}",
            "name": "",
            "studies": [
                {
                    "study_uid": remap_uid(study["study_uid"], salt),
                    "date": "",
                    "description": "",
                    "series": [series(entry) for entry in study["series"]],
                }
                for study in patient["studies"]
            ],
        }
        for i, patient in enumerate(info["patients"])
    ]
    out["skipped"] = [{"path": WITHHELD, "reason": text(item["reason"])} for item in info["skipped"]]
    if info.get("volume"):
        volume = info["volume"]
        out["volume"] = volume | {
            "series_uid": remap_uid(volume["series_uid"], salt),
            "warnings": [text(warning) for warning in volume["warnings"]],
        }
    return out


def _safe_names(names: list[str]) -> list[str]:
    """Short labels (N1, R12) kept; any other name (free text) becomes the first free ``N<k>``."""
    kept = [name if _SHORT_NAME.fullmatch(name or "") else None for name in names]
    used = {name for name in kept if name}
    number, out = 1, []
    for name in kept:
        if name is None:
            while f"N{number}" in used:
                number += 1
            name = f"N{number}"
            used.add(name)
        out.append(name)
    return out


def anonymise_dataset(ds: Dataset, salt: bytes, *, in_place: bool = False) -> Dataset:
    """``ds`` (a copy unless ``in_place``) de-identified as the module docstring says, with the
    Patient Identity Removed and De-identification Method attributes set."""
    from pydicom.dataset import Dataset

    if not in_place:
        ds = copy.deepcopy(ds)
    _clean(ds, salt)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _clean(meta, salt)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE
    ds.DeidentificationMethodCodeSequence = [code]
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return ds


def _clean(ds: Dataset, salt: bytes) -> None:
    """Apply the rules to every element of ``ds`` and, recursively, of its sequences' items."""
    from pydicom.datadict import keyword_for_tag

    for element in list(ds):
        tag = element.tag
        if tag.is_private:
            del ds[tag]
            continue
        group = tag.group
        if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and tag.element in (0x3000, 0x4000)):
            del ds[tag]  # curves, overlay data and overlay comments (may hold burnt-in text)
            continue
        keyword = keyword_for_tag(tag)
        vr = element.VR
        if keyword in EMPTIED:
            element.value = None if vr == "SQ" else ""
            continue
        if keyword in REMOVED or vr in ("PN", "DA", "DT", "TM"):
            del ds[tag]
            continue
        if vr == "SQ":
            for item in element.value or ():
                _clean(item, salt)
        elif vr == "UI" and element.value and _instance_uid(keyword, element.value):
            values = element.value
            if isinstance(values, str):
                element.value = remap_uid(values, salt)
            else:
                element.value = [remap_uid(v, salt) for v in values]


def _instance_uid(keyword: str, value) -> bool:
    """Whether a UI element names an instance (remapped), not a class or scheme (kept)."""
    from pydicom.uid import UID

    if keyword.endswith("ClassUID") or keyword in KEPT_UIDS:
        return False
    values = [value] if isinstance(value, str) else list(value)
    return not all(UID(v).name != str(v) for v in values if v)  # standard UIDs are kept
