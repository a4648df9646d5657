"""A real Orthanc for the PACS tests: one per session on free loopback ports with a temporary storage,
holding a small phantom study (a CT series and a non-CT series) and a study with a Unicode name.

Without Orthanc (``sh scripts/system-packages.sh`` installs it) these tests skip with the reason,
except under CI=true, where they fail."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from tests.core.pacs.orthanc_server import OrthancServer, missing_reason
from tests.dicom_factory import spoil_files, write_series

CT_SLICES = 6
UNICODE_NAME = "Müller^Zoë"


def need(tool_reason: str) -> None:
    """Skip with ``tool_reason`` (fail under CI=true) when it is not empty."""
    if not tool_reason:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{tool_reason}; CI must run this test (sh scripts/system-packages.sh installs it)")
    pytest.skip(tool_reason)


@dataclass
class Demo:
    study_uid: str
    ct_series: str
    other_series: str
    ct_files: list[Path]
    unicode_study: str


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    need(missing_reason())
    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.kill()  # its storage is temporary: nothing to shut down cleanly


@pytest.fixture(scope="session")
def demo(orthanc, tmp_path_factory) -> Demo:
    """Upload the phantom study (REST POST /instances) once per session."""
    folder = tmp_path_factory.mktemp("demo-study")
    study = generate_uid()
    ct = write_series(folder / "ct", CT_SLICES, study_uid=study)
    spoil_files(ct, {"AccessionNumber": "ACC-19", "PatientID": "PACS-001", "PatientName": "Pacs^Demo"})
    other = write_series(folder / "other", 2, study_uid=study)
    spoil_files(other, {"Modality": "OT", "PatientID": "PACS-001", "PatientName": "Pacs^Demo"})
    unicode_study = generate_uid()
    named = write_series(folder / "unicode", 1, study_uid=unicode_study)
    spoil_files(
        named, {"SpecificCharacterSet": "ISO_IR 192", "PatientName": UNICODE_NAME, "PatientID": "UNI-1"}
    )
    orthanc.upload(ct + other + named)
    import pydicom

    ct_series = str(pydicom.dcmread(ct[0], stop_before_pixels=True).SeriesInstanceUID)
    other_series = str(pydicom.dcmread(other[0], stop_before_pixels=True).SeriesInstanceUID)
    return Demo(study, ct_series, other_series, ct, unicode_study)


@pytest.fixture
def own_orthanc(tmp_path):
    """An Orthanc of this test alone (to kill it mid-transfer or fill it without disturbing the others)."""
    need(missing_reason())
    server = OrthancServer(tmp_path / "orthanc").start()
    yield server
    server.kill()  # its storage is temporary: nothing to shut down cleanly


@pytest.fixture
def tool():
    def find(name: str) -> str:
        path = shutil.which(name)
        need("" if path else f"{name} is not installed (dcmtk; sh scripts/system-packages.sh)")
        return path

    return find
