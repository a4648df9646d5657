"""core.training.ablations: every variant's overrides are fields of the loss configuration."""

from __future__ import annotations

from dataclasses import fields

from core.training.ablations import ABLATIONS
from models.losses import LossConfig


def test_ablations_override_only_loss_weights():
    names = {f.name for f in fields(LossConfig)}
    assert set(ABLATIONS) == {"single-task", "multi-task", "mtmr"}
    assert all(set(overrides) <= names for overrides in ABLATIONS.values())
    assert ABLATIONS["mtmr"] == {}
