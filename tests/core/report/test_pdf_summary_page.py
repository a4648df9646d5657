"""The DICOM values as the printed report writes them (page 1 and the running header)."""

from __future__ import annotations

import datetime as dt

from core.report.pdf_summary_page import created_at, dicom_date, person_name


def test_dicom_dates_and_person_names_are_written_for_people():
    assert (
        dicom_date("20240301") == "2024-03-01" and dicom_date(" 2024 ") == "2024" and dicom_date(None) == ""
    )
    assert person_name("DOE^JANE^A") == "DOE, JANE A"
    assert person_name("DOE^JANE=ドウ^ジェーン") == "DOE, JANE"  # the alphabetic representation only
    assert person_name("^JANE") == "JANE" and person_name("DOE") == "DOE" and person_name(None) == ""


def test_the_creation_time_is_utc_when_it_has_no_zone_and_now_when_unreadable():
    assert created_at("2026-01-02T03:04:05") == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert created_at("not a time").tzinfo is not None
