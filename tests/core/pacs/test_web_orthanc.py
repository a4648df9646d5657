"""DICOMweb against a real Orthanc: QIDO ping and its failures, search, WADO-RS retrieval resumed without
duplicates, and STOW-RS / C-STORE of an SR and an Encapsulated PDF read back from Orthanc unchanged."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pydicom
import pytest
from highdicom.sr import (
    Comprehensive3DSR,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    TrackingIdentifier,
)
from pydicom.sr.codedict import codes

from core.pacs import client
from core.pacs.encapsulated_pdf import pdf_bytes, write_encapsulated_pdf
from core.pacs.errors import PacsError
from core.pacs.nodes import Settings, resolve
from core.pacs.query import Query
from tests.core.pacs.conftest import CT_SLICES, UNICODE_NAME

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"  # odd length: DICOM pads it


def web_node(server, **changes):
    return replace(resolve(server.web_url, Settings()), **changes)


def test_ping_and_its_failures(orthanc):
    assert client.echo(web_node(orthanc)).startswith("reachable")
    with pytest.raises(PacsError, match="HTTP 404"):
        client.echo(web_node(orthanc, url=orthanc.url + "/no-such-root"))


def test_a_closed_port_fails_within_the_timeout_without_retries(orthanc):
    # dicomweb-client's default retried a refused connection 5 times, waiting 1+2+4+8 s in between
    started = time.monotonic()
    with pytest.raises(PacsError, match="connection refused"):
        client.echo(web_node(orthanc, url="http://127.0.0.1:1/dicom-web", timeout_s=10))
    assert time.monotonic() - started < 10


def test_a_failed_search_names_neither_the_patient_nor_the_url_query(orthanc):
    node = web_node(orthanc, url=orthanc.url + "/no-such-root")
    with pytest.raises(PacsError) as caught:
        client.find(node, Query(patient_name="Secretname*"))
    assert "Secretname" not in str(caught.value) and "PatientName" not in str(caught.value)


def test_search_with_a_wildcard_and_unicode(orthanc, demo):
    node = web_node(orthanc)
    found = client.find(node, Query(patient_name="Pacs*", accession="ACC-19", modality="CT"))
    assert [s.study_uid for s in found.studies] == [demo.study_uid]
    # Orthanc 1.10's QIDO matches a non-ASCII name only in its folded form (MULLER*; Müller* finds
    # nothing): the name is searched by C-FIND (test_dimse_orthanc), read back here
    named = client.find(node, Query(patient_id="UNI-1"))
    assert [s.patient_name for s in named.studies] == [UNICODE_NAME]
    series = {s.series_uid: s.is_ct for s in client.list_series(node, demo.study_uid)}
    # (other tests may have stored an SR or a PDF in this study: more non-CT series)
    assert series[demo.ct_series] and not series[demo.other_series] and sum(series.values()) == 1


def test_wado_rs_retrieval_is_whole_and_resumes_without_duplicates(orthanc, demo, tmp_path):
    node = web_node(orthanc)
    done = client.get(node, demo.study_uid, tmp_path, series_uids=[demo.ct_series])
    assert (done.received, done.skipped) == (CT_SLICES, 0)
    local = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in demo.ct_files}
    got = sorted((tmp_path / demo.study_uid / demo.ct_series).glob("*.dcm"))
    assert {p.stem for p in got} == set(local)
    for path in got:
        assert pydicom.dcmread(path).PixelData == local[path.stem].PixelData
    got[2].unlink()
    again = client.get(node, demo.study_uid, tmp_path, series_uids=[demo.ct_series])
    assert (again.received, again.skipped) == (1, CT_SLICES - 1)
    assert len(list(tmp_path.rglob("*.dcm"))) == CT_SLICES


def sr_of(study: pydicom.Dataset) -> pydicom.Dataset:
    """A small TID 1500 SR of the study (highdicom), the kind of object the report sends."""
    for keyword in ("PatientBirthDate", "PatientSex", "StudyTime", "StudyID", "ReferringPhysicianName"):
        setattr(study, keyword, study.get(keyword, ""))
    observer = ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=PersonObserverIdentifyingAttributes(name="Reader^Test"),
    )
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=pydicom.uid.generate_uid(), identifier="nodule 1")
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    return Comprehensive3DSR(
        evidence=[study],
        content=report,
        series_number=99,
        series_instance_uid=pydicom.uid.generate_uid(),
        sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1,
    )


@pytest.mark.parametrize("protocol", ["dimse", "web"])
def test_sr_and_pdf_sent_back_are_stored_unchanged(orthanc, demo, tmp_path, protocol):
    study = pydicom.dcmread(demo.ct_files[0])
    sr_path, pdf_path = tmp_path / "report.dcm", tmp_path / "report.pdf"
    sr_of(study).save_as(sr_path, enforce_file_format=True)
    pdf_path.write_bytes(PDF)
    pdf_dicom = write_encapsulated_pdf(pdf_path, study, tmp_path / "report-pdf.dcm")
    before = {p: p.read_bytes() for p in (sr_path, pdf_dicom)}
    node = resolve(orthanc.inline if protocol == "dimse" else orthanc.web_url, Settings())
    results = client.send(node, [sr_path, pdf_dicom])
    assert [r.outcome for r in results] == ["success", "success"], results
    for path, sent in before.items():
        assert path.read_bytes() == sent
        ours = pydicom.dcmread(path)
        stored = pydicom.dcmread(io.BytesIO(orthanc.instance_file(str(ours.SOPInstanceUID))))
        assert stored == ours  # every element of the data set, as sent
        assert stored.StudyInstanceUID == demo.study_uid
    stored_pdf = pydicom.dcmread(
        io.BytesIO(orthanc.instance_file(str(pydicom.dcmread(pdf_dicom).SOPInstanceUID)))
    )
    assert pdf_bytes(stored_pdf) == PDF


def test_a_failed_send_is_logged_and_leaves_the_file(demo, tmp_path):
    from core.pacs import sendlog

    broken = tmp_path / "not-dicom.dcm"
    broken.write_bytes(b"hello")
    node = resolve("ANY@127.0.0.1:1", Settings(timeout_s=3))
    sr = tmp_path / "sr.dcm"
    sr_of(pydicom.dcmread(demo.ct_files[0])).save_as(sr, enforce_file_format=True)
    before = sr.read_bytes()
    results = client.send(node, [broken, sr])
    assert [r.outcome for r in results] == ["failure", "failure"]
    assert results[0].reason == "not a DICOM file" and "connection refused" in results[1].reason
    assert sr.read_bytes() == before
    logged = sendlog.log_path().read_text().splitlines()
    assert len(logged) == 2 and "failure" in logged[1]


def test_basic_auth_from_the_settings_and_the_kept_secret(tmp_path, monkeypatch, capsys):
    import keyring
    from keyring.backends import fail

    from core.pacs import credentials
    from core.pacs.nodes import WebNode, save_settings
    from main import main
    from tests.core.pacs.conftest import need
    from tests.core.pacs.orthanc_server import OrthancServer, missing_reason

    need(missing_reason())
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # the secret goes to the user-only file
    server = OrthancServer(
        tmp_path / "orthanc", AuthenticationEnabled=True, RegisteredUsers={"alice": "wonder-land-7"}
    ).start()
    try:
        node = WebNode(server.web_url, name="guarded", auth="basic", username="alice")
        save_settings(Settings(nodes={"guarded": node}))
        with pytest.raises(PacsError, match="HTTP 401 authentication refused"):
            client.echo(resolve("guarded"))
        monkeypatch.setattr("sys.stdin", io.StringIO("wonder-land-7\n"))
        assert main(["pacs", "secret", "guarded"]) == 0
        assert "wonder-land-7" not in capsys.readouterr().out
        assert credentials.load("guarded") == "wonder-land-7"
        assert main(["pacs", "echo", "guarded"]) == 0
        assert "reachable" in capsys.readouterr().out
        monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
        assert main(["pacs", "secret", "guarded"]) == 2
        assert credentials.load("guarded") == "wonder-land-7"
    finally:
        server.kill()
        keyring.set_keyring(previous)
