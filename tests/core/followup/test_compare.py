"""compare: a phantom follow-up registered, paired, measured at both times, with growth and Lung-RADS."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from core.followup import compare as compare_module
from core.followup.compare import FollowUp, compare
from core.followup.matching import Overrides
from core.followup.register import Registration, refine_point
from core.measure.markers import measure_markers
from core.measure.paired import paired_volumes
from core.nodule.lungrads import CATEGORIES
from core.nodule.lungrads_followup import add_months
from core.nodule.markers import NoduleMarker
from core.nodule.tracking import tracking_uid
from core.util.cancellation import Cancelled

PRIOR_DATE, CURRENT_DATE = dt.date(2024, 11, 27), dt.date(2026, 1, 1)
DATES = (PRIOR_DATE, CURRENT_DATE)


def markers(placed) -> list[NoduleMarker]:
    return [NoduleMarker(p.truth()["id"], "", p.centre_mm, p.nodule.diameter_mm) for p in placed]


def air_marker(volume, marker_id: str = "air") -> NoduleMarker:
    """A marker inside the volume but in the air in front of the chest: it cannot be measured."""
    corner = volume.voxel_to_mm(np.array([3.0, 3.0, volume.shape[0] // 2]))
    return NoduleMarker(marker_id, "", tuple(corner), 6.0)


@pytest.fixture(scope="module")
def pair():
    from core.phantom.followup import FollowUpOptions, build_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    return build_follow_up(
        SMALL, FollowUpOptions(interval_days=400, current_slice_thickness=2.5), four_nodules()
    )


@pytest.fixture(scope="module")
def result(pair):
    return compare(
        pair.prior, pair.current, markers(pair.prior_nodules), markers(pair.current_nodules), dates=DATES
    )


def test_nodules_pair_as_the_truth_says_and_new_and_resolved_are_found(pair, result):
    truth = {(p["prior_id"], p["current_id"]) for p in pair.truth["pairs"]}
    assert {(p.prior_id, p.current_id) for p in result.pairs} == truth
    assert [n.current_id for n in result.new] == pair.truth["new"]
    assert list(result.resolved) == pair.truth["resolved"]
    assert result.interval_days == (CURRENT_DATE - PRIOR_DATE).days
    assert result.registration.lung_surface_mm < result.registration.lung_surface_before_mm


def test_each_pair_has_both_sizes_the_change_its_direction_and_lung_rads(pair, result):
    factors = {p["prior_id"]: p["volume_factor"] for p in pair.truth["pairs"]}
    for p in result.pairs:
        g = p.growth
        assert g is not None and not p.error and p.lung_rads is not None
        assert g.prior_volume_mm3 > 0 and g.current_volume_mm3 > 0 and g.interval_days == 400
        # the truth's factors here are 1.36 and 0.71: the measured change goes the same way
        assert np.sign(g.volume_change_percent) == np.sign(factors[p.prior_id] - 1)
        assert (g.vdt_days is not None) == (g.trend == "growing")
        assert p.lung_rads.inputs["status"] in ("stable", "growing", "slow-growing")


def test_tracking_uids_follow_the_rule(pair, result):
    for p in result.pairs:
        assert p.tracking_uid == tracking_uid("prior", p.prior_id)
    for n in result.new:
        assert n.tracking_uid == tracking_uid("current", n.current_id)
    # the phantom's new nodule has the id of a prior one (n2): their UIDs still differ
    uids = [p.tracking_uid for p in result.pairs] + [n.tracking_uid for n in result.new]
    assert len(set(uids)) == len(uids)


def test_the_exam_category_is_the_highest_nodule_with_its_due_date(result):
    categories = [p.lung_rads.category for p in result.pairs] + [n.lung_rads.category for n in result.new]
    highest = max(categories, key=CATEGORIES.index)
    assert result.category == highest
    new_ids = {n.current_id for n in result.new}
    assert result.category_nodule in {p.current_id for p in result.pairs} | new_ids
    months = {"1": 12, "2": 12, "3": 6, "4A": 3}.get(highest)
    assert result.due == (add_months(CURRENT_DATE, months) if months else None)
    assert all(n.lung_rads.inputs["status"] == "new" for n in result.new)


def test_the_record_reads_back_as_it_was_written(result):
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert FollowUp.from_dict(data).to_dict() == result.to_dict()
    keys = {
        "prior_id", "current_id", "prior_volume_mm3", "current_volume_mm3", "prior_mean_diameter_mm",
        "current_mean_diameter_mm", "volume_change_percent", "diameter_change_mm", "vdt_days", "trend",
        "lungrads_growth", "volume_growth", "lung_rads",
    }  # fmt: skip
    assert all(keys <= set(p) for p in data["pairs"])
    assert set(data) >= {"registration", "pairs", "new", "resolved", "exam", "repeatability"}
    assert data["exam"]["category"] == result.category


def test_the_record_names_the_measurement_error_it_was_judged_by(result):
    """The measured repeatability by default; a record saved before it was kept reads with today's."""
    from core.followup.growth import Repeatability
    from core.measure.measurement import (
        REPEATABILITY_DIAMETER_MM,
        REPEATABILITY_PAIRED_VOLUME_PERCENT,
        REPEATABILITY_VOLUME_PERCENT,
    )

    data = json.loads(json.dumps(result.to_dict()))
    assert data["repeatability"] == {
        "volume_percent": REPEATABILITY_VOLUME_PERCENT,
        "diameter_mm": REPEATABILITY_DIAMETER_MM,
        "paired_volume_percent": REPEATABILITY_PAIRED_VOLUME_PERCENT,
    }
    # saved before volumes measured together had their own limit: that record judged them by the one
    data["repeatability"] = {"volume_percent": 10.2, "diameter_mm": 0.6}
    assert FollowUp.from_dict(data).repeatability == Repeatability(10.2, 0.6, 10.2)
    del data["repeatability"]
    assert FollowUp.from_dict(data).repeatability == Repeatability()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(schema="other"),
        lambda d: d.pop("exam"),
        lambda d: d["pairs"][0].pop("interval_days"),
        lambda d: d["prior"].update(date="yesterday"),
        lambda d: d["registration"].update(current_to_prior=[[1, 0], [0, 1]]),
        lambda d: d["new_nodules"][0]["lung_rads"].update(colour="red"),
        lambda d: d.update(overrides={"pairs": "n1 with n2"}),
        lambda d: d.update(repeatability={"volume_percent": -5.0}),
        lambda d: d.update(repeatability={"percent": 5.0}),
    ],
)
def test_a_damaged_record_is_a_value_error(result, damage):
    data = json.loads(json.dumps(result.to_dict()))
    damage(data)
    with pytest.raises(ValueError, match=r"follow-up|registration"):
        FollowUp.from_dict(data)


