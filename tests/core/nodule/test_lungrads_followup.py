"""Lung-RADS v2022 with priors: one case per row of the table, each expected category written from the
ACR Lung-RADS v2022 assessment categories (and docs/CLINICAL.md), not from the code."""

import datetime as dt

import pytest

from core.nodule.lungrads import LungRads
from core.nodule.lungrads_followup import NoduleExam, add_months, exam_category, follow_up_category
from core.nodule.lungrads_table import ROWS

T0 = dt.date(2023, 1, 15)


def at(months: int, texture: str, mean: float, solid: float | None = None) -> NoduleExam:
    return NoduleExam(add_months(T0, months), texture, mean, solid)


S, P, G = "solid", "part-solid", "ground glass"

# (row key, expected ACR category, current exam, prior exams, keyword arguments)
CASES = [
    # solid, baseline: 2 < 6 mm; 3 6 to < 8; 4A 8 to < 15; 4B >= 15
    ("solid-baseline-2", "2", at(0, S, 5.9), [], {}),
    ("solid-baseline-3", "3", at(0, S, 6.0), [], {}),
    ("solid-baseline-3", "3", at(0, S, 7.9), [], {}),
    ("solid-baseline-4A", "4A", at(0, S, 8.0), [], {}),
    ("solid-baseline-4A", "4A", at(0, S, 14.9), [], {}),
    ("solid-baseline-4B", "4B", at(0, S, 15.0), [], {}),
    # solid, new: 2 < 4 mm; 3 4 to < 6; 4A 6 to < 8; 4B >= 8
    ("solid-new-2", "2", at(12, S, 3.9), [], {"screened_before": True}),
    ("solid-new-3", "3", at(12, S, 4.0), [], {"screened_before": True}),
    ("solid-new-4A", "4A", at(12, S, 6.0), [], {"screened_before": True}),
    ("solid-new-4B", "4B", at(12, S, 8.0), [], {"screened_before": True}),
    # solid, growing (> 1.5 mm within 12 months): 4A < 8 mm; 4B >= 8 mm
    ("solid-growing-4A", "4A", at(6, S, 6.6), [at(0, S, 5.0)], {}),
    ("solid-growing-4B", "4B", at(12, S, 9.0), [at(0, S, 7.0)], {}),
    # slow-growing solid (growth over multiple exams, never 1.5 mm in 12 months): 4B
    ("solid-slow-growing-4B", "4B", at(24, S, 6.6), [at(0, S, 5.0), at(12, S, 5.8)], {}),
    # part-solid, baseline: 2 < 6 total; 3 >= 6 total, solid < 6; 4A solid 6 to < 8; 4B solid >= 8
    ("part-baseline-2", "2", at(0, P, 5.0, 2.0), [], {}),
    ("part-baseline-3", "3", at(0, P, 10.0, 5.9), [], {}),
    ("part-baseline-4A", "4A", at(0, P, 10.0, 6.0), [], {}),
    ("part-baseline-4B", "4B", at(0, P, 12.0, 8.0), [], {}),
    # part-solid, new: 3 < 6 total; 4A new solid component < 4; 4B new solid component >= 4
    ("part-new-3", "3", at(12, P, 5.0, 2.0), [], {"screened_before": True}),
    ("part-new-4A", "4A", at(12, P, 8.0, 3.9), [], {"screened_before": True}),
    ("part-new-4B", "4B", at(12, P, 8.0, 4.0), [], {"screened_before": True}),
    # part-solid, growing solid component: 4A < 4 mm; 4B >= 4 mm; a solid part appearing in a GGN is new
    ("part-growing-4A", "4A", at(6, P, 10.0, 3.8), [at(0, P, 10.0, 2.0)], {}),
    ("part-growing-4B", "4B", at(6, P, 10.0, 5.0), [at(0, P, 10.0, 3.0)], {}),
    ("part-growing-4A", "4A", at(12, P, 10.0, 2.0), [at(0, G, 10.0)], {}),
    ("part-growing-4A", "4A", at(6, P, 10.0, 1.0), [at(0, G, 10.0)], {}),  # new, though only 1 mm
    # slow-growing part-solid: 4B
    ("part-slow-growing-4B", "4B", at(24, P, 12.0, 6.6), [at(0, P, 12.0, 5.0), at(12, P, 12.0, 5.8)], {}),
    # ground glass: 2 < 30 mm baseline, new or growing; 3 >= 30 mm baseline or new
    ("ggn-baseline-2", "2", at(0, G, 29.9), [], {}),
    ("ggn-baseline-3", "3", at(0, G, 30.0), [], {}),
    ("ggn-new-2", "2", at(12, G, 10.0), [], {"screened_before": True}),
    ("ggn-new-3", "3", at(12, G, 31.0), [], {"screened_before": True}),
    ("ggn-growing-2", "2", at(6, G, 12.0), [at(0, G, 10.0)], {}),
    ("ggn-growing-3", "3", at(12, G, 31.0), [at(0, G, 29.0)], {}),
    # ground glass >= 30 mm stable or slowly growing: 2
    ("ggn-stable-2", "2", at(12, G, 32.0), [at(0, G, 32.0)], {}),
    ("ggn-slow-growing-2", "2", at(24, G, 32.0), [at(0, G, 30.0), at(12, G, 31.0)], {}),
    # stepped management: 3 stable at 6 months -> 2; 4A stable at 3 months -> 3
    ("stepped-3-to-2", "2", at(6, S, 7.2), [at(0, S, 7.0)], {}),
    ("stepped-3-to-2", "2", at(6, P, 10.0, 5.0), [at(0, P, 10.5, 5.0)], {"prior_category": "3"}),
    ("stepped-4A-to-3", "3", at(3, S, 10.3), [at(0, S, 10.0)], {}),
    # stable after one month: too early for the 3-month step, 4A stands; 4B has no stepped step
    ("stable-unchanged", "4A", NoduleExam(T0 + dt.timedelta(days=30), S, 10.1), [at(0, S, 10.0)], {}),
    ("stable-unchanged", "4B", at(3, S, 16.0), [at(0, S, 16.0)], {}),
    ("stable-unchanged", "2", at(12, S, 5.0), [at(0, S, 5.0)], {"prior_category": "2"}),
    # a threshold crossed without growth: reclassified by size (5.8 -> 6.3 mm is 2 -> 3)
    ("size-threshold", "3", at(12, S, 6.3), [at(0, S, 5.8)], {}),
    # benign calcification: 1
    ("benign-1", "1", at(0, S, 9.0), [], {"calcification": 3.0}),
    # juxtapleural, solid, smooth, < 10 mm at baseline or new: 2
    ("juxtapleural-2", "2", at(0, S, 9.0), [], {"juxtapleural": True}),
    ("solid-baseline-4A", "4A", at(0, S, 11.0), [], {"juxtapleural": True}),
    # 4X: category 3 or 4 with suspicious features; a GGN doubling in size within a year
    ("4X-spiculation", "4X", at(0, S, 7.0), [], {"spiculation": 4.0}),
    ("solid-baseline-2", "2", at(0, S, 5.0), [], {"spiculation": 4.0}),  # 4X needs category 3 or 4
    ("4X-ggn-doubling", "4X", at(12, G, 10.0), [at(0, G, 5.0)], {}),
]


