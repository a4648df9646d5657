"""File > Query PACS against a real Orthanc: find the uploaded phantom, list its series (CT flagged,
others greyed), retrieve it in the background (and cancel one try, which the next resumes); the study
opens in the viewer and joins the worklist. A closed port shows the reason without blocking the window.
Skipped, as the core PACS tests, where Orthanc is not installed."""

from __future__ import annotations

import socket

import pytest

from app.pacs_query import GREY
from app.pacs_window import open_query
from core.pacs.storage import study_cache
from tests.core.pacs.conftest import demo, orthanc  # noqa: F401  (the real Orthanc fixtures)

WAIT_MS = 30_000


@pytest.fixture
def window(qtbot):
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    return window


def found_demo(qtbot, dialog, node: str) -> None:
    """Search ``node`` for the phantom's patient ID and choose its study; the series get listed."""
    dialog.node.setEditText(node)
    dialog.patient_id.setText("PACS-001")
    dialog.search()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    assert [s.patient_id for s in dialog.found] == ["PACS-001"], dialog.status.text()
    dialog.studies.selectRow(0)
    qtbot.waitUntil(lambda: not dialog.is_busy() and bool(dialog.listing), timeout=WAIT_MS)


def test_find_list_retrieve_and_open_the_phantom(qtbot, window, orthanc, demo):  # noqa: F811
    dialog = open_query(window)
    found_demo(qtbot, dialog, orthanc.inline)
    assert dialog.found[0].study_uid == demo.study_uid
    flags = {s.series_uid: dialog.series.item(row, 0) for row, s in enumerate(dialog.listing)}
    assert flags[demo.ct_series].text() == "CT" and flags[demo.other_series].text() == "--"
    assert flags[demo.other_series].foreground().color() == GREY
    assert flags[demo.ct_series].foreground().color() != GREY

    dialog.retrieve()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=WAIT_MS)
    folder = study_cache() / demo.study_uid
    assert window.volume.metadata.series_uid == demo.ct_series
    assert len(list((folder / demo.ct_series).glob("*.dcm"))) == len(demo.ct_files)
    row = next(r for r, s in enumerate(dialog.listing) if s.series_uid == demo.ct_series)
    assert dialog.series.item(row, 5).text() == f"{len(demo.ct_files)}/{len(demo.ct_files)}"
    session = window.sessions.load(demo.study_uid, demo.ct_series)
    assert session is not None and session.source == str(folder.resolve())  # listed in the worklist
    window.open_worklist()
    assert window.worklist.table.rowCount() == 1


def test_cancelled_retrieval_is_resumed_by_the_next_try(qtbot, window, orthanc, demo):  # noqa: F811
    dialog = open_query(window)
    found_demo(qtbot, dialog, orthanc.web_url)  # DICOMweb this time (QIDO-RS, WADO-RS)
    dialog.retrieve()
    dialog.cancel()  # before the first series: the job stops at its first look
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    assert dialog.status.text().startswith("Cancelled"), dialog.status.text()
    assert window.volume is None  # nothing opened
    ct = study_cache() / demo.study_uid / demo.ct_series
    before = len(list(ct.glob("*.dcm"))) if ct.is_dir() else 0
    assert before < len(demo.ct_files)

    with qtbot.waitSignal(dialog.retrieved, timeout=WAIT_MS):
        dialog.retrieve()
    assert len(list(ct.glob("*.dcm"))) == len(demo.ct_files)  # resumed, none twice
    assert "Retrieved" in dialog.status.text()
    # the study opens: let it finish before the window goes (its last steps run on timers)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=WAIT_MS)


def test_closed_port_shows_the_reason_without_blocking(qtbot, window):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again once the block ends: nothing listens there
    dialog = open_query(window)
    dialog.node.setEditText(f"NOBODY@127.0.0.1:{port}")
    dialog.search()
    # the answer comes back through the event loop: search() returned before it, the window was free
    assert dialog.status.text().startswith("Searching"), dialog.status.text()
    assert not dialog.search_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=WAIT_MS)
    text = dialog.status.text()
    assert str(port) in text and "\n" not in text and "Traceback" not in text, text
    assert dialog.found == [] and dialog.search_button.isEnabled()


def test_a_bad_node_or_date_range_is_said_before_any_search(qtbot, window):
    dialog = open_query(window)
    dialog.node.setEditText("no such node")
    dialog.search()
    assert "not a known node" in dialog.status.text() and not dialog.is_busy()
    dialog.node.setEditText("A@127.0.0.1:104")
    dialog.use_dates.setChecked(True)
    dialog.date_from.setDate(dialog.date_to.date().addDays(1))
    dialog.search()
    assert "starts after it ends" in dialog.status.text() and not dialog.is_busy()
