"""Models side by side on the same held-out nodules, and the verdict on a new one."""

from __future__ import annotations

import warnings

import numpy as np

from core.reading.finetune.comparison import (
    compare,
    describe_effect,
    effect,
    format_comparison,
    not_worse,
    reserved_split_concerns,
)
from core.training.data import subset
from tests.core.model.test_registry import tiny_model
from tests.core.training.fake_data import fake_dataset


def test_compare_is_nan_aware_and_side_by_side():
    data = fake_dataset(12, size=32)
    benign_only = subset(data, data.labels == 0)
    benign_only.attributes[:] = np.nan  # nothing rated
    models = {"active": tiny_model(1), "new": tiny_model(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare(models, benign_only, "cpu", {"active": 0.5, "new": 0.4})
        mixed = compare(models, data, "cpu")
    assert np.isnan(result["new"]["auc"]) and np.isnan(result["new"]["sensitivity"])
    assert np.isnan(result["new"]["attributes"]["mean_mae"]) and result["new"]["threshold"] == 0.4
    assert 0 <= result["new"]["specificity"] <= 1 and result["active"]["n"] == 6
    table = format_comparison(result)
    assert table.splitlines()[0].split() == ["active", "new"] and "AUC" in table and " -" in table
    assert 0 <= mixed["active"]["auc"] <= 1 and not np.isnan(mixed["active"]["attributes"]["mean_mae"])
    assert mixed["new"]["nonfinite_outputs"] == 0
    assert 0 <= mixed["new"]["ece"] <= 1 and "ECE" in format_comparison(mixed)


def test_compare_hands_back_the_probabilities_its_ece_is_made_of():
    from core.training.metrics import expected_calibration_error

    data = fake_dataset(12, size=32)
    probabilities: dict = {}
    result = compare({"active": tiny_model(1), "new": tiny_model(2)}, data, "cpu", None, probabilities)
    labels = data.labels[data.labels >= 0]
    assert set(probabilities) == {"active", "new"} and len(probabilities["new"]) == len(labels) == 11
    assert result["new"]["ece"] == expected_calibration_error(labels, probabilities["new"])


def test_the_effect_of_fine_tuning_carries_a_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 30)
    old = np.clip(0.5 + 0.1 * (labels - 0.5) + rng.normal(0, 0.2, 60), 0, 1)  # weak
    new = np.clip(0.5 + 0.6 * (labels - 0.5) + rng.normal(0, 0.1, 60), 0, 1)  # strong
    figures = effect(labels, new, old, samples=500)
    auc = figures["auc"]
    assert auc["difference"] > 0.2 and 0 < auc["low"] <= auc["difference"] <= auc["high"]
    assert figures["n"] == 60 and figures["n_malignant"] == 30
    assert effect(labels, new, old, samples=500) == figures  # seeded
    text = describe_effect(figures)
    assert f"AUC {auc['difference']:+.3f}" in text and "60 held-out nodules (30 malignant)" in text
    same = effect(labels, old, old, samples=200)
    assert same["auc"]["difference"] == 0 and "includes no change" in describe_effect(same)
    one_class = effect(np.zeros(5, int), new[:5], old[:5], samples=50)
    assert np.isnan(one_class["auc"]["difference"]) and np.isnan(one_class["auc"]["low"])
    assert "cannot be measured" in describe_effect(one_class)


def test_reserved_split_concerns_name_both_numbers_of_a_worse_or_unmeasured_figure():
    def card(**test):
        return {"metrics": {"test": test, "val": {"auc": 0.99}}}

    active = card(auc=0.903, ece=0.05)
    assert reserved_split_concerns(card(auc=0.91, ece=0.04), active) == []
    assert reserved_split_concerns(card(auc=0.91, ece=0.04), {}) == []  # nothing to compare with
    worse = reserved_split_concerns(card(auc=0.88, ece=0.09), active)
    assert worse == [
        "reserved-split AUC: 0.880 new, 0.903 active",
        "reserved-split ECE: 0.090 new, 0.050 active",
    ]
    chance = reserved_split_concerns(card(auc=0.91, ece=0.068, ece_if_calibrated=0.055), active)
    assert chance == [
        "reserved-split ECE: 0.068 new, 0.050 active "
        "(a perfectly calibrated model would give about 0.055 on these nodules)"
    ]
    unmeasured = reserved_split_concerns({"metrics": {"val": {"auc": 0.99}}}, active)
    assert len(unmeasured) == 2 and "not measured for the new model, 0.903 active" in unmeasured[0]
    assert reserved_split_concerns(card(auc=0.95), card(auc=0.9, ece=np.nan)) == []


def test_not_worse_compares_auc_then_accuracy_and_attributes():
    def metrics(auc, accuracy=0.5, mae=1.0):
        return {"auc": auc, "accuracy": accuracy, "attributes": {"mean_mae": mae}}

    assert not_worse({"new": metrics(0.8), "active": metrics(0.8)}) == (True, "")
    ok, why = not_worse({"new": metrics(0.7), "active": metrics(0.8)})
    assert not ok and "AUC 0.700 < 0.800" in why
    assert not not_worse({"new": metrics(np.nan, 0.4), "active": metrics(np.nan, 0.6)})[0]
    assert "cannot be computed" in not_worse({"new": metrics(np.nan, 0.7), "active": metrics(0.9, 0.6)})[1]
    broken = metrics(0.9) | {"nonfinite_outputs": 3}
    assert "3 outputs are not numbers" in not_worse({"new": broken, "active": metrics(0.8)})[1]
    assert not not_worse({"new": metrics(0.9, mae=1.2), "active": metrics(0.8, mae=1.0)})[0]
    assert not_worse({"new": metrics(0.9, mae=np.nan), "active": metrics(0.8, mae=1.0)})[0]
