"""Models side by side on the same held-out nodules, and the verdict on a new one."""

from __future__ import annotations

import warnings

import numpy as np

from core.reading.finetune.comparison import compare, format_comparison, not_worse
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
