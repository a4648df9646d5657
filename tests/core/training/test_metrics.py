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


def test_ece_is_zero_when_each_bin_matches_its_outcomes_and_the_gap_otherwise():
    from core.training.metrics import expected_calibration_error

    labels = np.array([0, 0, 1, 1])
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == 0.0
    assert expected_calibration_error(labels, np.array([0.5] * 4)) == 0.0  # one bin, 50 % observed
    assert expected_calibration_error(labels, np.array([0.9] * 4)) == pytest.approx(0.4)
    # two bins: 0.1 predicted where 0 of 2 are malignant, 0.7 where 2 of 2 are: (2*0.1 + 2*0.3) / 4
    assert expected_calibration_error(labels, np.array([0.1, 0.1, 0.7, 0.7])) == pytest.approx(0.2)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_bootstrap_interval_holds_the_statistic_and_narrows_with_more_nodules():
    from core.training.metrics import bootstrap_interval, roc_auc

    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 1600):
        y = rng.integers(0, 2, n)
        s = y + rng.normal(0, 1, n)
        low, high = bootstrap_interval(roc_auc, (y, s), samples=300)
        assert low < roc_auc(y, s) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    assert bootstrap_interval(roc_auc, (np.zeros(5), np.ones(5)), samples=20) == (
        pytest.approx(float("nan"), nan_ok=True),
        pytest.approx(float("nan"), nan_ok=True),
    )


def test_ece_if_calibrated_is_the_sampling_floor_and_flags_a_shift():
    from core.training.metrics import ece_if_calibrated, expected_calibration_error

    rng = np.random.default_rng(5)
    p = rng.beta(1.0, 2.5, 300)
    y = rng.random(300) < p  # calibrated by construction
    calibrated = ece_if_calibrated(y, p, draws=300)
    assert 0.02 < calibrated["mean"] < calibrated["p95"] < 0.15  # not 0 at 300 nodules
    assert calibrated["p_value"] > 0.05
    assert expected_calibration_error(y, p) < calibrated["p95"]
    shifted = np.clip(p + 0.15, 0, 1)  # every probability too high, as a sharp kernel makes them
    assert ece_if_calibrated(y, shifted, draws=300)["p_value"] < 0.01
    # more nodules, a smaller floor
    big = rng.beta(1.0, 2.5, 3000)
    assert ece_if_calibrated(rng.random(3000) < big, big, draws=100)["mean"] < calibrated["mean"] / 2
    assert np.isnan(ece_if_calibrated(np.array([]), np.array([]))["mean"])
    diverged = ece_if_calibrated(y, np.where(np.arange(300) == 7, np.nan, p), draws=50)
    assert np.isnan(diverged["p_value"]) and np.isnan(diverged["mean"])  # not "p 0": not a verdict
    assert np.isnan(ece_if_calibrated(y, p, draws=0)["p_value"])
    worst = ece_if_calibrated(np.ones(300), np.zeros(300), draws=99)  # every label against p = 0
    assert worst["p_value"] == pytest.approx(1 / 100)  # the seen ECE counts as a draw: never 0
