"""The study's text in the views' corners: formatting, and the patient's name and ID left out when hidden."""

from __future__ import annotations

from core.imaging.corner_text import person_name, study_date, what, who_and_when
from core.volume import VolumeMetadata

META = VolumeMetadata(
    patient_name="DOE^JANE^A",
    patient_id="ID-7",
    study_date="20260131",
    series_description="Chest 1.0 B45f",
    slice_thickness=1.0,
    convolution_kernel="B45f",
)


def test_dicom_names_and_dates_read_as_a_reader_writes_them():
    assert person_name("DOE^JANE^A") == "DOE, JANE A"
    assert person_name("DOE") == "DOE" and person_name("^JANE") == "JANE" and person_name("") == ""
    assert study_date("20260131") == "2026-01-31" and study_date("2026") == "2026"


def test_the_corners_name_the_patient_study_and_series():
    assert who_and_when(META, hide_identity=False) == "DOE, JANE A\nID-7\n2026-01-31"
    assert what(META) == "Chest 1.0 B45f\n1 mm  B45f"


def test_hidden_or_anonymised_identity_leaves_only_the_date():
    assert who_and_when(META, hide_identity=True) == "2026-01-31"
    assert who_and_when(META.anonymised(), hide_identity=False) == "2026-01-31"
    assert what(VolumeMetadata()) == "" and who_and_when(VolumeMetadata(), hide_identity=False) == ""


def test_a_name_with_ideographic_and_phonetic_parts_shows_its_alphabetic_one():
    """Review: the corners had their own copy of person_name, without the PDF's rule for ``=``:
    "YAMADA^TAROU=山田^太郎=やまだ^たろう" showed as "YAMADA, TAROU=山田 太郎=やまだ たろう"."""
    assert person_name("YAMADA^TAROU=山田^太郎=やまだ^たろう") == "YAMADA, TAROU"
    assert person_name(" DOE ^ JANE ") == "DOE, JANE"
