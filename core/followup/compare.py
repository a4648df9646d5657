"""A follow-up reading, headless: the prior study registered to the current one, the reader's nodules
paired, both time points measured, growth, and Lung-RADS v2022 with priors per nodule and for the exam.

``compare`` runs the steps of issue 18 in order: ``register`` (unless a saved registration is given),
each prior marker's centre carried into the current study and refined (``refine_point``; the
propagated point where the refinement cannot run), every marker measured (``measure_markers``: its
saved mask while it fits, else segmented), the nodules paired (``match``, the reader's ``Overrides``
winning), each automatic pair's volumes measured together where its nodule's surroundings were found
again (``core.measure.paired``: the current keeps its own volume, the prior's is it less the change
read from both images over one region with one tissue level), ``growth`` per pair,
``follow_up_category`` per current nodule (a paired one against its prior, an unpaired one as new:
the patient was screened before) and ``exam_category`` with the date the follow-up falls due. A
marker that cannot be measured is reported with its reason (``unmeasured``) and still paired by its
marker's centre and diameter; a pair with a side unmeasured has no growth and its ``error`` says why;
everything else is still compared.

Tracking UIDs (``core.nodule.tracking``): a pair carries the prior marker's, so the nodule keeps one
UID across time points; a new nodule has its own study's (a study without a series UID, NIfTI, is
named by its role, so a prior and a current marker of the same id never share one).

``FollowUp.to_dict`` is the ``compare`` command's output and what the session saves (``from_dict``
reads it back, so the comparison is computed once); it keeps the reader's ``overrides`` (re-paired,
unpaired), so a comparison made again keeps them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from core.followup.growth import Growth, Repeatability, TimePoint, growth, study_date
from core.followup.matching import Candidate, Overrides, match
from core.followup.register import Registration, refine_point, register
from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.measure.paired import METHOD as PAIRED
from core.measure.paired import paired_volumes
from core.nodule.lungrads import LungRads
from core.nodule.lungrads_followup import NoduleExam, exam_category, follow_up_category
from core.nodule.markers import NoduleMarker
from core.nodule.tracking import tracking_uid
from core.util.cancellation import check
from core.volume import CTVolume

SCHEMA = "mtmr-reader/follow-up/1"
# progress units of each step (registration is most of the time)
_REGISTER, _REFINE, _MEASURE = 60, 10, 30


@dataclass(frozen=True)
class StudyInfo:
    """Which study a time point is: UIDs and date (never the patient's identity)."""

    study_uid: str
    series_uid: str
    date: _dt.date

    def to_dict(self) -> dict:
        return {"study_uid": self.study_uid, "series_uid": self.series_uid, "date": self.date.isoformat()}


@dataclass(frozen=True)
class NoduleSize:
    """A nodule's size at one time point, as the follow-up reports it."""

    volume_mm3: float
    mean_diameter_mm: float
    texture: str
    solid_diameter_mm: float | None = None


@dataclass(frozen=True)
class PairedNodule:
    """One nodule seen in both studies: the pairing, both sizes, the growth and its Lung-RADS."""

    prior_id: str
    current_id: str
    tracking_uid: str  # the prior marker's
    distance_mm: float  # registered (and refined) distance of the centres
    manual: bool  # paired by the reader
    growth: Growth | None  # None when a side could not be measured (``error`` says why)
    lung_rads: LungRads | None
    error: str = ""

    def to_dict(self) -> dict:
        entry = {
            "prior_id": self.prior_id,
            "current_id": self.current_id,
            "tracking_uid": self.tracking_uid,
            "distance_mm": round(self.distance_mm, 2),
            "manual": self.manual,
        }
        if self.growth is not None:
            entry |= self.growth.to_dict()
        if self.error:
            entry["error"] = self.error
        entry["lung_rads"] = _lung_rads_dict(self.lung_rads)
        return entry

    @classmethod
    def from_dict(cls, data: Mapping) -> PairedNodule:
        """The inverse of ``to_dict``; KeyError, TypeError or ValueError on a damaged entry."""
        change = None
        if "trend" in data:
            optional = {"volume_method"}  # absent from readings saved before it existed
            change = Growth(
                **{n: data[n] for n in Growth.__dataclass_fields__ if n in data or n not in optional}
            )
        return cls(
            str(data["prior_id"]),
            str(data["current_id"]),
            str(data["tracking_uid"]),
            float(data["distance_mm"]),
            bool(data["manual"]),
            change,
            _lung_rads(data["lung_rads"]),
            str(data.get("error", "")),
        )


@dataclass(frozen=True)
class NewNodule:
    """A current nodule without a prior: its size and its Lung-RADS as a new nodule."""

    current_id: str
    tracking_uid: str  # its own study's
    size: NoduleSize | None  # None when it could not be measured
    lung_rads: LungRads | None

    def to_dict(self) -> dict:
        size = self.size
        return {
            "current_id": self.current_id,
            "tracking_uid": self.tracking_uid,
            "current_volume_mm3": size.volume_mm3 if size else None,
            "current_mean_diameter_mm": size.mean_diameter_mm if size else None,
            "texture": size.texture if size else None,
            "solid_diameter_mm": size.solid_diameter_mm if size else None,
            "lung_rads": _lung_rads_dict(self.lung_rads),
        }


@dataclass(frozen=True)
class FollowUp:
    """The comparison of a prior and a current study (see the module docstring)."""

    prior: StudyInfo
    current: StudyInfo
    registration: Registration
    pairs: tuple[PairedNodule, ...]
    new: tuple[NewNodule, ...]
    resolved: tuple[str, ...]  # prior marker ids without a current nodule: resolved or not found
    unmeasured: dict[str, dict[str, str]] = field(default_factory=dict)  # "prior"/"current": id -> why
    category: str = "1"  # the exam's Lung-RADS (its highest nodule's)
    category_nodule: str = ""  # the current marker id that set it ("" when none)
    follow_up: str = ""
    due: _dt.date | None = None  # None for 4B/4X: work-up, not a screening interval
    overrides: Overrides = field(default_factory=Overrides)  # the reader's pairings it was made with
    repeatability: Repeatability = field(default_factory=Repeatability)  # the measurement error judged by

    @property
    def interval_days(self) -> int:
        return (self.current.date - self.prior.date).days

    def to_dict(self) -> dict:
        reg = self.registration
        return {
            "schema": SCHEMA,
            "prior": self.prior.to_dict(),
            "current": self.current.to_dict(),
            "interval_days": self.interval_days,
            "registration": reg.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs],
            "new": [n.current_id for n in self.new],
            "new_nodules": [n.to_dict() for n in self.new],
            "resolved": list(self.resolved),
            "unmeasured": {k: dict(v) for k, v in self.unmeasured.items()},
            "overrides": self.overrides.to_dict(),
            "repeatability": {
                "volume_percent": self.repeatability.volume_percent,
                "diameter_mm": self.repeatability.diameter_mm,
                "paired_volume_percent": self.repeatability.paired_volume_percent,
            },
            "exam": {
                "category": self.category,
                "nodule": self.category_nodule or None,
                "follow_up": self.follow_up,
                "due_date": self.due.isoformat() if self.due else None,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> FollowUp:
        """The inverse of ``to_dict``; ValueError says what is wrong with a damaged record."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a follow-up record (schema {SCHEMA!r} expected)")
        try:
            exam = data["exam"]
            unmeasured = {
                str(k): {str(i): str(r) for i, r in v.items()} for k, v in data.get("unmeasured", {}).items()
            }
            due = exam["due_date"]
            return cls(
                prior=_study(data["prior"]),
                current=_study(data["current"]),
                registration=Registration.from_dict(data["registration"]),
                pairs=tuple(PairedNodule.from_dict(p) for p in data["pairs"]),
                new=tuple(_new(n) for n in data["new_nodules"]),
                resolved=tuple(str(i) for i in data["resolved"]),
                unmeasured=unmeasured,
                category=str(exam["category"]),
                category_nodule=str(exam.get("nodule") or ""),
                follow_up=str(exam["follow_up"]),
                due=_dt.date.fromisoformat(due) if due is not None else None,
                overrides=Overrides.from_dict(data.get("overrides", {})),  # absent: none
                repeatability=_repeatability(data.get("repeatability")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"a damaged follow-up record ({type(exc).__name__}: {exc})") from None


def _repeatability(saved: Mapping | None) -> Repeatability:
    """A record's measurement error: absent (saved before it was kept), today's; saved before volumes
    measured together had their own limit, the one limit it judged every volume by."""
    if saved is None:
        return Repeatability()
    if "paired_volume_percent" not in saved and "volume_percent" in saved:
        saved = {**saved, "paired_volume_percent": saved["volume_percent"]}
    return Repeatability(**saved)


def compare(
    prior_volume: CTVolume,
    current_volume: CTVolume,
    prior_markers: Sequence[NoduleMarker],
    current_markers: Sequence[NoduleMarker],
    *,
    prior_masks: Mapping[str, NoduleMask] | None = None,
    current_masks: Mapping[str, NoduleMask] | None = None,
    registration: Registration | None = None,
    overrides: Overrides | None = None,
    repeatability: Repeatability | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    dates: tuple[_dt.date, _dt.date] | None = None,
    paired: bool = True,
) -> FollowUp:
    """Compare the studies (see the module docstring). ``dates`` (prior, current) where the studies'
    headers have none (NIfTI). ``progress(done, total)``; ``cancelled()`` raises ``Cancelled`` with
    nothing kept. ValueError (naming the study) for an undated study or a prior later than the
    current, or when the studies cannot be registered. ``paired``: measure each pair's volumes together
    (``core.measure.paired``) where the nodule's surroundings were found again; False: each study's
    own volumes (``bench/bench_follow_up.py`` measures both)."""
    from core.measure.markers import measure_markers

    total = _REGISTER + _REFINE + _MEASURE
    tell = progress or (lambda done, total: None)
    prior_info, current_info = (
        _info(v, role, d) for v, role, d in zip(
            (prior_volume, current_volume), ("prior", "current"), dates or (None, None), strict=True
        )
    )  # fmt: skip
    if prior_info.date > current_info.date:
        raise ValueError(
            f"the prior study ({prior_info.date}) is later than the current one ({current_info.date})"
        )
    check(cancelled)
    if registration is None:
        registration = register(
            prior_volume,
            current_volume,
            progress=lambda done, steps: tell(done * _REGISTER // max(steps, 1), total),
            cancelled=cancelled,
        )
    tell(_REGISTER, total)
    moved, refined = {}, {}
    for k, marker in enumerate(prior_markers):
        check(cancelled)
        refined[marker.id] = _refined(prior_volume, current_volume, marker, registration)
        moved[marker.id] = (
            refined[marker.id].current_mm
            if refined[marker.id] is not None
            else tuple(float(v) for v in registration.to_current(marker.centre_mm))
        )
        tell(_REGISTER + _REFINE * (k + 1) // max(len(prior_markers), 1), total)
    check(cancelled)
    prior_done = measure_markers(prior_volume, prior_markers, prior_masks)
    tell(_REGISTER + _REFINE + _MEASURE // 2, total)
    check(cancelled)
    current_done = measure_markers(current_volume, current_markers, current_masks)
    check(cancelled)

    def diameter(done, marker: NoduleMarker) -> float:
        measured = done.measurements.get(marker.id)
        return measured.mean_diameter_mm if measured is not None else marker.diameter_mm

    matching = match(
        [Candidate(m.id, moved[m.id], diameter(prior_done, m)) for m in prior_markers],
        [Candidate(m.id, m.centre_mm, diameter(current_done, m)) for m in current_markers],
        overrides=overrides,
    )
    error = repeatability or Repeatability()
    priors = {m.id: m for m in prior_markers}
    pairs = []
    for pair in matching.pairs:
        before = prior_done.measurements.get(pair.prior_id)
        after = current_done.measurements.get(pair.current_id)
        why = "; ".join(
            f"{role} marker {i} not measured: {done.errors[i]}"
            for role, i, m, done in (
                ("prior", pair.prior_id, before, prior_done),
                ("current", pair.current_id, after, current_done),
            )
            if m is None
        )
        change = rads = None
        if not why:
            masks = prior_done.masks[pair.prior_id], current_done.masks[pair.current_id]
            # a pair the reader made may join nodules the refinement did not find at one place
            together = paired and not pair.manual and _paired(
                prior_volume, current_volume, *masks, registration, refined[pair.prior_id],
                priors[pair.prior_id].centre_mm, after.volume_mm3,
            )  # fmt: skip
            try:
                prior_point, method = TimePoint.from_measurement(prior_info.date, before), "independent"
                if together:
                    prior_point, method = replace(prior_point, volume_mm3=together.prior_mm3), PAIRED
                change = growth(
                    prior_point, TimePoint.from_measurement(current_info.date, after), error, method
                )
                rads = follow_up_category(_exam(current_info.date, after), [_exam(prior_info.date, before)])
            except ValueError as exc:
                why = str(exc)
        uid = tracking_uid(prior_info.series_uid or "prior", pair.prior_id)
        pairs.append(
            PairedNodule(
                pair.prior_id, pair.current_id, uid, pair.distance_mm, pair.manual, change, rads, why
            )
        )
    new = []
    for current_id in matching.new:
        measured = current_done.measurements.get(current_id)
        rads = size = None
        if measured is not None:
            size = NoduleSize(
                measured.volume_mm3, measured.mean_diameter_mm, measured.texture, measured.solid_diameter_mm
            )
            try:
                rads = follow_up_category(_exam(current_info.date, measured), screened_before=True)
            except ValueError:
                rads = None
        new.append(
            NewNodule(current_id, tracking_uid(current_info.series_uid or "current", current_id), size, rads)
        )
    results = [(p.current_id, p.lung_rads) for p in pairs] + [(n.current_id, n.lung_rads) for n in new]
    exam = exam_category((r for _, r in results), current_info.date)
    top = next((i for i, r in results if r is not None and r is exam.nodule), "")
    tell(total, total)
    return FollowUp(
        prior_info,
        current_info,
        registration,
        tuple(pairs),
        tuple(new),
        tuple(matching.resolved),
        {k: dict(d.errors) for k, d in (("prior", prior_done), ("current", current_done)) if d.errors},
        exam.category,
        top,
        exam.follow_up,
        exam.due,
        overrides or Overrides(),
        error,
    )


def saved_reading(
    saved: Mapping, prior: CTVolume, prior_markers: Sequence[NoduleMarker], markers: Sequence[NoduleMarker]
) -> tuple[Registration, Overrides] | None:
    """The registration and the reader's pairings of a saved reading (``FollowUp.to_dict``) made
    against this ``prior`` series (pairings naming markers no longer there dropped), else None (no
    reading, a damaged one, or one against another prior)."""
    if not saved:
        return None
    try:
        reading = FollowUp.from_dict(saved)
    except ValueError:
        return None
    meta = prior.metadata
    if not meta.series_uid or (reading.prior.study_uid, reading.prior.series_uid) != (
        meta.study_uid,
        meta.series_uid,
    ):
        return None
    known = ({m.id for m in prior_markers}, {m.id for m in markers})
    kept = [
        tuple(p for p in couples if p[0] in known[0] and p[1] in known[1])
        for couples in (reading.overrides.pairs, reading.overrides.unpaired)
    ]
    return reading.registration, Overrides(*kept)


def carried(prior: CTVolume, current: CTVolume, marker: NoduleMarker, registration: Registration):
    """The prior marker's centre in the current study: refined, else as the registration puts it."""
    point = _refined(prior, current, marker, registration)
    if point is None:  # outside either study: the propagated point still pairs or leaves it unpaired
        return tuple(float(v) for v in registration.to_current(marker.centre_mm))
    return point.current_mm


def _refined(prior: CTVolume, current: CTVolume, marker: NoduleMarker, registration: Registration):
    try:
        return refine_point(prior, current, marker.centre_mm, registration)
    except ValueError:
        return None


def _paired(prior, current, prior_mask, current_mask, registration, point, prior_mm, current_mm3):
    """The volumes measured together (``core.measure.paired``) through the registration moved to fit
    at this nodule, or None (the two studies' own volumes stand): where the patch correlation did not
    find the nodule's surroundings (``RefinedPoint.refined``), their background would not cancel."""
    if point is None or not point.refined:
        return None
    matrix = np.array(registration.current_to_prior, dtype=np.float64)
    # the refined point in the current maps onto the prior marker's centre
    matrix[:3, 3] = np.asarray(prior_mm, dtype=np.float64) - matrix[:3, :3] @ np.asarray(point.current_mm)
    try:
        return paired_volumes(prior, prior_mask, current, current_mask, matrix, current_mm3)
    except (ValueError, np.linalg.LinAlgError, MemoryError):  # optional: the own volumes stand
        return None


def _info(volume: CTVolume, role: str, date: _dt.date | None) -> StudyInfo:
    meta = volume.metadata
    if date is None:
        try:
            date = study_date(meta.study_date)
        except ValueError as exc:
            where = f" {volume.source}" if volume.source else ""
            raise ValueError(f"{role} study{where}: no usable study date ({exc})") from None
    return StudyInfo(meta.study_uid, meta.series_uid, date)


def _exam(date: _dt.date, measured: NoduleMeasurement) -> NoduleExam:
    return NoduleExam(date, measured.texture, measured.mean_diameter_mm, measured.solid_diameter_mm)


def _lung_rads_dict(rads: LungRads | None) -> dict | None:
    if rads is None:
        return None
    return {
        "category": rads.category,
        "rule": rads.rule,
        "follow_up": rads.follow_up,
        "texture": rads.texture,
        "inputs": dict(rads.inputs),
        "basis": rads.basis,
    }


def _lung_rads(data) -> LungRads | None:
    return None if data is None else LungRads(**data)


def _study(data: Mapping) -> StudyInfo:
    return StudyInfo(str(data["study_uid"]), str(data["series_uid"]), _dt.date.fromisoformat(data["date"]))


def _new(data: Mapping) -> NewNodule:
    size = None
    if data["current_volume_mm3"] is not None:
        size = NoduleSize(
            float(data["current_volume_mm3"]),
            float(data["current_mean_diameter_mm"]),
            str(data["texture"]),
            data["solid_diameter_mm"],
        )
    return NewNodule(str(data["current_id"]), str(data["tracking_uid"]), size, _lung_rads(data["lung_rads"]))
