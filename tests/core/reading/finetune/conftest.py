"""Fine-tuning tests: one torch thread, and a tiny active model with a filled library."""

from __future__ import annotations

import pytest

from core.reading.library import Library
from tests.core.model.test_registry import make_registry
from tests.core.reading.finetune.setup_helpers import prepare


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other (100x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(tmp_path):
    registry, library = make_registry(tmp_path), Library(tmp_path / "labels")
    prepare(registry, library)
    return registry, library
