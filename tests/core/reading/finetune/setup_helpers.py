"""What a fine-tuning run starts from (a tiny active model, a filled library), what no failure may change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.model.registry import ModelRegistry
from core.phantom.protocol import DOMAIN
from core.reading.finetune.options import FinetuneOptions
from core.reading.library import Library
from tests.core.model.test_registry import card, tiny_model
from tests.core.reading.test_library import fill, snapshot

FAST = FinetuneOptions(epochs=2, batch_size=8, device="cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other (100x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def everything(registry: ModelRegistry, library: Library) -> dict:
    """What no failure may change: the active model's id and bytes, every version, the library's files."""
    active = registry.active()
    return {
        "active": (active.id, active.note, sha(active.path)),
        "versions": [(v.id, sha(v.path)) for v in registry.versions()],
        "library": snapshot(library.root),
    }


def prepare(registry: ModelRegistry, library: Library, studies: int = 4) -> None:
    base = registry.add(tiny_model(1), card("tiny-base", threshold=0.5, version="1", domain=dict(DOMAIN)))
    registry.activate(base.id)
    fill(library, studies)
