"""What each LIDC rating means, in the words of the LIDC-IDRI reading instructions.

Used wherever a score is shown (tooltips, reports): a predicted spiculation of 4.3 reads as
"4.3: marked spiculation" rather than a bare number. Scales without words for every step (sphericity,
margin, lobulation, spiculation, texture) name their anchors: a value within one point of an anchor
takes its words, one further from both says it lies between them.
"""

from __future__ import annotations

import math

from core.nodule.ratings import RATING_MAX

LEVELS: dict[str, dict[int, str]] = {
    "subtlety": {
        1: "extremely subtle",
        2: "moderately subtle",
        3: "fairly subtle",
        4: "moderately obvious",
        5: "obvious",
    },
    "internal_structure": {1: "soft tissue", 2: "fluid", 3: "fat", 4: "air"},
    "calcification": {
        1: "popcorn calcification",
        2: "laminated calcification",
        3: "solid calcification",
        4: "non-central calcification",
        5: "central calcification",
        6: "no calcification",
    },
    "sphericity": {1: "linear", 3: "ovoid", 5: "round"},
    "margin": {1: "poorly defined margin", 5: "sharp margin"},
    "lobulation": {1: "no lobulation", 5: "marked lobulation"},
    "spiculation": {1: "no spiculation", 5: "marked spiculation"},
    "texture": {1: "non-solid (ground glass)", 3: "part solid (mixed)", 5: "solid"},
    "malignancy": {
        1: "highly unlikely to be malignant",
        2: "moderately unlikely",
        3: "indeterminate",
        4: "moderately suspicious",
        5: "highly suspicious",
    },
}
CATEGORICAL = ("internal_structure", "calcification")  # categories, not a graded scale
TITLES = {
    "subtlety": "Subtlety",
    "internal_structure": "Internal structure",
    "calcification": "Calcification",
    "sphericity": "Sphericity",
    "margin": "Margin",
    "lobulation": "Lobulation",
    "spiculation": "Spiculation",
    "texture": "Texture",
    "malignancy": "Malignancy",
}


def meaning(name: str, value: float) -> str:
    """The words for ``value`` on the scale of ``name`` (an LIDC rating, 1..its maximum)."""
    if name not in LEVELS:
        raise ValueError(f"unknown LIDC rating {name!r}")
    if not math.isfinite(value):
        return "not rated"
    top = RATING_MAX[name]
    value = min(max(float(value), 1.0), float(top))
    levels = LEVELS[name]
    nearest = min(levels, key=lambda level: (abs(level - value), level))
    if name in CATEGORICAL or abs(nearest - value) <= 1.0:
        return levels[nearest]
    lower = max(level for level in levels if level <= value)
    upper = min(level for level in levels if level >= value)
    return f"between {levels[lower]} and {levels[upper]}"


def describe(name: str, value: float) -> str:
    """``"Spiculation 4.3 of 5: marked spiculation"``."""
    return f"{TITLES[name]} {value:.1f} of {RATING_MAX[name]}: {meaning(name, value)}"
