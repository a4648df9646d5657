"""A C-GET server that answers with an instance of another study (another patient) must not have it
filed under the study asked for: it is refused and the retrieval fails, naming what happened.

The misbehaving server is a few lines of pynetdicom (Orthanc never does this)."""

from __future__ import annotations

import pydicom
import pytest
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.nodes import Settings, resolve
from tests.core.pacs.orthanc_server import free_port
from tests.dicom_factory import write_series


@pytest.fixture
def liar(tmp_path):
    """A server listing one series of study A with one instance, and sending an instance of study B."""
    asked = write_series(tmp_path / "a", 1)[0]
    other = pydicom.dcmread(write_series(tmp_path / "b", 1)[0])
    listed = pydicom.dcmread(asked)
    other.SOPInstanceUID = listed.SOPInstanceUID  # same SOP UID: only the study and series differ

    def on_find(event):
        level = event.identifier.QueryRetrieveLevel
        answer = pydicom.Dataset()
        answer.QueryRetrieveLevel = level
        answer.StudyInstanceUID = listed.StudyInstanceUID
        answer.SeriesInstanceUID = listed.SeriesInstanceUID
        answer.Modality = "CT"
        if level == "IMAGE":
            answer.SOPInstanceUID = listed.SOPInstanceUID
        yield 0xFF00, answer

    def on_get(event):
        yield 1
        yield 0xFF00, other

    ae = AE("LIAR")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, scp_role=True, scu_role=True)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get)]
    )
    yield f"LIAR@127.0.0.1:{port}", listed
    server.shutdown()


def test_an_instance_of_another_study_is_refused(liar, tmp_path):
    address, listed = liar
    with pytest.raises(PacsError, match="not received"):
        client.get(resolve(address, Settings(timeout_s=5)), listed.StudyInstanceUID, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_wado_rs_refuses_an_instance_of_another_study(orthanc, demo, tmp_path, monkeypatch):
    from dicomweb_client.api import DICOMwebClient

    stranger = pydicom.dcmread(write_series(tmp_path / "b", 1)[0])
    monkeypatch.setattr(DICOMwebClient, "iter_series", lambda self, *args, **kwargs: iter([stranger]))
    node = resolve(orthanc.web_url, Settings())
    with pytest.raises(PacsError, match="another series than the one asked for"):
        client.get(node, demo.study_uid, tmp_path / "out", series_uids=[demo.ct_series])
    assert not list((tmp_path / "out").rglob("*.dcm"))
