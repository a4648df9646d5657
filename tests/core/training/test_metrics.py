from __future__ import annotations

import numpy as np
import pytest

from core.nodule.ratings import to_rating_scale, to_unit_scale
from core.training.metrics import attribute_metrics, classification_metrics, roc_auc


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + labels * 0.3, 1)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg)
    )
    assert roc_auc(labels, scores) == pytest.approx(pairwise)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_classification_metrics_at_threshold():
    m = classification_metrics(np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1, 0.2]))
    assert (m["sensitivity"], m["specificity"], m["accuracy"]) == pytest.approx((0.5, 2 / 3, 0.6))


def test_attribute_scales_round_trip_and_errors():
    ratings = np.array([[1, 1, 1, 1, 1, 1, 1, 1], [5, 4, 6, 5, 5, 5, 5, 5]], dtype=float)
    assert np.allclose(to_rating_scale(to_unit_scale(ratings)), ratings)
    assert np.allclose(to_unit_scale(ratings)[1], 1.0)
    m = attribute_metrics(ratings + 0.5, ratings)
    assert m["mean_mae"] == pytest.approx(0.5) and m["texture"]["within_1"] == 1.0


def test_youden_threshold_separates_when_it_can():
    from core.training.metrics import youden_threshold

    labels = np.array([0, 0, 0, 1, 1])
    assert youden_threshold(labels, np.array([0.1, 0.2, 0.3, 0.35, 0.9])) == pytest.approx(0.35)


def test_unrated_attributes_are_left_out_of_the_error():
    from core.training.metrics import attribute_metrics

    predicted = np.full((3, 8), 3.0)
    target = np.full((3, 8), 4.0)
    target[0, 0] = np.nan  # the reader did not rate subtlety on the first nodule
    target[:, 1] = np.nan  # nor internal structure on any
    m = attribute_metrics(predicted, target)
    assert m["subtlety"]["mae"] == 1.0 and m["subtlety"]["n"] == 2
    assert np.isnan(m["internal_structure"]["mae"]) and m["internal_structure"]["n"] == 0
    assert m["mean_mae"] == 1.0
