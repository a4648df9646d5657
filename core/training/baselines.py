"""Two honest baselines, measured on the very nodules a model is evaluated on.

* diameter alone: the reader's diameter as the malignancy score;
* the rating oracle: a logistic regression on the radiologists' eight mean attribute ratings plus
  the diameter, fitted on the train split: what a model that perceived every attribute perfectly
  would reach. A model above it deserves suspicion (a leak) before applause.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.lidc.records import LidcNodule
from core.nodule.ratings import ATTRIBUTES
from core.training.metrics import classification_metrics


def features(nodules: Sequence[LidcNodule]) -> np.ndarray:
    return np.array([[n.mean_ratings[a] for a in ATTRIBUTES] + [n.diameter_mm] for n in nodules])


def labels_of(nodules: Sequence[LidcNodule]) -> np.ndarray:
    return np.array([1 if n.label == "malignant" else 0 for n in nodules])


class LogisticRegression:
    """L2-regularised logistic regression fitted by Newton's method on standardised features."""

    def __init__(self, l2: float = 1e-2, iterations: int = 50) -> None:
        self.l2, self.iterations = l2, iterations

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-9
        z = np.hstack([np.ones((len(x), 1)), (x - self.mean) / self.scale])
        w = np.zeros(z.shape[1])
        penalty = np.eye(len(w)) * self.l2
        penalty[0, 0] = 0.0  # no penalty on the intercept
        for _ in range(self.iterations):
            p = 1 / (1 + np.exp(-z @ w))
            gradient = z.T @ (p - y) + penalty @ w
            hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        self.weights = w
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = np.hstack([np.ones((len(x), 1)), (x - self.mean) / self.scale])
        return 1 / (1 + np.exp(-z @ self.weights))


def baselines(train: Sequence[LidcNodule], evaluated: Sequence[LidcNodule], threshold: float = 0.5) -> dict:
    """Diameter-only and rating-oracle metrics on ``evaluated`` (labelled nodules only)."""
    train = [n for n in train if n.label != "indeterminate"]
    evaluated = [n for n in evaluated if n.label != "indeterminate"]
    y = labels_of(evaluated)
    diameter = np.array([n.diameter_mm for n in evaluated])
    oracle = LogisticRegression().fit(features(train), labels_of(train))
    size_only = LogisticRegression().fit(features(train)[:, -1:], labels_of(train))
    return {
        "diameter_only": classification_metrics(y, size_only.predict_proba(diameter[:, None]), threshold),
        "rating_oracle": classification_metrics(y, oracle.predict_proba(features(evaluated)), threshold),
        "fitted_on": "train",
    }
