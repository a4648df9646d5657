"""Edit > Settings > PACS: nodes added, edited and removed into pacs.json (secrets never there, kept
where credentials.where() says), Verify against a real Orthanc (reachable, rejected, a closed port)
without blocking, the listener's settings, and an unreadable settings file left untouched."""

from __future__ import annotations

import json
import socket

import pytest

from app.pacs_settings import PacsPage
from app.settings import Settings
from app.settings_dialog import SettingsDialog
from core.pacs import credentials
from core.pacs.nodes import load_settings, settings_path
from tests.core.pacs.conftest import orthanc  # noqa: F401  (the real Orthanc fixture)

WAIT_MS = 30_000
TOKEN = "s3cret-token-19"


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch):
    monkeypatch.setattr(credentials, "_keyring", lambda: None)  # the 0600 file, never the real keyring


@pytest.fixture
def page(qtbot):
    page = PacsPage()
    qtbot.addWidget(page)
    return page


def fill_dimse(page, name, aet, port, host="127.0.0.1"):
    page.name.setText(name)
    page.kind.setCurrentIndex(0)
    page.aet.setText(aet)
    page.host.setText(host)
    page.port.setValue(port)


def verified(qtbot, page) -> str:
    page.verify()
    assert page.result.text().startswith("Verifying") and not page.verify_button.isEnabled()
    qtbot.waitUntil(lambda: not page.is_verifying(), timeout=WAIT_MS)
    return page.result.text()


def test_add_verify_and_save_a_dimse_node(qtbot, page, orthanc):  # noqa: F811
    fill_dimse(page, "orthanc", "ORTHANC", orthanc.dicom_port)
    assert verified(qtbot, page).startswith("reachable")
    assert page.save_node() and page.table.rowCount() == 1
    assert not settings_path().exists()  # written on OK only
    assert page.save() == ""
    node = load_settings().nodes["orthanc"]
    assert (node.aet, node.host, node.port) == ("ORTHANC", "127.0.0.1", orthanc.dicom_port)


def test_verify_says_why_not(qtbot, page, orthanc):  # noqa: F811
    fill_dimse(page, "wrong", "NOT-ORTHANC", orthanc.dicom_port)
    text = verified(qtbot, page)
    assert "reject" in text.lower() and "\n" not in text
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fill_dimse(page, "closed", "ORTHANC", port)
    text = verified(qtbot, page)
    assert str(port) in text and "reachable" not in text and "Traceback" not in text


def test_web_node_secret_is_kept_apart_and_removal_forgets_it(qtbot, page):
    page.name.setText("web")
    page.kind.setCurrentIndex(1)
    page.url.setText("https://pacs.example/dicom-web")
    page.auth.setCurrentText("bearer")
    page.secret.setText(TOKEN)
    assert page.save_node() and page.save() == ""
    assert TOKEN not in settings_path().read_text()
    assert credentials.load("web") == TOKEN and str(credentials.secrets_file()) in credentials.where()
    assert credentials.secrets_file().stat().st_mode & 0o077 == 0
    reopened = PacsPage()
    qtbot.addWidget(reopened)
    reopened.table.selectRow(0)
    assert reopened.url.text() == "https://pacs.example/dicom-web" and reopened.secret.text() == ""
    reopened.remove_node()
    assert reopened.save() == ""
    assert load_settings().nodes == {} and credentials.load("web") == ""


def test_a_bad_node_is_refused_with_the_reason(page):
    fill_dimse(page, "bad", "A" * 17, 104)
    assert not page.save_node() and "AE title" in page.result.text()
    page.name.setText("")
    assert not page.save_node() and "name" in page.result.text() and page.nodes == {}


def test_listener_settings_saved_and_a_bad_ae_title_blocks_ok(qtbot, tmp_path):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.pacs.listen_aet.setText("MTMR-TEST")
    dialog.pacs.listen_port.setValue(11119)
    dialog.pacs.listen_allowed.setText("ORTHANC, PACS2")
    dialog.pacs.listen_cap.setValue(2.5)
    dialog.accept()
    listener = load_settings().listener
    assert listener == {"aet": "MTMR-TEST", "port": 11119, "allowed": ["ORTHANC", "PACS2"], "max_mb": 2500}
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.pacs.listen_aet.setText("")
    dialog.accept()
    assert "AE title" in dialog.error.text() and dialog.result() == 0
    assert load_settings().listener["aet"] == "MTMR-TEST"


def test_an_unreadable_settings_file_is_shown_and_left_as_it_is(qtbot):
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text('{"nodes": {"x": {"kind": "carrier-pigeon"}}}')
    before = settings_path().read_bytes()
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    assert "carrier-pigeon" in dialog.pacs.error.text() and not dialog.pacs.table.isEnabled()
    dialog.accept()
    assert settings_path().read_bytes() == before and json.loads(before)
