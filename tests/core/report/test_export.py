"""core.report.export: the writer shared by ``main.py report`` and the app's Export dialog, used directly."""

from __future__ import annotations

import pytest

from core.report.export import (
    FORMATS,
    existing,
    parse_formats,
    phi_values,
    scrub,
    targets,
    write_order,
    write_report,
)
from core.volume import VolumeMetadata
from tests.core.report.test_tables import make_report, make_volume


def test_formats_parse_in_the_canonical_order_and_bad_ones_are_named():
    assert parse_formats("json, CSV") == ("csv", "json")
    assert parse_formats(["pdf", "sr"]) == ("sr", "pdf")
    with pytest.raises(ValueError, match="unknown format xml"):
        parse_formats("csv,xml")
    with pytest.raises(ValueError, match="no format chosen"):
        parse_formats(" , ")


def test_write_order_puts_the_cheap_formats_first():
    assert write_order(FORMATS) == ("csv", "json", "sr", "pdf")
    assert write_order(["pdf", "json"]) == ("json", "pdf")


def test_existing_names_only_the_files_an_export_would_replace(tmp_path):
    (tmp_path / "ranking.csv").write_text("old")
    (tmp_path / "report.pdf").write_text("old")
    assert targets(tmp_path, ["csv", "json"]) == {
        "csv": tmp_path / "ranking.csv",
        "json": tmp_path / "report.json",
    }
    assert existing(tmp_path, ["csv", "json"]) == [tmp_path / "ranking.csv"]


def test_write_report_records_one_outcome_per_format_and_keeps_existing_files(tmp_path):
    report = make_report()
    (tmp_path / "report.json").write_text("old")
    done = write_report(report, tmp_path, ["csv", "json", "sr", "pdf"])
    outcome = {o.format: o for o in done.outcomes}
    assert [o.format for o in done.outcomes] == ["csv", "json", "sr", "pdf"]
    assert outcome["csv"].written and (tmp_path / "ranking.csv").is_file()
    assert outcome["json"].error == "the file exists and was not overwritten"
    assert (tmp_path / "report.json").read_text() == "old"
    assert not outcome["sr"].written and not outcome["pdf"].written  # no DICOM files, no volume given
    assert done.written == [tmp_path / "ranking.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranking.csv", "report.json"]  # no temporaries
    again = write_report(report, tmp_path, ["json"], overwrite=True)
    assert (
        again.written == [tmp_path / "report.json"] and '"schema"' in (tmp_path / "report.json").read_text()
    )


def test_scrub_replaces_what_names_the_patient():
    meta = VolumeMetadata(patient_name="Doe^Jane", patient_id="PID-1234", study_uid="1.2", series_uid="1.2.3")
    report = make_report(make_volume(meta))
    assert "Doe^Jane" in phi_values(report) and "Jane" in phi_values(report)
    assert scrub("cannot write Doe^Jane (PID-1234), Jane", report) == "cannot write *** (***), ***"
