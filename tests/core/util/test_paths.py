from __future__ import annotations

import pytest

from core.util.paths import user_dir


def test_user_dirs_follow_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MTMR_READER_HOME", str(tmp_path))
    assert user_dir("sessions") == tmp_path / "data" / "sessions"
    assert user_dir("cache") == tmp_path / "cache"
    assert (tmp_path / "data" / "sessions").is_dir()
    with pytest.raises(ValueError, match="unknown"):
        user_dir("desktop")


def test_default_is_a_platformdirs_folder_outside_the_repo(monkeypatch):
    from pathlib import Path

    monkeypatch.delenv("MTMR_READER_HOME")
    repo = Path(__file__).resolve().parents[3]
    folder = user_dir("models", create=False)
    assert "mtmr-reader" in str(folder) and repo not in folder.parents
