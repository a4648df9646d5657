"""Shared test set-up: headless Qt, and user data in a temporary folder, never the real one."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _user_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MTMR_READER_HOME", str(tmp_path_factory.mktemp("user-home")))
