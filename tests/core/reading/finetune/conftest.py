"""Fine-tuning tests: one torch thread, and a tiny active model with a filled library."""

from __future__ import annotations

import pytest

from core.reading.library import Library
from tests.core.model.test_registry import make_registry
from tests.core.reading.finetune.setup_helpers import one_torch_thread, prepare  # noqa: F401 (autouse fixture)


@pytest.fixture
def setup(tmp_path):
    registry, library = make_registry(tmp_path), Library(tmp_path / "labels")
    prepare(registry, library)
    return registry, library
