"""``train --augment/--no-augment``: on by default, passed to the loop and recorded in the card."""

from __future__ import annotations

import pytest

import core.training.data
import core.training.trainer
from core.model.checkpoints import read_card
from main import main
from tests.core.training.fake_data import fake_dataset


@pytest.fixture
def seen(monkeypatch):
    """Tiny data instead of rendered phantoms; records what each training step's augmentation was."""
    monkeypatch.setattr(core.training.data, "cached_dataset", lambda spec, *a, **k: fake_dataset(6, size=64))
    real, configs = core.training.trainer._augment, []

    def spy(batch, rng, config):
        configs.append(config)
        return real(batch, rng, config)

    monkeypatch.setattr(core.training.trainer, "_augment", spy)
    return configs


@pytest.mark.parametrize("flag", [[], ["--augment"], ["--no-augment"]])
def test_train_augments_unless_told_not_to_and_says_so_in_the_card(flag, seen, tmp_path):
    out = tmp_path / "m.safetensors"
    argv = ["train", "--out", str(out), "--epochs", "1", "--batch-size", "16", "--device", "cpu"]
    assert main([*argv, *flag]) == 0
    recorded = read_card(out)["training"]["augment"]
    assert seen  # the loop ran its steps
    if flag == ["--no-augment"]:
        assert recorded is None and set(seen) == {None}
    else:
        assert recorded["rotate_deg"] == 15.0 and recorded["hu_range"] == [-1100.0, 500.0]
        assert all(c is not None and c.flips for c in seen)
