"""The honest baselines reproduce the figures measured on the annotations (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest

from core.lidc.table import load_nodules
from core.training.baselines import LogisticRegression, baselines


def test_logistic_regression_separates_separable_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).astype(int)
    p = LogisticRegression(l2=1e-3).fit(x, y).predict_proba(x)
    assert ((p > 0.5) == y).mean() > 0.97


def test_reserved_split_figures_match_the_annotation_study():
    pool = load_nodules()
    result = baselines([n for n in pool if n.split == "train"], [n for n in pool if n.split == "test"])
    assert result["diameter_only"]["n"] == 309 and result["diameter_only"]["n_malignant"] == 92
    assert result["diameter_only"]["auc"] == pytest.approx(0.86, abs=0.01)
    assert result["rating_oracle"]["auc"] == pytest.approx(0.92, abs=0.01)