def test_a_marker_that_cannot_be_measured_is_reported_and_the_rest_compared(pair, result):
    priors = [*markers(pair.prior_nodules), air_marker(pair.prior)]
    currents = [*markers(pair.current_nodules), air_marker(pair.current, "air-now")]
    new_id = pair.truth["new"][0]
    # the reader pairs the prior's unmeasurable marker with the new nodule: that pair has no growth
    found = compare(
        pair.prior, pair.current, priors, currents, dates=DATES, registration=result.registration,
        overrides=Overrides(pairs=(("air", new_id),)),
    )  # fmt: skip
    assert set(found.unmeasured["prior"]) == {"air"} and set(found.unmeasured["current"]) == {"air-now"}
    manual = next(p for p in found.pairs if p.prior_id == "air")
    assert manual.current_id == new_id and manual.manual and manual.growth is None
    assert manual.lung_rads is None and "prior marker air not measured" in manual.error
    others = {(p.prior_id, p.current_id): p for p in found.pairs if not p.manual}
    assert set(others) == {(p.prior_id, p.current_id) for p in result.pairs}
    assert all(p.growth is not None for p in others.values())
    unmeasured_new = next(n for n in found.new if n.current_id == "air-now")
    assert unmeasured_new.size is None and unmeasured_new.lung_rads is None
    assert json.loads(json.dumps(found.to_dict()))["unmeasured"]["current"]["air-now"]
    # the reader's pairing is kept with the reading, so comparing again keeps it
    assert FollowUp.from_dict(found.to_dict()).overrides == Overrides(pairs=(("air", new_id),))


