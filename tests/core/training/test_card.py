"""core.training.card: the card ``main.py train`` saves with a trained model."""

from __future__ import annotations

import json

import numpy as np

from core.training.card import TRAINED_ON_CACHE, TRAINED_ON_PHANTOMS, plain_metrics, training_card


def test_undefined_metrics_become_null_in_cards_and_reports():
    """A validation split with one class has no AUC: the card says null instead of failing to save."""
    metrics = {"auc": float("nan"), "n": np.int64(3), "loss": [np.float32(0.5), float("inf")]}
    assert plain_metrics(metrics) == {"auc": None, "n": 3, "loss": [0.5, None]}


def test_training_card_names_its_data_parent_and_validation_metrics():
    parent = {"name": "mtmr-compact", "weights_sha256": "ab" * 32, "metrics": {"val": {"auc": 0.8}}}
    card = training_card(
        name="mine",
        on_cache=True,
        parent=parent,
        preprocessing={"mode": "fixed-fov"},
        training={"epochs": 2},
        data={"train": {"n": 10}},
        val_metrics={"auc": float("nan"), "n": np.int64(4)},
        version="20260101",
    )
    assert card["name"] == "mine" and card["version"] == "20260101"
    assert card["trained_on"] == TRAINED_ON_CACHE
    assert card["intended_use"] == "research demo; not for clinical use"
    assert card["parent"] == {"name": "mtmr-compact", "weights_sha256": "ab" * 32}
    assert card["metrics"] == {"val": {"auc": None, "n": 4, "split": "val"}}
    json.dumps(card, allow_nan=False)  # the card is standard JSON


def test_a_fresh_phantom_model_has_no_parent_and_todays_version():
    card = training_card(
        name="m", on_cache=False, parent=None, preprocessing={}, training={}, data={}, val_metrics={}
    )
    assert card["parent"] is None and card["trained_on"] == TRAINED_ON_PHANTOMS
    assert len(card["version"]) == 8 and card["version"].isdigit()
