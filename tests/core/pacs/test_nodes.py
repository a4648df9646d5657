"""Nodes (inline syntax, settings file), secrets (keyring or a 0600 file, never in the settings or a
message), query dates and the send log: no server needed."""

from __future__ import annotations

import json
import stat

import keyring
import pytest
from keyring.backends import fail

from core.pacs import credentials, sendlog
from core.pacs.errors import PacsError
from core.pacs.nodes import DimseNode, Settings, WebNode, load_settings, resolve, save_settings, settings_path
from core.pacs.query import Query, parse_date_range

SECRET = "s3cr3t-token-1234"


@pytest.fixture
def no_keyring(monkeypatch):
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_inline_nodes():
    node = resolve("PACS@10.0.0.5:104", Settings(timeout_s=7))
    assert (node.aet, node.host, node.port, node.calling_aet, node.timeout_s) == (
        "PACS",
        "10.0.0.5",
        104,
        "MTMR",
        7,
    )
    assert resolve("AE@[::1]:11112", Settings()).host == "::1"
    web = resolve("https://pacs.example/dicom-web", Settings())
    assert isinstance(web, WebNode) and web.url == "https://pacs.example/dicom-web"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("PACS@host", "not a known node"),
        ("WAY_TOO_LONG_AE_TITLE@host:104", "not a known node"),
        ("PACS@host:70000", "port 70000"),
        ("ftp://x", "not a known node"),
    ],
)
def test_bad_inline_nodes_are_refused_with_the_reason(text, reason):
    with pytest.raises(PacsError, match=reason):
        resolve(text, Settings())


def test_settings_round_trip_and_a_damaged_file_names_itself():
    settings = Settings(
        nodes={
            "pacs": DimseNode("ORTHANC", "pacs.local", 4242, "ME", name="pacs"),
            "web": WebNode("https://w/dicom-web", name="web", auth="bearer", secret=SECRET),
        },
        timeout_s=12,
    )
    path = save_settings(settings)
    assert SECRET not in path.read_text()
    again = load_settings()
    assert again.nodes["pacs"] == settings.nodes["pacs"] and again.timeout_s == 12
    assert again.nodes["web"].auth == "bearer" and again.nodes["web"].secret == ""
    settings_path().write_text('{"nodes": {"x": {"kind": "dimse", "aet": "A", "host": "h", "port": 0}}}')
    with pytest.raises(PacsError, match=r"pacs\.json: .*port 0"):
        load_settings()
    settings_path().write_text("{not json")
    with pytest.raises(PacsError, match=r"pacs\.json: cannot be read"):
        load_settings()


def test_secret_in_a_user_only_file_without_a_keyring_and_never_shown(no_keyring):
    assert "readable by you only" in credentials.where()
    credentials.store("web", SECRET)
    path = credentials.secrets_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    save_settings(Settings(nodes={"web": WebNode("https://w/dicom-web", name="web", auth="bearer")}))
    node = resolve("web")
    assert node.secret == SECRET
    assert SECRET not in repr(node) and SECRET not in node.label
    credentials.forget("web")
    assert credentials.load("web") == ""


def test_the_keyring_is_used_when_it_works(monkeypatch):
    kept = {}

    class Memory(keyring.backend.KeyringBackend):
        priority = 1

        def set_password(self, service, user, password):
            kept[(service, user)] = password

        def get_password(self, service, user):
            return kept.get((service, user))

        def delete_password(self, service, user):
            kept.pop((service, user), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        assert "keyring" in credentials.store("web", SECRET)
        assert credentials.load("web") == SECRET and not credentials.secrets_file().exists()
    finally:
        keyring.set_keyring(previous)


def test_a_url_with_a_password_is_not_shown():
    assert "hunter2" not in WebNode("https://me:hunter2@host/dicom-web").label


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("20260101-20260131", ("20260101", "20260131")),
        ("2026-01-01-2026-01-31", ("20260101", "20260131")),
        ("20260101-", ("20260101", "")),
        ("-20260131", ("", "20260131")),
        ("20260105", ("20260105", "20260105")),
    ],
)
def test_date_ranges(text, pair):
    assert parse_date_range(text) == pair


@pytest.mark.parametrize("text", ["2026", "20261301-", "20260201-20260101", "yesterday", ""])
def test_bad_date_ranges_are_refused(text):
    with pytest.raises(ValueError, match="date range"):
        parse_date_range(text)


def test_query_limit_must_be_positive():
    with pytest.raises(ValueError, match="limit"):
        Query(limit=0)


def test_send_log_appends_one_line_per_object(tmp_path):
    results = [
        sendlog.SendResult("a.dcm", "1.2", sendlog.SUCCESS, 0),
        sendlog.SendResult("b.dcm", "1.3", sendlog.FAILURE, 0xA700, "out of resources"),
    ]
    path = sendlog.append("PACS", results)
    sendlog.append("PACS", results[:1])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["path"], r["outcome"], r["status"]) for r in lines] == [
        ("a.dcm", "success", 0),
        ("b.dcm", "failure", 0xA700),
        ("a.dcm", "success", 0),
    ]
    assert sendlog.dimse_outcome(0xB000) == "warning" and sendlog.dimse_outcome(0xC000) == "failure"


def test_files_that_cannot_be_sent_say_why(tmp_path):
    import pydicom

    from tests.dicom_factory import write_series

    (tmp_path / "text.dcm").write_text("hello")
    no_uid = write_series(tmp_path / "s", 1)[0]
    ds = pydicom.dcmread(no_uid)
    del ds.SOPInstanceUID
    ds.save_as(no_uid)
    reasons = {
        tmp_path / "text.dcm": "not a DICOM file",
        tmp_path: "is a folder",
        tmp_path / "missing.dcm": "no such file",
        no_uid: "not a DICOM object that can be sent",
    }
    for path, reason in reasons.items():
        found, why = sendlog.read_for_sending(path)
        assert found is None and why.startswith(reason), (path, why)
