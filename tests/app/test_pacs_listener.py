"""File > Receive from PACS: off by default; on, the listener takes what a real Orthanc pushes (C-STORE
to our AE title and port from the settings) and the study joins the worklist; off (or the window
closed), the port is free again; a port in use says why and the toggle stays off."""

from __future__ import annotations

import socket

import pytest

from core.pacs.nodes import Settings, save_settings
from core.pacs.storage import study_cache
from tests.core.pacs.conftest import demo, orthanc  # noqa: F401  (the real Orthanc fixtures)
from tests.core.pacs.orthanc_server import free_port

WAIT_MS = 30_000


@pytest.fixture
def window(qtbot):
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    yield window
    window.listener_action.setChecked(False)


def listen_on(port: int, allowed=("ORTHANC",)) -> None:
    save_settings(Settings(listener={"aet": "MTMR", "port": port, "allowed": list(allowed), "max_mb": 1000}))


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_off_by_default_then_orthanc_pushes_a_study_into_the_worklist(qtbot, window, orthanc, demo):  # noqa: F811
    port = free_port()
    listen_on(port)
    assert not window.listener_action.isChecked() and not is_listening(port)
    window.listener_action.setChecked(True)
    assert is_listening(port), window.statusBar().currentMessage()
    assert f"port {port}" in window.statusBar().currentMessage()

    orthanc.rest("PUT", "/modalities/mtmr", f'["MTMR", "127.0.0.1", {port}]'.encode())
    found = orthanc.rest("POST", "/tools/lookup", demo.study_uid.encode())
    study_id = next(f["ID"] for f in found if f["Type"] == "Study")
    orthanc.rest("POST", "/modalities/mtmr/store", study_id.encode())  # returns once all are stored

    folder = study_cache() / demo.study_uid
    assert len(list((folder / demo.ct_series).glob("*.dcm"))) == len(demo.ct_files)
    qtbot.waitUntil(lambda: window.sessions.load(demo.study_uid, demo.ct_series) is not None, timeout=WAIT_MS)
    assert window.sessions.load(demo.study_uid, demo.ct_series).source == str(folder.resolve())
    assert window.sessions.load(demo.study_uid, demo.other_series) is None  # not CT: not for reading
    assert "Received 1 study" in window.statusBar().currentMessage()

    window.listener_action.setChecked(False)
    assert not is_listening(port)


def test_closing_the_window_stops_the_listener(qtbot, window):
    port = free_port()
    listen_on(port)
    window.listener_action.setChecked(True)
    assert is_listening(port)
    window.close()
    assert not is_listening(port) and not window.listener_action.isChecked()


def test_a_port_in_use_says_why_and_stays_off(qtbot, window):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listen_on(port)
        window.listener_action.setChecked(True)
        message = window.statusBar().currentMessage()
    assert message.startswith("Listener not started") and str(port) in message
    assert not window.listener_action.isChecked() and getattr(window, "pacs_listener", None) is None


def test_a_caller_not_on_the_list_is_refused(qtbot, window):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    port = free_port()
    listen_on(port, allowed=("ORTHANC",))
    window.listener_action.setChecked(True)
    answers = {}
    for title in ("STRANGER", "ORTHANC"):
        ae = AE(ae_title=title)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="MTMR")
        answers[title] = assoc.is_established
        if assoc.is_established:
            assoc.release()
    assert answers == {"STRANGER": False, "ORTHANC": True}
