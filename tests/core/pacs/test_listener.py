"""The listener (storage SCP) receiving a push from dcmtk's storescu: written atomically into the cache
at its UIDs, a second push not written twice, an unknown calling AE refused, the disk cap kept."""

from __future__ import annotations

import subprocess

import pydicom
import pytest

from core.pacs import storage
from core.pacs.listener import Listener
from tests.core.pacs.orthanc_server import free_port
from tests.dicom_factory import write_series


@pytest.fixture
def listening(tmp_path):
    started = []

    def start(**options):
        listener = Listener(
            aet="MTMR", port=free_port(), root=tmp_path / "cache", host="127.0.0.1", **options
        )
        started.append(listener.start())
        return listener

    yield start
    for server in started:
        server.shutdown()


def push(storescu: str, listener: Listener, calling: str, *paths) -> subprocess.CompletedProcess:
    command = [
        storescu,
        "-aet",
        calling,
        "-aec",
        listener.aet,
        "127.0.0.1",
        str(listener.port),
        *map(str, paths),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_push_from_an_allowed_ae_is_stored_once(listening, tool, tmp_path):
    storescu = tool("storescu")
    paths = write_series(tmp_path / "pushed", 3)
    listener = listening(allowed=["PUSHER"])
    assert push(storescu, listener, "PUSHER", *paths).returncode == 0
    ds = pydicom.dcmread(paths[0])
    stored = storage.instance_path(
        listener.root, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    assert pydicom.dcmread(stored).PixelData == ds.PixelData
    assert listener.received == 3
    assert push(storescu, listener, "PUSHER", paths[0]).returncode == 0
    assert listener.received == 3 and len(list(listener.root.rglob("*.dcm"))) == 3


def test_an_unknown_calling_ae_is_refused_and_nothing_written(listening, tool, tmp_path):
    listener = listening(allowed=["PUSHER"])
    answer = push(tool("storescu"), listener, "STRANGER", *write_series(tmp_path / "pushed", 1))
    assert answer.returncode != 0 and "reject" in (answer.stdout + answer.stderr).lower()
    assert not listener.root.exists() or not list(listener.root.rglob("*"))


def test_the_disk_cap_refuses_what_would_pass_it(listening, tool, tmp_path):
    paths = write_series(tmp_path / "pushed", 3)
    one = paths[0].stat().st_size
    listener = listening(max_bytes=int(1.5 * one) + 200)
    push(tool("storescu"), listener, "ANYONE", *paths)
    assert listener.received == 1
    assert len(list(listener.root.rglob("*.dcm"))) == 1
    assert not [p for p in listener.root.rglob("*") if p.name.endswith(".tmp")]
