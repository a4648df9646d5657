"""P with PACS nodes in the settings, against a real Orthanc: a prior held only on the PACS is found,
retrieved into the study cache and compared; a PACS that is down is a note and the folder's prior is
compared as without one."""

from __future__ import annotations

import json
import shutil
import socket
import threading

import pytest

import app.compare_prior as compare_prior
from core.pacs.nodes import Settings, resolve, save_settings
from core.pacs.storage import study_cache
from tests.app.test_compare_prior import _open, _press_compare
from tests.core.pacs.conftest import orthanc  # noqa: F401  (the real Orthanc fixture)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from core.phantom.followup import FollowUpOptions, write_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    out = tmp_path_factory.mktemp("pacs-compare") / "patient"
    return write_follow_up(out, SMALL, FollowUpOptions(interval_days=400), four_nodules())


def _dicom_files(folder):
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and p.read_bytes()[128:132] == b"DICM"]


@pytest.fixture
def alone(pair, orthanc, tmp_path):  # noqa: F811
    """The current study in a folder without its prior, whose prior is on the PACS of the settings."""
    orthanc.upload(_dicom_files(pair / "prior"))  # again in each test: Orthanc keeps one copy
    folder = tmp_path / "alone" / "current"
    shutil.copytree(pair / "current", folder)
    save_settings(Settings(nodes={"archive": resolve(orthanc.inline, Settings())}))
    return folder


def test_a_prior_only_on_the_pacs_is_retrieved_into_the_study_cache_and_compared(qtbot, pair, alone):
    truth = json.loads((pair / "ground_truth.json").read_text())
    window = _open(qtbot, alone)
    _press_compare(qtbot, window)
    message = window.statusBar().currentMessage()
    assert "Compared with the prior of" in message, message
    assert window.prior_view.volume.metadata.study_uid == truth["prior"]["study_uid"]
    retrieved = study_cache() / truth["prior"]["study_uid"]
    assert len(_dicom_files(retrieved)) == len(_dicom_files(pair / "prior"))


def test_cancelling_the_retrieval_leaves_the_window_as_it_was(qtbot, pair, alone, monkeypatch):
    window = _open(qtbot, alone)
    cancelled = threading.Event()
    real = compare_prior.client.list_series

    def waits_for_the_cancel(*args, **kwargs):
        assert cancelled.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_prior.client, "list_series", waits_for_the_cancel)
    window.actions_by_key["compare_prior"].trigger()
    qtbot.waitUntil(lambda: "retrieving it from" in window.statusBar().currentMessage(), timeout=60_000)
    window.cancel_button.click()
    cancelled.set()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "Cancelled" in window.statusBar().currentMessage()
    assert window.follow_up == {} and window.prior_view.isHidden()
    assert not window.sessions.load(*window.key).follow_up
    assert not study_cache().exists() or not _dicom_files(study_cache())  # the retrieval stopped at once


def test_a_pacs_that_is_down_is_a_note_and_the_folders_prior_is_compared(qtbot, pair, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    save_settings(Settings(nodes={"down": resolve(f"ANY@127.0.0.1:{port}", Settings(timeout_s=5))}))
    window = _open(qtbot, pair / "current")
    _press_compare(qtbot, window)
    message = window.statusBar().currentMessage()
    assert "Compared with the prior of" in message, message
    truth = json.loads((pair / "ground_truth.json").read_text())
    assert window.prior_view.volume.metadata.study_uid == truth["prior"]["study_uid"]
    assert not (study_cache() / truth["prior"]["study_uid"]).exists()
    assert "PACS not asked: down: connection refused" in message  # said, not silent
