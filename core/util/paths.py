"""Where user data lives: platformdirs' per-user folders, never the repo or the study folder.

Set ``MTMR_READER_HOME`` to put everything under one folder instead (tests, portable installs).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "mtmr-reader"
HOME_VARIABLE = "MTMR_READER_HOME"


def _base(kind: str) -> Path:
    override = os.environ.get(HOME_VARIABLE)
    if override:
        return Path(override).expanduser() / kind
    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    if kind == "config":
        return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_dir(kind: str, create: bool = True) -> Path:
    """One of ``data``, ``config``, ``cache``, ``sessions``, ``labels``, ``models``."""
    parent = {"sessions": "data", "labels": "data", "models": "data"}.get(kind, kind)
    if parent not in ("data", "config", "cache"):
        raise ValueError(f"unknown user folder kind {kind!r}")
    path = _base(parent) if parent == kind else _base(parent) / kind
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
