"""Anonymisation leaves no PHI: a study full of identifying values in every patient and study attribute,
checked in the report's JSON and CSV and in a DICOM header written out byte for byte."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.report.anonymise import anonymise_dataset, anonymised, new_salt, remap_uid
from core.report.content import build_report
from core.report.tables import report_json, write_csv, write_json
from core.volume import VolumeMetadata
from tests.core.report.test_tables import CARD, NOW, make_volume
from tests.dicom_factory import ct_dataset

STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
SERIES_UID = "1.2.826.0.1.3680043.8.498.22222222222222222222"
FRAME_UID = "1.2.826.0.1.3680043.8.498.33333333333333333333"
# Every value a person could be found by: none may survive anywhere.
PHI = {
    "patient_name": "Quackenbush^Ermintrude^Philippa",
    "patient_id": "MRN-77340912",
    "birth_date": "19411123",
    "study_date": "20240229",
    "study_description": "CT THORAX Ermintrude Quackenbush St Swithin Infirmary",
    "series_description": "Lung 1mm per Dr Zebedee Fotheringay",
    "reader": "Dr Bartholomew Xanthopoulos",
    "confirmed": "2024-03-01T08:15:00",
    "marker_id": "LIDC-IDRI-0831/scan-4/nodule-2",
    "marker_name": "Quackenbush left nodule",
    "notes": "compare with MRN-77340912 from Ravensworth Clinic",
    "institution": "Ravensworth Clinic",
    "address": "12 Gallowgate Lane, Thornbury",
    "referring": "Fotheringay^Zebedee",
    "performing": "Montmorency^Octavia",
    "operator": "Pemberton^Algernon",
    "accession": "ACC55501234",
    "study_id": "STU909",
    "station": "CTSCAN-WEST-07",
    "serial": "SN-4455667788",
    "other_id": "OID-31415926",
    "comment": "patient Quackenbush refused contrast",
    "protocol": "Quackenbush special protocol",
    "private": "PRIVATE-CONFIDENTIAL-TEXT",
    "phone": "555-0199-3311",
}
ORIGINAL_UIDS = (STUDY_UID, SERIES_UID, FRAME_UID)


def phi_volume():
    return make_volume(
        VolumeMetadata(
            patient_name=PHI["patient_name"],
            patient_id=PHI["patient_id"],
            patient_birth_date=PHI["birth_date"],
            patient_sex="F",
            study_uid=STUDY_UID,
            series_uid=SERIES_UID,
            frame_of_reference_uid=FRAME_UID,
            study_date=PHI["study_date"],
            study_description=PHI["study_description"],
            series_description=PHI["series_description"],
            series_number=7,
            modality="CT",
            manufacturer="ACME Medical",
        )
    )


def phi_report():
    from core.nodule.prediction import NoduleResult
    from tests.core.report.test_tables import nodule_attributes

    volume = phi_volume()
    markers = [
        NoduleMarker(PHI["marker_id"], PHI["marker_name"], (-5.0, -3.0, 10.0), 9.0, PHI["notes"]),
        NoduleMarker("b7c1", "N2", (-4.0, -2.0, 20.0), 6.0),
    ]
    results = {
        m.id: NoduleResult(m.id, p, 0.05, nodule_attributes(k), k + 1)
        for k, (m, p) in enumerate(zip(markers, (0.8, 0.3), strict=True))
    }
    labels = {
        markers[0].id: NoduleLabel(4.0, {"spiculation": 4.0}, "reader", PHI["reader"], PHI["confirmed"])
    }
    locations = {m.id: "left lower zone, slice 5" for m in markers}
    report = build_report(volume, markers, results, labels, CARD, PHI["reader"], locations, now=NOW)
    return report, volume


# Parts of those values that would identify someone on their own.
TOKENS = (
    "Quackenbush", "Ermintrude", "Philippa", "Fotheringay", "Zebedee", "Xanthopoulos", "Bartholomew",
    "Montmorency", "Octavia", "Pemberton", "Algernon", "Ravensworth", "Gallowgate", "Thornbury", "Swithin",
    "77340912", "LIDC-IDRI-0831", "19411123", "1941-11-23", "20240229", "2024-02-29", "2024-03-01",
)  # fmt: skip


def leaks(text: str) -> list[str]:
    """The identifying values (whole, or a telling part of one) found in ``text``."""
    values = [*PHI.values(), *ORIGINAL_UIDS, *TOKENS]
    return [value for value in values if len(value) > 1 and value.lower() in text.lower()]


def test_report_leaves_no_phi_in_json_or_csv(tmp_path):
    report, _ = phi_report()
    plain = json.dumps(report_json(report))
    assert leaks(plain)  # the test values are really there before
    clean = anonymised(report, new_salt())
    write_json(clean, tmp_path / "report.json")
    write_csv(clean, tmp_path / "ranking.csv")
    for name in ("report.json", "ranking.csv"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert leaks(text) == [], name
    data = report_json(clean)
    assert data["anonymised"] is True
    assert data["patient"] == {"name": "", "id": "", "birth_date": "", "sex": ""}
    assert data["reader"]["name"] == "" and data["study"]["study_date"] == ""
    assert data["study"]["series_number"] == 7 and data["study"]["manufacturer"] == "ACME Medical"
    first = data["nodules"][0]
    assert first["marker"]["notes"] == "" and first["reader"]["reader"] == ""
    assert first["reader"]["confirmed_at"] == "" and first["reader"]["malignancy"] == 4.0  # values kept
    assert first["marker"]["name"] == "N1"  # free text replaced, short labels kept
    assert data["nodules"][1]["marker"]["name"] == "N2"
    assert (
        first["malignancy_probability"] == 0.8
        and first["lung_rads"] == report_json(report)["nodules"][0]["lung_rads"]
    )
    assert report.patient["name"] == PHI["patient_name"]  # the original is untouched


def test_uids_are_remapped_consistently_per_salt():
    report, _ = phi_report()
    salt = new_salt()
    one, two = anonymised(report, salt), anonymised(report, salt)
    other = anonymised(report, new_salt())
    assert one == two and one.study == two.study
    assert one.study["study_uid"] == remap_uid(STUDY_UID, salt)
    for key, old in zip(("study_uid", "series_uid", "frame_of_reference_uid"), ORIGINAL_UIDS, strict=True):
        new = one.study[key]
        assert new != old and new != other.study[key]
        assert re.fullmatch(r"2\.25\.(0|[1-9]\d*)", new) and len(new) <= 64
        assert one.uid_map[old] == new
    for a, b, original in zip(one.nodules, other.nodules, report.nodules, strict=True):
        assert a.tracking_uid == one.uid_map[original.tracking_uid] != original.tracking_uid
        assert a.tracking_uid != b.tracking_uid and a.marker.id != b.marker.id
        assert a.result.id == a.marker.id
    assert len(set(one.uid_map.values())) == len(one.uid_map)  # no two UIDs collapse
    assert remap_uid("", salt) == ""
    assert "uid_map" not in report_json(one)


def phi_dataset() -> Dataset:
    ds = ct_dataset(3, SERIES_UID, STUDY_UID)
    ds.FrameOfReferenceUID = FRAME_UID
    ds.PatientName = PHI["patient_name"]
    ds.PatientID = PHI["patient_id"]
    ds.PatientBirthDate = PHI["birth_date"]
    ds.PatientSex = "F"
    ds.PatientAge = "082Y"
    ds.PatientAddress = PHI["address"]
    ds.PatientTelephoneNumbers = PHI["phone"]
    ds.OtherPatientIDs = PHI["other_id"]
    ds.PatientComments = PHI["comment"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = PHI["study_date"]
    ds.StudyTime = ds.SeriesTime = "101112"
    ds.AcquisitionDateTime = PHI["study_date"] + "101112"
    ds.StudyDescription = PHI["study_description"]
    ds.SeriesDescription = PHI["series_description"]
    ds.ProtocolName = PHI["protocol"]
    ds.ImageComments = PHI["comment"]
    ds.InstitutionName = PHI["institution"]
    ds.InstitutionAddress = PHI["address"]
    ds.InstitutionalDepartmentName = "Quackenbush Wing"
    ds.ReferringPhysicianName = PHI["referring"]
    ds.PerformingPhysicianName = PHI["performing"]
    ds.PhysiciansOfRecord = PHI["performing"]
    ds.NameOfPhysiciansReadingStudy = PHI["referring"]
    ds.OperatorsName = PHI["operator"]
    ds.AccessionNumber = PHI["accession"]
    ds.StudyID = PHI["study_id"]
    ds.StationName = PHI["station"]
    ds.DeviceSerialNumber = PHI["serial"]
    ds.Manufacturer = "ACME Medical"
    ds.ConvolutionKernel = "B45f"
    request = Dataset()
    request.RequestedProcedureID = PHI["accession"]
    request.ScheduledProcedureStepDescription = PHI["study_description"]
    ds.RequestAttributesSequence = [request]
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.44444444444444444444"
    ds.ReferencedImageSequence = [reference]
    ds.add_new(0x00091010, "LO", PHI["private"])
    ds.file_meta.SourceApplicationEntityTitle = "QUACKENBUSH_PACS"
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dataset_leaves_no_phi_and_keeps_geometry_and_pixels():
    ds = phi_dataset()
    assert leaks(dicom_bytes(ds).decode("latin-1"))
    salt = new_salt()
    clean = anonymise_dataset(ds, salt)
    raw = dicom_bytes(clean).decode("latin-1")
    assert leaks(raw) == []
    assert "QUACKENBUSH" not in raw.upper() and "44444444444444444444" not in raw
    assert ds.PatientName == PHI["patient_name"]  # a copy: the original is untouched
    back = pydicom.dcmread(io.BytesIO(dicom_bytes(clean)))
    # Type 2 attributes stay, empty; the others are gone.
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime"):
        assert keyword in back and not back[keyword].value, keyword
    for keyword in ("AccessionNumber", "ReferringPhysicianName", "StudyID"):
        assert keyword in back and not back[keyword].value, keyword
    for keyword in (
        "InstitutionName", "InstitutionAddress", "PerformingPhysicianName", "OperatorsName", "StationName",
        "DeviceSerialNumber", "StudyDescription", "SeriesDescription", "SeriesDate", "AcquisitionDateTime",
        "PatientAge", "OtherPatientIDs", "RequestAttributesSequence", "ImageComments", "ProtocolName",
    ):  # fmt: skip
        assert keyword not in back, keyword
    assert not any(element.tag.is_private for element in back)
    assert back.PatientIdentityRemoved == "YES"
    assert back.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    # UIDs: instances remapped consistently with the report; classes kept.
    assert back.StudyInstanceUID == remap_uid(STUDY_UID, salt)
    assert back.SeriesInstanceUID == remap_uid(SERIES_UID, salt)
    assert back.FrameOfReferenceUID == remap_uid(FRAME_UID, salt)
    assert back.SOPInstanceUID == remap_uid(ds.SOPInstanceUID, salt)
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.SOPClassUID == CTImageStorage and back.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert back.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    report, _ = phi_report()
    assert anonymised(report, salt).study["study_uid"] == back.StudyInstanceUID
    # What the images need is all there.
    for keyword in (
        "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows",
        "Columns", "RescaleIntercept", "RescaleSlope", "Manufacturer", "ConvolutionKernel", "Modality",
        "InstanceNumber",
    ):  # fmt: skip
        assert back[keyword].value == ds[keyword].value, keyword
    np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    # The same salt gives the same UIDs; another salt others.
    again = anonymise_dataset(ds, salt)
    assert again.SOPInstanceUID == back.SOPInstanceUID
    assert anonymise_dataset(ds, new_salt()).SOPInstanceUID != back.SOPInstanceUID


def info_output(capsys, *argv: str) -> str:
    """``python main.py info ARGV`` in this process: what it prints."""
    import argparse

    from core.cli import info

    parser = argparse.ArgumentParser()
    info.add_parser(parser.add_subparsers())
    args = parser.parse_args(["info", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_info_anonymise_shows_nothing_the_anonymised_sr_would_not(tmp_path, capsys):
    """Every PS3.15 Basic Profile attribute of ``phi_dataset`` set, in a folder and in file names that
    carry the patient's name: ``info --anonymise`` (text and JSON, with a loaded volume and a problem
    that names a file) shows none of it, nor the original UIDs, nor any path."""
    from pydicom.uid import generate_uid

    folder = tmp_path / "Quackenbush Ermintrude"
    folder.mkdir()
    uids = set(ORIGINAL_UIDS)
    for k in range(4):
        ds = phi_dataset()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-10.0, -12.0, 2.5 * k]
        if k == 3:
            del ds.ImagePositionPatient  # a warning that names this file as its example
        ds.save_as(folder / f"Quackenbush-{k}.dcm", enforce_file_format=True)
        uids.add(ds.SOPInstanceUID)
    (folder / "Quackenbush notes.bin").write_bytes(b"not dicom")

    plain = info_output(capsys, str(folder), "--load")
    assert "Quackenbush-3.dcm" in plain and leaks(plain)  # the values are there to be left out
    for argv in (["--load"], ["--load", "--json"]):
        shown = info_output(capsys, str(folder), "--anonymise", *argv)
        assert leaks(shown) == []
        assert [uid for uid in uids if uid in shown] == []
        assert str(tmp_path) not in shown and "Quackenbush" not in shown
        assert "anonymous-1" in shown and "(withheld)" in shown
    document = json.loads(shown)
    series = document["patients"][0]["studies"][0]["series"][0]
    assert document["volume"]["series_uid"] == series["series_uid"]  # one salt: still the same series
    assert series["number"] == 2 and series["modality"] == "CT"  # what the SR keeps, kept
