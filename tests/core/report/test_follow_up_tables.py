"""A report with a follow-up reading: each nodule's prior size, change, VDT and trend in the CSV and the
JSON (read back as written), the prior's tracking UID and Lung-RADS with priors; nodules outside the
reading unchanged."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from core.followup.compare import FollowUp, NewNodule, NoduleSize, PairedNodule, StudyInfo
from core.followup.growth import TimePoint, growth
from core.followup.register import Registration
from core.nodule.lungrads_followup import NoduleExam, follow_up_category
from core.nodule.markers import NoduleMarker
from core.nodule.tracking import tracking_uid
from core.report.content import build_report
from core.report.tables import report_csv_rows, report_from_json, report_json
from tests.core.report.test_tables import CARD, NOW, make_volume

PRIOR_DAY, DAY = dt.date(2025, 3, 1), dt.date(2026, 3, 1)
PRIOR_SERIES = "1.2.3.9.5"


def follow_up() -> FollowUp:
    change = growth(TimePoint(PRIOR_DAY, 6.0, 100.0), TimePoint(DAY, 8.0, 200.0))
    rads = follow_up_category(NoduleExam(DAY, "solid", 8.0), [NoduleExam(PRIOR_DAY, "solid", 6.0)])
    pair = PairedNodule("p1", "m1", tracking_uid(PRIOR_SERIES, "p1"), 1.25, False, change, rads)
    new_rads = follow_up_category(NoduleExam(DAY, "solid", 5.0), screened_before=True)
    new = NewNodule("m2", tracking_uid("1.2.3.4.5", "m2"), NoduleSize(60.0, 5.0, "solid"), new_rads)
    return FollowUp(
        StudyInfo("1.2.3.9", PRIOR_SERIES, PRIOR_DAY), StudyInfo("1.2.3.4", "1.2.3.4.5", DAY),
        Registration(np.eye(4), 0.5, 3.0), (pair,), (new,), ("p2",), {}, rads.category, "m1", rads.follow_up,
    )  # fmt: skip


def report():
    markers = [NoduleMarker(f"m{k}", f"N{k}", (0.0, 0.0, 10.0 + k), 6.0) for k in (1, 2, 3)]
    return build_report(make_volume(), markers, {}, {}, CARD, now=NOW, follow_up=follow_up())


def test_a_paired_nodule_carries_its_prior_the_prior_uid_and_lung_rads_with_priors():
    reading = follow_up()
    by_id = {n.marker.id: n for n in report().nodules}
    paired, new, other = by_id["m1"], by_id["m2"], by_id["m3"]
    assert paired.prior == reading.pairs[0] and paired.follow_up_status == "growing"
    assert paired.tracking_uid == tracking_uid(PRIOR_SERIES, "p1") != tracking_uid("1.2.3.4.5", "m1")
    assert paired.lung_rads == reading.pairs[0].lung_rads and paired.lung_rads.inputs["status"] == "growing"
    assert new.follow_up_status == "new" and new.prior is None and new.lung_rads.inputs["status"] == "new"
    assert new.tracking_uid == tracking_uid("1.2.3.4.5", "m2")
    assert (
        other.follow_up_status == ""
        and other.prior is None
        and other.lung_rads is None  # no result, no measurement
    )


def test_csv_rows_have_prior_size_change_vdt_and_trend():
    rows = {r["marker_id"]: r for r in report_csv_rows(report())}
    paired = rows["m1"]
    assert paired["follow_up_status"] == "growing" and paired["prior_marker_id"] == "p1"
    assert paired["prior_volume_mm3"] == 100.0 and paired["volume_change_percent"] == 100.0
    assert paired["prior_mean_diameter_mm"] == 6.0 and paired["diameter_change_mm"] == 2.0
    assert paired["vdt_days"] == 365 and paired["vdt"] == "365 days" and paired["interval_days"] == 365
    assert paired["lungrads_growth"] is True and paired["volume_growth"] is True
    assert paired["volume_method"] == "independent"  # how the two volumes were measured
    assert rows["m2"]["follow_up_status"] == "new" and rows["m2"]["prior_volume_mm3"] is None
    assert all(rows["m3"][k] is None for k in ("follow_up_status", "prior_marker_id", "vdt_days"))


def test_json_carries_the_prior_and_reads_back_as_written():
    written = report()
    data = json.loads(json.dumps(report_json(written), allow_nan=False))
    by_id = {n["marker"]["id"]: n for n in data["nodules"]}
    prior = by_id["m1"]["prior"]
    assert prior["prior_volume_mm3"] == 100.0 and prior["vdt_days"] == 365.0 and prior["trend"] == "growing"
    assert "tracking_uid" not in prior and by_id["m2"]["follow_up_status"] == "new"
    assert by_id["m3"]["prior"] is None
    assert report_from_json(data) == written


def test_a_report_written_before_follow_ups_still_reads_back():
    data = report_json(
        build_report(make_volume(), [NoduleMarker("m1", "N1", (0.0, 0.0, 11.0), 6.0)], {}, {}, CARD, now=NOW)
    )
    for nodule in data["nodules"]:
        del nodule["prior"], nodule["follow_up_status"]
    (nodule,) = report_from_json(data).nodules
    assert nodule.prior is None and nodule.follow_up_status == ""


def test_measuring_the_report_keeps_lung_rads_with_priors():
    """The export measures nodules without a measurement and recategorises them from the measured
    sizes at baseline; a nodule of the follow-up reading keeps its category with priors."""
    import numpy as np

    from core.measure.mask import NoduleMask
    from core.report.content import with_measurements

    volume = make_volume()
    markers = [NoduleMarker("m1", "N1", (0.0, 0.0, 11.0), 6.0)]
    mask = NoduleMask((4, 16, 13), np.ones((2, 3, 3), bool), "classical/test", (0.0, 0.0, 11.0), 6.0)
    built = build_report(volume, markers, {}, {}, CARD, now=NOW, masks={"m1": mask}, follow_up=follow_up())
    (nodule,) = with_measurements(built, volume, segment=False).nodules
    assert nodule.measurement is not None  # it was measured ...
    assert nodule.lung_rads == follow_up().pairs[0].lung_rads  # ... and keeps Lung-RADS with priors
