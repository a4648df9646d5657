"""The export dialog's "Send to" against a real Orthanc: the SR and the PDF (as an Encapsulated PDF)
land there unchanged with one result each; a send to a closed port fails per object, leaves the files
as written and is retried to a node that answers. Skipped where Orthanc is not installed."""

from __future__ import annotations

import io
import socket

import pydicom
import pytest

from app.export_dialog import ExportDialog, unavailable
from core.pacs.sendlog import log_path
from core.report.send import PDF_DICOM_NAME
from tests.core.pacs.conftest import demo, orthanc  # noqa: F401  (the real Orthanc fixtures)

WAIT_MS = 30_000


@pytest.fixture
def exporting(qtbot, demo):  # noqa: F811
    """An export dialog on a window showing the phantom's CT series (opened from its local files)."""
    if unavailable("sr") or unavailable("pdf"):
        pytest.skip(f"the SR or PDF writer is missing: {unavailable('sr') or unavailable('pdf')}")
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(demo.ct_files[0].parent)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=WAIT_MS)
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    return dialog


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again once the block ends: nothing listens there


def export_and_send(qtbot, dialog, node: str, out):
    dialog.send_panel.enabled.setChecked(True)
    dialog.send_panel.node.setEditText(node)
    done = dialog.export(out, ["sr", "pdf"], anonymise=False, confirm_overwrite=lambda paths: True)
    assert done is not None and not done.failed, dialog.status.text()
    assert dialog.send_panel.is_busy()  # sending goes on in the background
    qtbot.waitUntil(lambda: not dialog.send_panel.is_busy(), timeout=WAIT_MS)
    return dialog.send_panel


def test_send_after_export_lands_in_orthanc_unchanged(qtbot, exporting, orthanc, demo, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    panel = export_and_send(qtbot, exporting, orthanc.inline, out)
    names = sorted(p.name for p in out.glob("*.dcm"))  # the SR, the PDF's DICOM (a SEG when written)
    assert {"report.dcm", PDF_DICOM_NAME} <= set(names)
    assert sorted(r.outcome for r in panel.results) == ["success"] * len(names), panel.status.text()
    assert panel.table.rowCount() == len(names) and panel.table.item(0, 2).text() == "0x0000"
    for name in names:
        ours = pydicom.dcmread(out / name)
        stored = pydicom.dcmread(io.BytesIO(orthanc.instance_file(str(ours.SOPInstanceUID))))
        assert stored == ours and stored.StudyInstanceUID == demo.study_uid
    assert not panel.retry_button.isEnabled()
    assert log_path().is_file()  # kept in the send log


def test_failed_send_keeps_the_files_and_is_retried(qtbot, exporting, orthanc, tmp_path):  # noqa: F811
    out = tmp_path / "report"
    port = closed_port()
    panel = export_and_send(qtbot, exporting, f"NOBODY@127.0.0.1:{port}", out)
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert panel.results and all(r.outcome == "failure" for r in panel.results)
    assert str(port) in panel.results[0].reason and "failed" in panel.status.text()
    assert panel.table.item(0, 1).text() == "failure" and panel.retry_button.isEnabled()

    panel.node.setEditText(orthanc.inline)
    panel.retry()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT_MS)
    assert [r.outcome for r in panel.results] == ["success"] * len(panel.results), panel.status.text()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # the local copies untouched
    for result in panel.results:
        assert orthanc.instance_file(result.sop_uid)


def test_not_ticked_sends_nothing_and_a_bad_node_is_said(qtbot, exporting, tmp_path):
    done = exporting.export(tmp_path / "a", ["pdf"], anonymise=False)
    assert done is not None and not exporting.send_panel.is_busy() and exporting.send_panel.results == []
    exporting.send_panel.enabled.setChecked(True)
    exporting.send_panel.node.setEditText("nowhere")
    exporting.export(tmp_path / "b", ["pdf"], anonymise=False)
    assert "Not sent: nowhere: not a known node" in exporting.send_panel.status.text()
    assert (tmp_path / "b" / "report.pdf").is_file()


def test_the_node_is_offered_next_time_but_not_ticked(qtbot, exporting, tmp_path):
    panel = exporting.send_panel
    panel.enabled.setChecked(True)
    panel.node.setEditText("ORTHANC@127.0.0.1:1")
    exporting.export(tmp_path / "c", ["csv"], anonymise=False)  # no DICOM object: nothing to send
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=WAIT_MS)
    assert panel.status.text().startswith("Nothing sent") and panel.results == []
    again = ExportDialog(exporting.source)
    qtbot.addWidget(again)
    assert again.send_panel.node.currentText() == "ORTHANC@127.0.0.1:1"
    assert not again.send_panel.enabled.isChecked()
