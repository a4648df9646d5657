"""DIMSE against a real Orthanc: echo and its failures, C-FIND (filters, limit, Unicode), series listing,
C-GET (whole, resumed, cancelled, server killed mid-transfer) and C-STORE read back unchanged."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import pydicom
import pytest
from pydicom.uid import generate_uid

from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.nodes import Settings, resolve
from core.pacs.query import Query
from core.util.cancellation import Cancelled
from tests.core.pacs.conftest import CT_SLICES, UNICODE_NAME
from tests.dicom_factory import spoil_files, write_series


def node_of(server, **changes):
    return replace(resolve(server.inline, Settings()), **changes)


def files_under(root):
    return sorted(p for p in root.rglob("*.dcm"))


def test_echo_reachable(orthanc):
    assert client.echo(node_of(orthanc)).startswith("reachable")


def test_wrong_called_ae_title_is_rejected_with_the_reason(orthanc):
    with pytest.raises(PacsError, match="association rejected: Called AE title not recognised"):
        client.echo(node_of(orthanc, aet="NOT_ORTHANC"))


def test_closed_port_fails_at_once():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again once the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(PacsError, match=f"connection refused: nothing listens on port {port}"):
        client.echo(resolve(f"ANY@127.0.0.1:{port}", Settings(timeout_s=5)))
    assert time.monotonic() - started < 5


def test_silent_server_fails_within_the_timeout():
    with socket.socket() as sock:  # accepts connections (the kernel does) and never says a word
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        node = resolve(f"ANY@127.0.0.1:{sock.getsockname()[1]}", Settings(timeout_s=2))
        started = time.monotonic()
        with pytest.raises(PacsError, match="timeout"):
            client.echo(node)
        assert time.monotonic() - started < 2 + 3  # the timeout, and room for a loaded machine


def test_tls_to_a_plain_server_is_a_tls_failure(orthanc):
    with pytest.raises(PacsError, match="TLS failure"):
        client.echo(node_of(orthanc, tls=True, timeout_s=5))


def test_find_by_patient_date_accession_and_modality(orthanc, demo):
    node = node_of(orthanc)
    for query in (
        Query(patient_name="pacs^*"),
        Query(patient_id="PACS-001"),
        Query(accession="ACC-19"),
        Query(patient_id="PACS-001", date_from="20251231", date_to="20260102", modality="CT"),
    ):
        found = client.find(node, query)
        assert [s.study_uid for s in found.studies] == [demo.study_uid], query
        assert not found.limited
    match = found.studies[0]
    assert match.patient_name == "Pacs^Demo"  # counts: other tests may store an SR or PDF in it
    assert match.series >= 2 and match.instances >= CT_SLICES + 2
    assert client.find(node, Query(patient_id="PACS-001", date_from="20270101")).studies == []


def test_unicode_patient_name_found_and_read_back(orthanc, demo):
    found = client.find(node_of(orthanc), Query(patient_name="Müller*"))
    assert [(s.study_uid, s.patient_name) for s in found.studies] == [(demo.unicode_study, UNICODE_NAME)]


def test_series_listed_with_ct_flagged(orthanc, demo):
    series = {s.series_uid: s for s in client.list_series(node_of(orthanc), demo.study_uid)}
    assert series[demo.ct_series].is_ct and series[demo.ct_series].instances == CT_SLICES
    assert not series[demo.other_series].is_ct and series[demo.other_series].modality == "OT"


def test_get_writes_every_instance_unchanged_then_resumes_without_duplicates(orthanc, demo, tmp_path):
    node, seen = node_of(orthanc), []
    both = [demo.ct_series, demo.other_series]  # not what other tests may have stored in the study
    done = client.get(
        node,
        demo.study_uid,
        tmp_path,
        series_uids=both,
        progress=lambda s, d, t: seen.append((s.series_uid, d, t)),
    )
    assert (done.received, done.skipped) == (CT_SLICES + 2, 0)
    assert (demo.ct_series, CT_SLICES, CT_SLICES) in seen  # progress per series, up to its total
    local = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in demo.ct_files}
    got = files_under(tmp_path / demo.study_uid / demo.ct_series)
    assert len(got) == CT_SLICES
    for path in got:
        ds = pydicom.dcmread(path)
        assert ds.PixelData == local[ds.SOPInstanceUID].PixelData and path.stem == ds.SOPInstanceUID
    got[0].unlink()
    got[1].unlink()
    again = client.get(node, demo.study_uid, tmp_path, series_uids=both)
    assert (again.received, again.skipped) == (2, CT_SLICES)
    assert len(files_under(tmp_path)) == CT_SLICES + 2


def test_cancel_keeps_what_arrived_and_the_next_try_finishes(orthanc, demo, tmp_path):
    node = node_of(orthanc)
    with pytest.raises(Cancelled):
        client.get(
            node,
            demo.study_uid,
            tmp_path,
            series_uids=[demo.ct_series],
            cancelled=lambda: bool(files_under(tmp_path)),
        )
    kept = len(files_under(tmp_path))
    assert kept == 1  # the cancel is seen as the next instance arrives, whatever the caller's thread does
    done = client.get(node, demo.study_uid, tmp_path, series_uids=[demo.ct_series])
    assert (done.received, done.skipped) == (CT_SLICES - kept, kept)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_server_killed_mid_transfer_then_resumed_without_duplicates(own_orthanc, tmp_path):
    # the kill comes from the progress callback, which may lag the arrivals: enough slices that the
    # server is still sending when it dies
    slices = 40
    study = generate_uid()
    paths = write_series(tmp_path / "big", slices, study_uid=study)
    own_orthanc.upload(paths)
    node = node_of(own_orthanc, timeout_s=5)

    def kill_at_three(series, done, total):
        if done >= 3:
            own_orthanc.kill()

    out = tmp_path / "out"
    with pytest.raises(PacsError, match="run again"):
        client.get(node, study, out, progress=kill_at_three)
    kept = len(files_under(out))
    assert 3 <= kept < slices
    for path in files_under(out):
        pydicom.dcmread(path)  # whole files only
    own_orthanc.start()
    done = client.get(node, study, out)
    assert (done.received, done.skipped) == (slices - kept, kept)
    stems = [p.stem for p in files_under(out)]
    assert len(stems) == len(set(stems)) == slices


def test_huge_find_answer_is_limited(own_orthanc, tmp_path):
    paths = []
    for k in range(25):
        paths += write_series(tmp_path / f"s{k}", 1)
    spoil_files(paths, {"PatientID": "MANY"})
    own_orthanc.upload(paths)
    node = node_of(own_orthanc)
    found = client.find(node, Query(patient_id="MANY", limit=10))
    assert len(found.studies) == 10 and found.limited
    every = client.find(node, Query(patient_id="MANY", limit=25))
    assert len({s.study_uid for s in every.studies}) == 25 and not every.limited
    # the same through QIDO-RS, asked page by page
    import core.pacs.web as web

    web_node = resolve(own_orthanc.web_url, Settings())
    limited = client.find(web_node, Query(patient_id="MANY", limit=10))
    assert len(limited.studies) == 10 and limited.limited
    web.PAGE, page = 4, web.PAGE
    try:
        paged = client.find(web_node, Query(patient_id="MANY", limit=100))
    finally:
        web.PAGE = page
    assert len({s.study_uid for s in paged.studies}) == 25 and not paged.limited
