"""Finding a patient's prior studies: folder catalogue and sessions sources, identity checks, ordering."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydicom.uid import generate_uid

from core.dicom.catalogue import catalogue
from core.followup.priors import (
    CatalogueSource,
    PatientIdentity,
    SessionSource,
    StudyRef,
    find_priors,
)
from tests.dicom_factory import spoil_files, write_series

PATIENT = PatientIdentity("P-17", "Doe^Jane", "19510203")


def study(folder: Path, date: str, pid="P-17", name="Doe^Jane", birth="19510203", description="LDCT") -> str:
    uid = generate_uid()
    paths = write_series(folder, 2, study_uid=uid)
    values = {"PatientID": pid, "PatientName": name, "StudyDate": date, "StudyDescription": description}
    spoil_files(paths, values | {"PatientBirthDate": birth})
    return uid


@pytest.fixture
def archive(tmp_path):
    """One folder with the current study, its history, lookalikes and another patient."""
    root = tmp_path / "archive"
    uids = {
        "current": study(root / "current", "20240610"),
        "last-year": study(root / "last", "20230605", name="DOE^JANE^^"),  # same name, other spelling
        "two-years": study(root / "older", "20220601"),
        "later": study(root / "later", "20250101"),  # after the current study: never the default
        "other-birth": study(root / "otherbirth", "20231201", birth="19600101"),  # same ID, other person?
        "other-id": study(root / "otherid", "20231101", pid="X-99"),  # same person, another ID?
        "stranger": study(root / "stranger", "20231001", pid="S-1", name="Roe^Rich", birth="19700101"),
    }
    return root, uids


def test_catalogue_source_lists_the_patient_history_newest_first_with_the_default_prior(archive):
    root, uids = archive
    priors = find_priors(PATIENT, uids["current"], "20240610", [CatalogueSource(catalogue(root))])
    by_uid = {c.study.study_uid: c for c in priors.candidates}
    assert uids["current"] not in by_uid and uids["stranger"] not in by_uid
    order = [c.study.study_uid for c in priors.candidates]
    names = ["later", "other-birth", "other-id", "last-year", "two-years"]
    assert order == [uids[n] for n in names]
    # the most recent earlier study that matches on ID, name and birth date; the more recent
    # lookalikes need confirmation and are never the default
    assert priors.default is by_uid[uids["last-year"]]
    assert by_uid[uids["other-birth"]].mismatches == ("birth date differs",)
    assert by_uid[uids["other-id"]].mismatches == ("Patient ID differs",)
    assert by_uid[uids["later"]].mismatches == ()
    ref = by_uid[uids["two-years"]].study
    assert (ref.date, ref.description, ref.source) == ("20220601", "LDCT", "folder")
    assert Path(ref.location) == root / "older"


def test_a_missing_birth_date_needs_confirmation_and_is_never_the_default(tmp_path):
    current = study(tmp_path / "now", "20240610")
    study(tmp_path / "then", "20230610", birth="")
    priors = find_priors(PATIENT, current, "20240610", [CatalogueSource(catalogue(tmp_path))])
    assert [c.mismatches for c in priors.candidates] == [("birth date missing",)]
    assert priors.candidates[0].needs_confirmation and priors.default is None


def test_identity_comparison_names_fields_never_values():
    other = PatientIdentity("P-17", "Doe^Janet", "")
    assert PATIENT.mismatches(other) == ("name differs", "birth date missing")
    assert PATIENT.mismatches(PatientIdentity("P-17", " doe^jane^^ ", "19510203")) == ()
    assert not any("Jane" in m or "1951" in m for m in PATIENT.mismatches(other))


def test_session_source_reads_each_study_where_it_was_opened_and_reports_vanished_ones(archive, tmp_path):
    root, uids = archive
    gone = str(tmp_path / "deleted-folder")
    source = SessionSource([(uids["two-years"], str(root / "older")), (generate_uid(), gone)])
    priors = find_priors(PATIENT, uids["current"], "20240610", [source])
    assert [c.study.study_uid for c in priors.candidates] == [uids["two-years"]]
    assert priors.candidates[0].study.location == str(root / "older")
    assert priors.default.study.source == "sessions"
    assert priors.problems == (
        "1 session(s) not considered: the study is no longer readable as DICOM where it was opened from",
    )
    assert "deleted-folder" not in priors.problems[0]


def test_session_source_from_a_store_counts_unreadable_sessions(archive, tmp_path):
    root, uids = archive
    good, bad = tmp_path / "s1.json", tmp_path / "s2.json"
    good.write_text(json.dumps({"source": str(root / "last")}))
    bad.write_text("{ not json")
    store = SimpleNamespace(
        summaries=lambda: [
            SimpleNamespace(study_uid=uids["last-year"], path=good),
            SimpleNamespace(study_uid="1.2.3", path=bad),
        ]
    )
    source = SessionSource.from_store(store)
    assert source.entries == [(uids["last-year"], str(root / "last"))]
    assert source.problems == ["1 saved session(s) could not be read"]


def test_a_study_known_to_two_sources_is_listed_once_as_the_first_lists_it(archive):
    root, uids = archive
    sessions = SessionSource([(uids["last-year"], str(root / "last"))])
    priors = find_priors(PATIENT, uids["current"], "20240610", [sessions, CatalogueSource(catalogue(root))])
    listed = [c.study.study_uid for c in priors.candidates]
    assert listed.count(uids["last-year"]) == 1
    assert priors.default.study.source == "sessions"


@dataclass
class ListSource:
    """Any other source (the PACS one to come) only has to list StudyRefs."""

    refs: list
    name: str = "list"
    problems: list = field(default_factory=list)

    def studies(self, patient):
        return iter(self.refs)


def test_undated_studies_come_last_and_are_never_the_default():
    refs = [
        StudyRef("1.1", "", "no date", "/a", PATIENT, "list"),
        StudyRef("1.2", "20200101", "old", "/b", PATIENT, "list"),
    ]
    priors = find_priors(PATIENT, "9.9", "20240101", [ListSource(refs)])
    assert [c.study.study_uid for c in priors.candidates] == ["1.2", "1.1"]
    assert priors.default.study.study_uid == "1.2"
    only_undated = find_priors(PATIENT, "9.9", "20240101", [ListSource(refs[:1])])
    assert only_undated.default is None