def test_a_given_registration_is_used_not_computed_again(pair, result, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("registered again")

    monkeypatch.setattr(compare_module, "register", refuse)
    again = compare(
        pair.prior, pair.current, markers(pair.prior_nodules), markers(pair.current_nodules),
        dates=DATES, registration=result.registration,
    )  # fmt: skip
    assert again.registration is result.registration
    assert again.to_dict()["pairs"] == result.to_dict()["pairs"]


def test_cancelling_raises_cancelled_and_progress_ends_at_the_total(pair, result):
    seen = []
    compare(
        pair.prior, pair.current, markers(pair.prior_nodules), [], dates=DATES,
        registration=result.registration, progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def cancel_on_third() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        compare(
            pair.prior, pair.current, markers(pair.prior_nodules), markers(pair.current_nodules),
            dates=DATES, registration=result.registration, cancelled=cancel_on_third,
        )  # fmt: skip


def test_dates_wrong_or_missing_are_messages_naming_the_study(pair, result):
    with pytest.raises(ValueError, match=r"prior study.*no usable study date"):
        compare(pair.prior, pair.current, [], [], registration=result.registration)
    with pytest.raises(ValueError, match="later than the current"):
        compare(pair.prior, pair.current, [], [], dates=DATES[::-1], registration=result.registration)


def test_no_nodules_at_all_is_category_1_due_in_a_year(pair):
    shift = Registration(np.eye(4), 0.0, 0.0)
    found = compare(pair.prior, pair.current, [], [], dates=DATES, registration=shift)
    assert (found.pairs, found.new, found.resolved) == ((), (), ())
    assert found.category == "1" and found.due == add_months(CURRENT_DATE, 12)


def test_pairs_are_measured_together_and_a_reading_saved_before_that_reads_back(pair, result):
    """Issue 17: a pair whose nodule was found again has its volumes measured together
    (``core.measure.paired``): the current keeps its own volume, the prior is it less the change.
    A reading saved before the method was recorded still reads back (method unknown)."""
    alone = compare(
        pair.prior, pair.current, markers(pair.prior_nodules), markers(pair.current_nodules),
        dates=DATES, registration=result.registration, paired=False,
    )  # fmt: skip
    own = {p.prior_id: p.growth for p in alone.pairs}
    prior_markers, current_markers = markers(pair.prior_nodules), markers(pair.current_nodules)
    prior_done = measure_markers(pair.prior, prior_markers)
    current_done = measure_markers(pair.current, current_markers)
    centres = {m.id: np.array(m.centre_mm) for m in prior_markers}
    for p in result.pairs:
        assert p.growth.volume_method == "paired" and own[p.prior_id].volume_method == "independent"
        assert p.growth.current_volume_mm3 == own[p.prior_id].current_volume_mm3
        # through the registration moved so that the refined point lands on the prior marker
        point = refine_point(pair.prior, pair.current, centres[p.prior_id], result.registration)
        matrix = np.array(result.registration.current_to_prior)
        matrix[:3, 3] = centres[p.prior_id] - matrix[:3, :3] @ np.array(point.current_mm)
        expected = paired_volumes(
            pair.prior, prior_done.masks[p.prior_id], pair.current, current_done.masks[p.current_id],
            matrix, current_done.measurements[p.current_id].volume_mm3,
        )  # fmt: skip
        assert p.growth.prior_volume_mm3 == pytest.approx(expected.prior_mm3)
        assert p.growth.prior_volume_mm3 != pytest.approx(own[p.prior_id].prior_volume_mm3)
    data = json.loads(json.dumps(result.to_dict()))
    for entry in data["pairs"]:
        del entry["volume_method"]
    assert all(p.growth.volume_method is None for p in FollowUp.from_dict(data).pairs)
