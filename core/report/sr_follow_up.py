"""A nodule's follow-up in its SR measurement group (``core.report.sr``): the prior time point and the
change since it, from the report's follow-up reading (``NoduleReport.prior``, ``core.followup.compare``).

The group keeps the tracking identifier and the tracking UID of the prior's nodule (``build_report``
gives a paired nodule the prior's UID), so a PACS follows one nodule across both studies. Its items::

    +- CONTAINS  NUM (PRIORVOLUME, 99MTMR, "Volume at the prior study") [mm3]
    +- CONTAINS  NUM (PRIORDIAMETER, 99MTMR, "Mean diameter at the prior study") [mm]
    +- CONTAINS  NUM (PRIORINTERVAL, 99MTMR, "Interval since the prior study") [d]
    +- CONTAINS  NUM (VOLUMECHANGE, 99MTMR, "Volume change since the prior study") [%]
    +- CONTAINS  NUM (DIAMETERCHANGE, 99MTMR, "Mean diameter change since the prior study") [mm]
    +- CONTAINS  NUM (VDT, 99MTMR, "Volume doubling time") [d]      only for a growing nodule
    +- CONTAINS  CODE (TREND, 99MTMR, "Change since the prior study") = (TREND-NEW | TREND-GROWING |
                   TREND-STABLE | TREND-SHRINKING | TREND-WITHINERROR, 99MTMR)

(a number that was not measured, the prior volume of a nodule measured by diameter only, is left out).

The prior study's instances, when the caller gives them (``build_sr(prior_datasets=...)``), join the
SR's evidence: being of another study, highdicom lists them in the Pertinent Other Evidence Sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.report.content import NoduleReport, StudyReport
from core.report.sr_codes import (
    CUBIC_MILLIMETER,
    DAYS,
    DIAMETER_CHANGE,
    DOUBLING_TIME,
    INTERVAL,
    PERCENT,
    PRIOR_DIAMETER,
    PRIOR_VOLUME,
    TREND,
    TREND_VALUES,
    VOLUME_CHANGE,
)


def prior_measurements(nodule: NoduleReport) -> list[hd.sr.Measurement]:
    """The prior's size and the change since it, as NUMs (none without a measured pair)."""
    change = nodule.prior.growth if nodule.prior is not None else None
    if change is None:
        return []
    mm = codes.UCUM.Millimeter
    values = [
        (PRIOR_VOLUME, change.prior_volume_mm3, CUBIC_MILLIMETER),
        (PRIOR_DIAMETER, change.prior_mean_diameter_mm, mm),
        (INTERVAL, change.interval_days, DAYS),
        (VOLUME_CHANGE, change.volume_change_percent, PERCENT),
        (DIAMETER_CHANGE, change.diameter_change_mm, mm),
        (DOUBLING_TIME, change.vdt_days, DAYS),
    ]
    return [
        hd.sr.Measurement(name=name, value=round(float(value), 2), unit=unit)
        for name, value, unit in values
        if value is not None
    ]


def trend_evaluation(nodule: NoduleReport) -> hd.sr.QualitativeEvaluation | None:
    """The nodule's status at the follow-up (new, growing, ...), or None outside a follow-up reading."""
    value = TREND_VALUES.get(nodule.follow_up_status)
    return None if value is None else hd.sr.QualitativeEvaluation(name=TREND, value=value)


def prior_evidence(report: StudyReport, prior_datasets: Sequence[Dataset], uids) -> list[Dataset]:
    """Minimal header copies of the prior study's instances (``uids``: the SR's ``UidMap``, so an
    anonymised SR remaps them as it does the current study's). Instances of the report's own study, or
    without the UIDs a reference needs, are left out."""
    own_study = report.study.get("study_uid", "")
    evidence = []
    for source in prior_datasets:
        keys = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
        if not all(source.get(k) for k in keys) or uids(source.StudyInstanceUID) == own_study:
            continue
        ds = Dataset()
        ds.SOPClassUID = source.SOPClassUID
        for keyword in keys[1:]:
            setattr(ds, keyword, uids(source.get(keyword)))
        ds.Modality = source.get("Modality") or "CT"
        evidence.append(ds)
    return evidence