@pytest.mark.parametrize(("key", "expected", "current", "priors", "options"), CASES)
def test_each_row_gives_the_acr_category(key, expected, current, priors, options):
    result = follow_up_category(current, priors, **options)
    assert isinstance(result, LungRads)
    assert (result.category, result.inputs["row"]) == (expected, key), result.rule


def test_every_row_of_the_table_has_a_case():
    assert {row.key for row in ROWS} <= {case[0] for case in CASES}


def test_the_rule_shows_the_numbers_that_fired_it():
    result = follow_up_category(at(6, S, 6.6), [at(0, S, 5.0)])
    assert "growing solid nodule < 8 mm" in result.rule
    assert "mean 6.6 mm" in result.rule and "+1.6 mm in 181 days" in result.rule
    stepped = follow_up_category(at(6, S, 7.2), [at(0, S, 7.0)])
    assert "prior category 3 computed from its sizes" in stepped.rule


def test_the_prior_category_is_computed_through_the_whole_history():
    # 10 mm at baseline (4A) -> stable at 3 months (3) -> stable at 9 months: 3 stable at 6 months -> 2
    history = [at(0, S, 10.0), at(3, S, 10.2)]
    assert follow_up_category(at(9, S, 10.3), history).category == "2"
    # given as 4A instead (say a reader's call), the same exam steps down only to 3
    assert follow_up_category(at(9, S, 10.3), history, prior_category="4A").category == "3"


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="solid component"):
        NoduleExam(T0, P, 10.0)
    with pytest.raises(ValueError, match="texture"):
        NoduleExam(T0, "cystic", 10.0)
    with pytest.raises(ValueError, match="mean diameter"):
        NoduleExam(T0, S, float("inf"))
    with pytest.raises(ValueError, match="later than the current"):
        follow_up_category(at(0, S, 6.0), [at(3, S, 6.0)])
    with pytest.raises(ValueError, match="prior category"):
        follow_up_category(at(3, S, 6.0), [at(0, S, 6.0)], prior_category="5")


def test_exam_category_is_the_highest_nodule_with_its_due_date():
    exam = at(0, S, 7.0).date  # 2023-01-15
    nodules = [follow_up_category(at(0, S, 5.0)), None, follow_up_category(at(0, S, 9.0))]
    result = exam_category(nodules, exam)
    assert result.category == "4A" and result.nodule is nodules[2]
    assert result.due == dt.date(2023, 4, 15)  # 3-month LDCT
    empty = exam_category([], exam)
    assert (empty.category, empty.due) == ("1", dt.date(2024, 1, 15))  # annual screening
    work_up = exam_category([follow_up_category(at(0, S, 16.0))], exam)
    assert work_up.category == "4B" and work_up.due is None  # diagnostic work-up, no interval


def test_add_months_keeps_to_the_end_of_a_shorter_month():
    assert add_months(dt.date(2023, 8, 31), 6) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2023, 11, 30), 3) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2023, 1, 15), 12) == dt.date(2024, 1, 15)
