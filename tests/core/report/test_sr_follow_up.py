"""The SR of a report with a follow-up reading: a paired nodule's group keeps the prior's tracking UID
and holds the prior size, the change and the VDT as NUMs and its trend as a CODE; a new nodule says
so; still valid for dciodvfy and dsr2xml."""

from __future__ import annotations

import datetime as dt

import highdicom as hd
import numpy as np
import pytest

from core.followup.compare import FollowUp, NewNodule, PairedNodule, StudyInfo
from core.followup.growth import TimePoint, growth
from core.followup.register import Registration
from core.nodule.lungrads_followup import NoduleExam, follow_up_category
from core.nodule.tracking import tracking_uid
from core.report import sr as srmod
from core.report import sr_codes
from core.report.content import build_report
from tests.core.report.test_sr import CARD, assert_valid, by_uid, markers, measured
from tests.dicom_factory import write_series

PRIOR_DAY, DAY = dt.date(2025, 3, 1), dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def written(series, tmp_path_factory):
    files, volume = series
    ms = markers(3)
    change = growth(TimePoint(PRIOR_DAY, 6.0, 100.0), TimePoint(DAY, 8.0, 200.0))
    rads = follow_up_category(NoduleExam(DAY, "solid", 8.0), [NoduleExam(PRIOR_DAY, "solid", 6.0)])
    pair = PairedNodule("p1", ms[0].id, tracking_uid("9.8.7", "p1"), 1.0, False, change, rads)
    new = NewNodule(ms[1].id, tracking_uid(volume.metadata.series_uid, ms[1].id), None, None)
    meta = volume.metadata
    reading = FollowUp(
        StudyInfo("9.8", "9.8.7", PRIOR_DAY), StudyInfo(meta.study_uid, meta.series_uid, DAY),
        Registration(np.eye(4), 0.5, 3.0), (pair,), (new,), (), {}, rads.category, ms[0].id, rads.follow_up,
    )  # fmt: skip
    report = build_report(volume, ms, {}, {}, CARD, follow_up=reading)
    prior_files = write_series(tmp_path_factory.mktemp("prior-ct"), n=3)
    path = srmod.write_sr(
        report, files, tmp_path_factory.mktemp("sr-fu") / "report.dcm", prior_files=prior_files
    )
    return report, path, rads, prior_files


def test_a_paired_nodule_keeps_the_prior_uid_with_its_prior_size_change_and_vdt(written):
    _, path, rads_with_prior, _ = written
    groups = by_uid(hd.sr.srread(path))
    group = groups[tracking_uid("9.8.7", "p1")]
    expected = {
        sr_codes.PRIOR_VOLUME: 100.0, sr_codes.PRIOR_DIAMETER: 6.0, sr_codes.INTERVAL: 365,
        sr_codes.VOLUME_CHANGE: 100.0, sr_codes.DIAMETER_CHANGE: 2.0, sr_codes.DOUBLING_TIME: 365.0,
    }  # fmt: skip
    for concept, value in expected.items():
        assert measured(group, concept, None) == [pytest.approx(value)], concept.meaning
    (trend,) = group.get_qualitative_evaluations(name=sr_codes.TREND)
    assert trend.value.value == "TREND-GROWING"
    (rads,) = group.get_qualitative_evaluations(name=srmod.LUNG_RADS)
    assert rads.value.value == f"LUNGRADS-{rads_with_prior.category}"  # with priors: growing
    assert rads_with_prior.inputs["status"] == "growing"


def test_a_new_nodule_says_so_and_a_nodule_outside_the_reading_has_no_follow_up_items(written):
    report, path, _, _ = written
    groups = by_uid(hd.sr.srread(path))
    by_marker = {n.marker.id: groups[n.tracking_uid] for n in report.nodules}
    (trend,) = by_marker["marker-1"].get_qualitative_evaluations(name=sr_codes.TREND)
    assert trend.value.value == "TREND-NEW"
    for marker_id in ("marker-1", "marker-2"):
        assert measured(by_marker[marker_id], sr_codes.PRIOR_VOLUME, None) == []
    assert by_marker["marker-2"].get_qualitative_evaluations(name=sr_codes.TREND) == []


def test_the_prior_study_is_referenced_as_other_evidence(written, series):
    import pydicom

    _, path, _, prior_files = written
    sr = pydicom.dcmread(path)
    prior = [pydicom.dcmread(f, stop_before_pixels=True) for f in prior_files]
    (other,) = sr.PertinentOtherEvidenceSequence
    assert other.StudyInstanceUID == prior[0].StudyInstanceUID != sr.StudyInstanceUID
    referenced = {
        i.ReferencedSOPInstanceUID for s in other.ReferencedSeriesSequence for i in s.ReferencedSOPSequence
    }
    assert referenced == {ds.SOPInstanceUID for ds in prior}
    current = {e.StudyInstanceUID for e in sr.CurrentRequestedProcedureEvidenceSequence}
    assert current == {sr.StudyInstanceUID}


def test_the_sr_with_a_follow_up_is_valid(written):
    assert_valid(written[1])
