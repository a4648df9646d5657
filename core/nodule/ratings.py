"""The nine LIDC ratings, their scales, and the malignancy label; the vocabulary every layer shares."""

from __future__ import annotations

import numpy as np

# The nine LIDC ratings, in the database's order, with their scale maxima (minimum is always 1).
RATINGS = (
    "subtlety", "internal_structure", "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture", "malignancy",
)  # fmt: skip
ATTRIBUTES = RATINGS[:8]  # what the model predicts besides malignancy; what phantoms may render
RATING_MAX = {name: 5 for name in RATINGS} | {"internal_structure": 4, "calcification": 6}


def label_for(mean_malignancy: float) -> str:
    """benign (< 3), malignant (> 3) or indeterminate (exactly 3), as in the paper."""
    if mean_malignancy < 3:
        return "benign"
    if mean_malignancy > 3:
        return "malignant"
    return "indeterminate"


def to_rating_scale(unit: np.ndarray) -> np.ndarray:
    """Model outputs in 0..1 -> the original LIDC scales, per attribute column."""
    maxima = np.array([RATING_MAX[name] for name in ATTRIBUTES], dtype=np.float64)
    return 1.0 + np.asarray(unit, dtype=np.float64) * (maxima - 1.0)


def to_unit_scale(ratings: np.ndarray) -> np.ndarray:
    maxima = np.array([RATING_MAX[name] for name in ATTRIBUTES], dtype=np.float64)
    return (np.asarray(ratings, dtype=np.float64) - 1.0) / (maxima - 1.0)
