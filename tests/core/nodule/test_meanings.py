"""Scores read as the LIDC instructions word them."""

from __future__ import annotations

import pytest

from core.nodule.meanings import LEVELS, describe, meaning
from core.nodule.ratings import RATING_MAX, RATINGS


def test_every_rating_has_words_for_its_ends():
    for name in RATINGS:
        assert set(LEVELS[name]) >= {1, RATING_MAX[name]}


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("spiculation", 4.3, "marked spiculation"),
        ("spiculation", 1.2, "no spiculation"),
        ("spiculation", 3.0, "between no spiculation and marked spiculation"),
        ("texture", 3.2, "part solid (mixed)"),
        ("texture", 1.8, "non-solid (ground glass)"),
        ("lobulation", 2.5, "between no lobulation and marked lobulation"),
        ("calcification", 5.6, "no calcification"),  # categorical: the nearest category
        ("calcification", 3.4, "solid calcification"),
        ("malignancy", 9.0, "highly suspicious"),  # clamped to the scale
        ("sphericity", float("nan"), "not rated"),
    ],
)
def test_meaning(name, value, words):
    assert meaning(name, value) == words


def test_describe_and_unknown_names():
    assert describe("spiculation", 4.3) == "Spiculation 4.3 of 5: marked spiculation"
    assert describe("margin", 4.8) == "Margin 4.8 of 5: sharp margin"
    with pytest.raises(ValueError, match="unknown"):
        meaning("colour", 2)
