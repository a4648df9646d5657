"""Lung-RADS v2022 at baseline from the model's texture guess and the marker diameter; Fleischner 2017."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

from core.nodule.lungrads import (
    CATEGORIES,
    LungRads,
    fleischner,
    lung_rads,
    nodule_category,
    solid_fraction,
    study_category,
)
from core.nodule.prediction import NoduleResult

SOLID, PART_SOLID, GROUND_GLASS = 5.0, 3.0, 1.0  # texture 3.0 -> solid part is half the diameter


def attrs(texture: float, calcification: float = 6.0, spiculation: float = 1.0) -> dict[str, float]:
    return {"texture": texture, "calcification": calcification, "spiculation": spiculation}


@pytest.mark.parametrize(
    ("diameter", "category"),
    [
        (3.0, "2"), (5.9, "2"), (6.0, "3"), (7.9, "3"), (8.0, "4A"),
        (14.9, "4A"), (15.0, "4B"), (40.0, "4B"),
    ],
)  # fmt: skip
def test_solid_rows_either_side_of_each_boundary(diameter, category):
    result = lung_rads(diameter, attrs(SOLID))
    assert result.category == category and result.texture == "solid"
    assert result.rule.startswith("solid") and f"marker {diameter:.1f} mm" in result.rule


def test_rule_names_the_row_with_the_numbers():
    result = lung_rads(10.2, attrs(4.6))
    assert result.rule.startswith("solid 8.0 to < 15 mm at baseline (marker 10.2 mm)")
    assert result.follow_up.startswith("LDCT in 3 months")
    assert "texture guess" in result.basis and "marker" in result.basis and "4.60 -> solid" in result.basis
    assert "Lung-RADS 4A" in result.text and result.basis in result.text
    assert result.inputs["diameter_mm"] == 10.2 and result.inputs["texture_score"] == 4.6


@pytest.mark.parametrize(("diameter", "category"), [(5.0, "2"), (29.9, "2"), (30.0, "3"), (45.0, "3")])
def test_ground_glass_rows(diameter, category):
    result = lung_rads(diameter, attrs(GROUND_GLASS))
    assert result.category == category and result.texture == "ground glass"


@pytest.mark.parametrize(
    ("diameter", "category", "solid_part"),
    [
        (5.9, "2", None),  # < 6 mm total
        (6.0, "3", 3.0),  # >= 6 total, solid part < 6
        (11.8, "3", 5.9),
        (12.0, "4A", 6.0),  # solid part 6 to < 8
        (15.8, "4A", 7.9),
        (16.0, "4B", 8.0),  # solid part >= 8
    ],
)
def test_part_solid_rows_on_the_estimated_solid_part(diameter, category, solid_part):
    result = lung_rads(diameter, attrs(PART_SOLID))
    assert result.category == category and result.texture == "part-solid"
    if solid_part is not None:
        assert result.inputs["solid_part_mm"] == pytest.approx(solid_part)
        assert "estimated as 50% of the diameter from texture 3.00" in result.rule
        assert "a marker does not measure it" in result.rule


def test_solid_part_fraction_follows_the_texture_score():
    assert [solid_fraction(t) for t in (1.0, 2.0, 3.0, 4.0, 5.0)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert lung_rads(20.0, attrs(2.0)).inputs["solid_part_mm"] == 5.0  # 25%: category 3
    assert lung_rads(20.0, attrs(2.0)).category == "3"
    assert lung_rads(10.0, attrs(3.9)).category == "4A"  # 72.5% of 10 mm = 7.2 mm


@pytest.mark.parametrize(
    ("texture", "expected"),
    [(1.0, "ground glass"), (1.99, "ground glass"), (2.0, "part-solid"), (3.99, "part-solid"),
     (4.0, "solid"), (5.0, "solid")],
)  # fmt: skip
def test_texture_cut_offs(texture, expected):
    assert lung_rads(7.0, attrs(texture)).texture == expected


@pytest.mark.parametrize("calcification", [1.0, 2.4, 4.5])
def test_benign_calcification_is_category_1(calcification):
    result = lung_rads(20.0, attrs(SOLID, calcification=calcification, spiculation=5.0))
    assert result.category == "1" and result.rule.startswith("benign calcification")
    assert "12 months" in result.follow_up


@pytest.mark.parametrize("calcification", [4.6, 6.0])
def test_absent_or_doubtful_calcification_uses_the_table(calcification):
    assert lung_rads(20.0, attrs(SOLID, calcification=calcification)).category == "4B"


@pytest.mark.parametrize(
    ("diameter", "texture", "before"),
    [(6.0, SOLID, "3"), (8.0, SOLID, "4A"), (15.0, SOLID, "4B"), (30.0, GROUND_GLASS, "3"),
     (12.0, PART_SOLID, "4A")],
)  # fmt: skip
def test_spiculation_raises_3_and_4_to_4x(diameter, texture, before):
    assert lung_rads(diameter, attrs(texture, spiculation=3.49)).category == before
    raised = lung_rads(diameter, attrs(texture, spiculation=3.5))
    assert raised.category == "4X" and f"category {before} raised to 4X" in raised.rule
    assert "suspicious feature: spiculation" in raised.rule
    assert raised.follow_up.startswith("diagnostic chest CT")


@pytest.mark.parametrize(("diameter", "texture"), [(5.0, SOLID), (29.0, GROUND_GLASS), (5.0, PART_SOLID)])
def test_spiculation_never_raises_category_2(diameter, texture):
    assert lung_rads(diameter, attrs(texture, spiculation=5.0)).category == "2"


def test_spiculation_never_overrides_benign_calcification():
    assert lung_rads(10.0, attrs(SOLID, calcification=3.0, spiculation=5.0)).category == "1"


def test_missing_optional_ratings_are_said_not_assessed():
    result = lung_rads(10.0, {"texture": 5.0})
    assert result.category == "4A"
    assert "spiculation not given" in result.rule and "calcification not given" in result.rule


def test_study_category_is_the_highest_in_order():
    assert CATEGORIES == ("1", "2", "3", "4A", "4B", "4X")
    made = {
        "1": lung_rads(10.0, attrs(SOLID, calcification=1.0)),
        "2": lung_rads(5.0, attrs(SOLID)),
        "3": lung_rads(7.0, attrs(SOLID)),
        "4A": lung_rads(10.0, attrs(SOLID)),
        "4B": lung_rads(20.0, attrs(SOLID)),
        "4X": lung_rads(7.0, attrs(SOLID, spiculation=4.0)),
    }
    assert [made[c].category for c in CATEGORIES] == list(CATEGORIES)
    assert study_category([]) is None
    for top in range(len(CATEGORIES)):
        subset = [made[c] for c in CATEGORIES[: top + 1]]
        for order in (subset, subset[::-1]):
            assert study_category(order).category == CATEGORIES[top]
    assert study_category([made["4B"], made["4X"], made["4A"]]) is made["4X"]


def test_study_category_takes_diameter_and_result_pairs():
    result = NoduleResult(id="n1", malignancy=0.7, uncertainty=0.1, attributes=attrs(SOLID))
    best = study_category([(5.0, attrs(SOLID)), (16.0, result), (9.0, attrs(SOLID))])
    assert isinstance(best, LungRads) and best.category == "4B" and best.inputs["diameter_mm"] == 16.0
    with pytest.raises(ValueError, match="LungRads or"):
        study_category(["4A"])


@pytest.mark.parametrize("diameter", [-1.0, 0.0, math.nan, math.inf, "8", None, True])
def test_nonsense_diameter_is_refused(diameter):
    with pytest.raises(ValueError, match="diameter"):
        lung_rads(diameter, attrs(SOLID))


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"calcification": 6.0}, "texture.*missing"),
        ({"texture": None}, "texture.*missing"),
        ({"texture": math.nan}, "texture must be a finite"),
        ({"texture": 0.2}, "outside the LIDC scale 1..5"),
        ({"texture": 5.0, "calcification": 7.0}, "calcification 7 is outside the LIDC scale 1..6"),
        ({"texture": 5.0, "spiculation": "high"}, "spiculation must be a finite"),
        ([5.0], "mapping"),
    ],
)
def test_nonsense_attributes_are_refused(attributes, message):
    with pytest.raises(ValueError, match=message):
        lung_rads(8.0, attributes)


def test_numpy_numbers_are_accepted():
    result = lung_rads(np.float32(8.0), {"texture": np.float64(4.5), "spiculation": np.float32(1.0)})
    assert result.category == "4A"


def test_diameter_is_taken_to_a_tenth_of_a_mm():
    assert lung_rads(5.96, attrs(SOLID)).category == "3"
    assert lung_rads(5.94, attrs(SOLID)).category == "2"


@pytest.mark.parametrize(
    ("diameter", "texture", "advice"),
    [
        (5.4, "solid", "< 6 mm: no routine follow-up"),
        (5.5, "solid", "6-8 mm: CT at 6-12 months"),
        (8.4, "solid", "6-8 mm: CT at 6-12 months"),
        (8.5, "solid", "> 8 mm: consider CT at 3 months, PET/CT or tissue sampling"),
        (5.0, "ground glass", "< 6 mm: no routine follow-up"),
        (12.0, "ground glass", "CT every 2 years until 5 years"),
        (5.0, "part-solid", "< 6 mm: no routine follow-up"),
        (7.0, "part-solid", "CT at 3-6 months to confirm persistence"),
    ],
)
def test_fleischner_single_nodule(diameter, texture, advice):
    text = fleischner(diameter, texture)
    assert text.startswith(f"Fleischner 2017, single {texture} nodule") and advice in text
    assert "marker" in text and "model" in text


def test_fleischner_refuses_nonsense():
    with pytest.raises(ValueError, match="texture must be one of"):
        fleischner(7.0, "subsolid")
    with pytest.raises(ValueError, match="diameter"):
        fleischner(math.nan, "solid")


def test_nodule_category_lets_the_reader_win_and_says_so():
    from core.nodule.lungrads import nodule_category

    model = {"texture": 5.0, "calcification": 6.0, "spiculation": 1.0}
    assert nodule_category(10.0, model).category == "4A"
    assert "model's texture guess" in nodule_category(10.0, model).basis
    reader = nodule_category(10.0, model, {"texture": 1.0})
    assert reader.category == "2" and "reader's texture rating" in reader.basis
    assert nodule_category(10.0, None, {"texture": 1.0}) is None  # not analysed yet
    assert nodule_category(10.0, {"texture": 9.0}) is None  # off the scale: not assessed


class Measured(NamedTuple):
    mean_diameter_mm: float
    texture: str
    solid_diameter_mm: float | None = None


@pytest.mark.parametrize(
    ("marker", "measured", "category"), [(5.0, 8.2, "4A"), (9.0, 5.9, "2"), (7.0, 15.0, "4B")]
)
def test_a_measured_size_replaces_the_marker_diameter(marker, measured, category):
    assert lung_rads(marker, attrs(SOLID)).category != category
    result = lung_rads(marker, attrs(SOLID), measured=Measured(measured, "solid"))
    assert result.category == category and f"(measured {measured:.1f} mm)" in result.rule
    assert result.inputs["diameter_mm"] == measured and result.inputs["size_basis"] == "measured"
    assert "size measured on the nodule's 3D mask" in result.basis and "estimated" not in result.basis


@pytest.mark.parametrize(
    ("solid", "category"),
    [(5.9, "3"), (6.0, "4A"), (7.9, "4A"), (8.0, "4B")],  # ACR v2022 part-solid rows, baseline
)
def test_a_measured_solid_part_sets_the_part_solid_row(solid, category):
    # the texture score's estimate would be half of 12 mm = 6.0 mm: category 4A whatever was measured
    assert lung_rads(12.0, attrs(PART_SOLID)).category == "4A"
    result = lung_rads(12.0, attrs(PART_SOLID), measured=Measured(12.0, "part-solid", solid))
    assert result.category == category and result.texture == "part-solid"
    assert result.inputs["solid_part_mm"] == solid and result.inputs["solid_part_basis"] == "measured"
    assert "measured on its solid component" in result.rule and "estimated" not in result.rule
    assert f"solid part measured ({solid:.1f} mm)" in result.basis


def test_part_solid_under_6_mm_total_is_category_2_whatever_its_solid_part():
    assert lung_rads(9.0, attrs(SOLID), measured=Measured(5.9, "part-solid", 5.0)).category == "2"


def test_the_measured_texture_replaces_the_models_but_not_the_readers():
    measured = Measured(12.0, "ground glass")
    assert lung_rads(12.0, attrs(SOLID)).category == "4A"
    by_mask = lung_rads(12.0, attrs(SOLID), measured=measured)
    assert by_mask.category == "2" and by_mask.texture == "ground glass"
    assert (
        by_mask.inputs["texture_basis"] == "measured" and "texture measured (ground glass)" in by_mask.basis
    )
    by_reader = lung_rads(12.0, attrs(SOLID), from_reader=frozenset({"texture"}), measured=measured)
    assert by_reader.category == "4A" and "the reader's texture rating" in by_reader.basis
    # without any texture score the measurement alone is enough
    assert lung_rads(12.0, {}, measured=measured).category == "2"


def test_a_part_solid_rating_on_a_mask_without_solid_part_is_estimated_and_says_so():
    result = lung_rads(
        10.0, attrs(PART_SOLID), from_reader=frozenset({"texture"}), measured=Measured(16.0, "solid")
    )
    assert result.texture == "part-solid" and result.category == "4B"  # half of 16 mm: 8.0
    assert result.inputs["solid_part_basis"] == "estimated"
    assert "its mask has no solid component" in result.rule
    assert "solid part estimated (8.0 mm)" in result.basis


def test_the_marker_basis_says_estimated():
    assert lung_rads(10.0, attrs(SOLID)).basis.startswith("Basis: estimated from the model's texture guess")


@pytest.mark.parametrize(
    ("measured", "message"),
    [
        (Measured(math.nan, "solid"), "diameter"),
        (Measured(0.0, "solid"), "diameter"),
        (Measured(8.0, "x"), "texture"),
    ],
)
def test_a_nonsense_measurement_is_refused(measured, message):
    with pytest.raises(ValueError, match=message):
        lung_rads(8.0, attrs(SOLID), measured=measured)
    assert nodule_category(8.0, attrs(SOLID), measured=measured) is None


def test_nodule_category_uses_the_measurement():
    assert nodule_category(5.0, attrs(SOLID), measured=Measured(8.0, "solid")).category == "4A"
