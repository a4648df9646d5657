"""The PACS as a source of priors (``core.followup.pacs_priors``) against a real Orthanc: the prior that
is only on the PACS is listed and is the default, a local copy is preferred, identities are compared
from the answer, and a PACS that is down is one note while the folder still answers."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from core.dicom.catalogue import catalogue
from core.followup.pacs_priors import PacsSource
from core.followup.priors import CatalogueSource, PatientIdentity, find_priors
from core.pacs.nodes import Settings, resolve
from tests.dicom_factory import spoil_files, write_series

PATIENT = PatientIdentity("PP-19", "Prior^Pacs", "19480305")


def study(
    folder: Path, date: str, pid="PP-19", name="Prior^Pacs", birth="19480305"
) -> tuple[str, list[Path]]:
    uid = generate_uid()
    paths = write_series(folder, 2, study_uid=uid)
    values = {"PatientID": pid, "PatientName": name, "StudyDate": date, "PatientBirthDate": birth}
    spoil_files(paths, values | {"StudyDescription": "LDCT"})
    return uid, paths


@dataclass
class History:
    current: str
    prior: str
    lookalike: str  # same Patient ID, another birth date: listed, to be confirmed
    stranger: str  # another patient altogether: never listed
    local: Path  # the folder the current study was opened from (the prior is not in it)
    prior_files: list[Path]


@pytest.fixture(scope="module")
def history(orthanc, tmp_path_factory) -> History:
    root = tmp_path_factory.mktemp("pacs-priors")
    current, current_files = study(root / "local" / "current", "20240610")
    prior, prior_files = study(root / "pacs-only" / "prior", "20230605")
    lookalike, lookalike_files = study(root / "pacs-only" / "lookalike", "20230901", birth="19480306")
    stranger, stranger_files = study(
        root / "pacs-only" / "stranger", "20230101", pid="OTHER-7", name="Else^Who"
    )
    orthanc.upload(current_files + prior_files + lookalike_files + stranger_files)
    return History(current, prior, lookalike, stranger, root / "local", prior_files)


def local_source(folder: Path) -> CatalogueSource:
    return CatalogueSource(catalogue(folder))


@pytest.mark.parametrize("protocol", ["dimse", "web"])
def test_the_prior_only_on_the_pacs_is_listed_and_is_the_default(orthanc, history, protocol):
    node = resolve(orthanc.inline if protocol == "dimse" else orthanc.web_url, Settings())
    found = find_priors(PATIENT, history.current, "20240610", [local_source(history.local), PacsSource(node)])
    listed = {c.study.study_uid: c for c in found.candidates}
    assert set(listed) == {history.prior, history.lookalike}  # the current study and the stranger are not
    assert listed[history.lookalike].mismatches == ("birth date differs",)
    assert found.default is not None and found.default.study.study_uid == history.prior
    prior = found.default.study
    assert prior.node == node and prior.location == ""  # on the PACS, not yet here
    assert prior.date == "20230605" and prior.patient == PATIENT and prior.source == f"PACS {node.label}"
    assert found.problems == ()


def test_a_local_copy_of_the_prior_is_opened_from_here(orthanc, history, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    for path in history.prior_files:
        (here / path.name).write_bytes(path.read_bytes())
    node = resolve(orthanc.inline, Settings())
    found = find_priors(PATIENT, history.current, "20240610", [local_source(here), PacsSource(node)])
    assert found.default.study.study_uid == history.prior
    assert found.default.study.node is None and found.default.study.location == str(here)


def test_a_pacs_that_is_down_is_one_note_and_the_folder_still_answers(history, tmp_path):
    here = tmp_path / "here"
    study(here / "prior", "20220601")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    node = resolve(f"ANY@127.0.0.1:{port}", Settings(timeout_s=5))
    found = find_priors(PATIENT, history.current, "20240610", [local_source(here), PacsSource(node)])
    assert found.default is not None and found.default.study.node is None
    assert len(found.problems) == 1
    note = found.problems[0]
    assert note.startswith("PACS not asked: ANY@127.0.0.1") and "connection refused" in note
    assert "\n" not in note
    assert not any(value in note for value in ("PP-19", "Prior", "Pacs", "19480305"))
