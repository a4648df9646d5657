"""Reopening a study whose session holds a comparison shows its prior beside it again, without P: loaded
in the background once the study is shown, with the saved registration (nothing computed again)."""

from __future__ import annotations

import shutil
import threading

import pytest

import app.compare_prior as compare_prior
from app.main_window import MainWindow
from app.nodule_table import FOLLOW_UP
from core.followup import compare as compare_module
from tests.app.followup_window import compared, opened, write_pair


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-reopen")


def _never(*args, **kwargs):
    raise AssertionError("computed again")


def test_reopening_shows_the_prior_again_in_the_background_with_the_saved_registration(
    qtbot, follow_up, monkeypatch
):
    window = compared(qtbot, follow_up / "current")
    saved = window.follow_up
    window.close()
    monkeypatch.setattr(compare_module, "register", _never)
    monkeypatch.setattr(compare_prior, "compare", _never)
    release = threading.Event()
    real = compare_prior._load_study

    def held(*args, **kwargs):  # the prior's loading waits: the study must be shown meanwhile
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_prior, "_load_study", held)
    again = MainWindow()
    qtbot.addWidget(again)
    again.open_path(follow_up / "current")
    qtbot.waitUntil(lambda: "loading the prior of" in again.statusBar().currentMessage(), timeout=60_000)
    assert again.volume is not None and again._showing is None  # shown while the prior loads
    assert again.prior_view.isHidden() and not again.review.table.isColumnHidden(FOLLOW_UP)
    release.set()
    qtbot.waitUntil(lambda: not again.busy, timeout=60_000)
    assert not again.prior_view.isHidden(), again.statusBar().currentMessage()
    assert again.prior_view.volume.metadata.study_uid == saved["prior"]["study_uid"]
    assert again.prior_view.registration.to_dict() == saved["registration"]
    assert "Compared with the prior of" in again.statusBar().currentMessage()
    assert again.follow_up == saved and again.sessions.load(*again.key).follow_up == saved


def test_a_prior_no_longer_where_it_was_is_said_and_the_reading_kept(qtbot, follow_up, tmp_path):
    patient = tmp_path / "patient"
    shutil.copytree(follow_up / "current", patient / "current")
    shutil.copytree(follow_up / "prior", patient / "prior")
    window = compared(qtbot, patient / "current")
    saved = window.follow_up
    window.close()
    shutil.rmtree(patient / "prior")
    again = opened(qtbot, patient / "current")
    message = again.statusBar().currentMessage()
    assert "the prior of the saved reading could not be shown" in message, message
    assert again.prior_view.isHidden() and not again.review.table.isColumnHidden(FOLLOW_UP)
    assert again.follow_up == saved and again.sessions.load(*again.key).follow_up == saved


def test_p_pressed_while_the_prior_loads_is_not_undone_by_the_load_ending(qtbot, follow_up, monkeypatch):
    window = compared(qtbot, follow_up / "current")
    window.close()
    restored, compared_again = threading.Event(), threading.Event()
    real_markers, real_compare = compare_prior._prior_markers, compare_prior.compare
    calls = []

    def held_markers(*args):  # the reopened prior's markers wait (past its last cancel check)
        calls.append(args)
        if len(calls) == 1:
            assert restored.wait(60)
        return real_markers(*args)

    def held_compare(*args, **kwargs):
        assert compared_again.wait(60)
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(compare_prior, "_prior_markers", held_markers)
    monkeypatch.setattr(compare_prior, "compare", held_compare)
    again = MainWindow()
    qtbot.addWidget(again)
    again.open_path(follow_up / "current")
    qtbot.waitUntil(lambda: "loading the prior of" in again.statusBar().currentMessage(), timeout=60_000)
    loading = again._worker
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=60_000)  # the loading past its cancel checks
    again.actions_by_key["compare_prior"].trigger()  # P: it replaces the loading
    qtbot.waitUntil(lambda: "Comparing with the prior" in again.statusBar().currentMessage(), timeout=60_000)
    restored.set()  # the replaced loading ends with its prior, after P took over
    qtbot.waitUntil(lambda: loading.done, timeout=60_000)
    qtbot.wait(200)  # its result delivered
    assert again.busy and "Comparing with the prior" in again.statusBar().currentMessage()
    compared_again.set()
    qtbot.waitUntil(lambda: not again.busy, timeout=60_000)
    assert "Compared with the prior of" in again.statusBar().currentMessage()
    assert not again.prior_view.isHidden()
