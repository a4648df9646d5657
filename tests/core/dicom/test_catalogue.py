"""Header-only catalogue of generated folders: grouping, skipped files, flags, JSON."""

from __future__ import annotations

import json

import pydicom
import pytest

from core.dicom.catalogue import SCHEMA, catalogue
from core.dicom.errors import SeriesNotFoundError
from core.report.anonymise import anonymised_info, new_salt
from tests.dicom_factory import write_series


@pytest.fixture
def mixed_folder(tmp_path):
    root = tmp_path / "study"
    chest = write_series(root / "deep" / "nested", 6)
    scout = write_series(root / "deep", 2, study_uid=pydicom.dcmread(chest[0]).StudyInstanceUID)
    for path in scout:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "Scout"
        ds.save_as(path)
    mr = write_series(root / "other", 3)
    for path in mr:
        ds = pydicom.dcmread(path)
        ds.Modality, ds.PatientID = "MR", "TEST-002"
        ds.save_as(path)
    (root / "readme.txt").write_text("hello")
    (root / "markers.json").write_text("{}")
    (root / "ground_truth.json").write_text("{}")
    (root / "follow_up_truth.json").write_text("{}")  # the demo's: its prior's truth, not a problem
    (root / "other.json").write_text("{}")
    (root / "empty.dcm").write_bytes(b"")
    (root / "volume.nii.gz").write_bytes(b"\x1f\x8b")
    return root


def test_groups_patients_studies_series_and_lists_skips(mixed_folder):
    found = catalogue(mixed_folder)
    assert [p.patient_id for p in found.patients] == ["TEST-001", "TEST-002"]
    chest_patient = found.patients[0]
    assert len(chest_patient.studies) == 1
    assert sorted(s.n_images for s in chest_patient.studies[0].series) == [2, 6]
    skipped = {s.path.name: s.reason for s in found.skipped}
    assert set(skipped) == {"readme.txt", "empty.dcm", "volume.nii.gz", "other.json"}
    assert skipped["readme.txt"] == "a TXT file, not DICOM"
    # the study's own files are accounted for as companions, not "skipped"
    assert sorted(p.name for p in found.companions) == [
        "follow_up_truth.json",
        "ground_truth.json",
        "markers.json",
    ]
    assert "not a DICOM file" in skipped["empty.dcm"]
    assert "open it directly" in skipped["volume.nii.gz"]


def test_non_ct_series_is_listed_and_flagged(mixed_folder):
    found = catalogue(mixed_folder)
    mr = next(s for s in found.all_series() if s.modality == "MR")
    assert not mr.is_ct and any("not CT" in p for p in mr.problems)


def test_find_series_picks_the_largest_ct_or_the_uid(mixed_folder):
    found = catalogue(mixed_folder)
    assert found.find_series().n_images == 6
    scout = next(s for s in found.all_series() if s.description == "Scout")
    assert found.find_series(scout.series_uid) is scout
    with pytest.raises(SeriesNotFoundError, match=r"no series with UID 1\.2\.3"):
        found.find_series("1.2.3")


def test_no_ct_is_a_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(SeriesNotFoundError, match="no CT series found"):
        catalogue(tmp_path).find_series()


def test_catalogue_reads_a_list_of_files_and_flags_geometry(tmp_path):
    files = write_series(tmp_path, 5, shuffle_names=False)
    files[2].unlink()
    found = catalogue([f for f in files if f.exists()])
    (series,) = list(found.all_series())
    assert series.n_images == 4 and series.slice_spacing == pytest.approx(2.5)
    assert any("gap" in p for p in series.problems)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(SeriesNotFoundError, match="no such file or folder"):
        catalogue(tmp_path / "nope")


def test_json_is_stable_and_can_be_anonymised(mixed_folder):
    found = catalogue(mixed_folder)
    plain = found.to_dict()
    assert plain["schema"] == SCHEMA
    series = plain["patients"][0]["studies"][0]["series"][0]
    assert set(series) == {
        "series_uid", "modality", "is_ct", "description", "number", "date", "n_files", "n_images",
        "rows", "columns", "pixel_spacing_mm", "slice_thickness_mm", "slice_spacing_mm", "problems",
        "loadable",
    }  # fmt: skip
    anonymous = json.dumps(anonymised_info(plain, new_salt()))
    assert "TEST-001" not in anonymous and "Test^Patient" not in anonymous and "20260101" not in anonymous
    assert "TEST-001" in json.dumps(plain)
