"""Validation metrics: AUC, accuracy, sensitivity, specificity; attribute MAE and +/-1 accuracy.

Plain numpy, so the CLI, the trainer dialog and the tests agree on one definition.
"""

from __future__ import annotations

import numpy as np

from core.nodule.ratings import ATTRIBUTES


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties). NaN if one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities) >= threshold
    tp = int((predicted & labels).sum())
    tn = int((~predicted & ~labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "auc": roc_auc(labels, probabilities),
        "accuracy": ratio(tp + tn, len(labels)),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "threshold": threshold,
        "n": len(labels),
        "n_malignant": int(labels.sum()),
    }


def youden_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The probability cut-off maximising sensitivity + specificity (chosen on validation only)."""
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    best, best_j = 0.5, -1.0
    for cut in np.unique(probabilities):
        predicted = probabilities >= cut
        j = (predicted & labels).sum() / max(labels.sum(), 1) + (~predicted & ~labels).sum() / max(
            (~labels).sum(), 1
        )
        if j > best_j:
            best, best_j = float(cut), j
    return best


def attribute_metrics(predicted: np.ndarray, target: np.ndarray) -> dict:
    """Per attribute, on the original scales: mean absolute error and accuracy within +/-1."""
    predicted, target = np.asarray(predicted, float), np.asarray(target, float)
    out = {}
    for i, name in enumerate(ATTRIBUTES):
        known = ~np.isnan(target[:, i])  # a reader may leave an attribute unrated
        error = np.abs(predicted[known, i] - target[known, i])
        out[name] = {
            "mae": float(error.mean()) if known.any() else float("nan"),
            "within_1": float((error <= 1.0).mean()) if known.any() else float("nan"),
            "n": int(known.sum()),
        }
    out["mean_mae"] = float(np.nanmean([out[name]["mae"] for name in ATTRIBUTES]))
    return out


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width probability bins (Guo et al. 2017, "On calibration of modern neural
    networks"): the bin-size-weighted mean of |observed malignant fraction - mean predicted probability|.
    NaN for no nodules."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        return float("nan")
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(total / len(labels))


def ece_if_calibrated(
    labels: np.ndarray,
    probabilities: np.ndarray,
    bins: int = 15,
    draws: int = 1000,
    seed: int = 0,
    limit: float | None = None,
) -> dict:
    """What the ECE of these probabilities would be if they were perfectly calibrated: labels drawn
    again from the probabilities themselves, ``draws`` times (consistency resampling, Brocker & Smith
    2007, "Increasing the reliability of reliability diagrams"). With a few hundred nodules a
    calibrated model's ECE is not 0 but several hundredths, the binned estimate's own sampling error.

    ``mean``, ``p05`` and ``p95``: the calibrated ECE's mean, 5th and 95th percentile; ``p_value``:
    the share of draws at least as large as the ECE observed with ``labels``, counting the observed
    one, (k + 1) / (draws + 1) (small: miscalibrated beyond chance); with ``limit``,
    ``share_within``: the share of draws at most ``limit`` (how often a perfectly calibrated model
    would meet an ECE floor of ``limit`` on these nodules). NaN for no nodules, no draws or a
    probability that is not a number."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    if len(labels) == 0 or draws < 1 or not np.all(np.isfinite(probabilities)):  # NaN: a diverged model
        nan = float("nan")
        empty = {"mean": nan, "p05": nan, "p95": nan, "p_value": nan, "draws": draws}
        return empty | ({"share_within": nan} if limit is not None else {})
    rng = np.random.default_rng(seed)
    observed = expected_calibration_error(labels, probabilities, bins)
    drawn = np.array(
        [
            expected_calibration_error(rng.random(len(probabilities)) < probabilities, probabilities, bins)
            for _ in range(draws)
        ]
    )
    out = {
        "mean": float(drawn.mean()),
        "p05": float(np.percentile(drawn, 5)),
        "p95": float(np.percentile(drawn, 95)),
        # (k + 1) / (draws + 1): the ECE seen counts as one of the draws, so p is never exactly 0
        "p_value": float((np.sum(drawn >= observed - 1e-12) + 1) / (draws + 1)),
        "draws": draws,
    }
    if limit is not None:
        out["share_within"] = float(np.mean(drawn <= limit + 1e-12))
    return out


def bootstrap_interval(
    statistic, arrays: tuple[np.ndarray, ...], samples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)`` over nodules resampled with replacement
    (the same rows of every array together, so paired differences stay paired). Resamples where the
    statistic is NaN (e.g. one class only, for an AUC) are dropped."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = []
    for _ in range(samples):
        rows = rng.integers(0, n, n)
        value = statistic(*(np.asarray(a)[rows] for a in arrays))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
