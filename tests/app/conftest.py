"""The demo study is generated once per test run and shared read-only by the window tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def _shared_demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    old = os.environ.get("MTMR_READER_HOME")
    os.environ["MTMR_READER_HOME"] = str(home)
    try:
        from core.phantom.demo import demo_study

        return demo_study()
    finally:
        if old is None:
            os.environ.pop("MTMR_READER_HOME", None)
        else:
            os.environ["MTMR_READER_HOME"] = old


@pytest.fixture
def demo_home(_shared_demo):
    """This test's user home, with the shared demo study linked into its cache."""
    from core.phantom.demo import demo_study_dir

    target = demo_study_dir()
    if not target.exists():
        target.symlink_to(_shared_demo, target_is_directory=True)
    return target
