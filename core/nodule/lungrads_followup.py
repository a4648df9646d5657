"""Lung-RADS v2022 of one nodule from measured sizes and its priors, and the exam-level category with
the date its follow-up falls due. The rules are the rows of ``core.nodule.lungrads_table``; the result
is the ``LungRads`` record of the baseline rules (``core.nodule.lungrads``), its ``rule`` the fired
row's text with the numbers that fired it and its ``inputs["row"]`` the row's key.

The nodule's status at the current exam decides which rows apply (``lungrads_table.STATUSES``):
baseline (no earlier screening), new (earlier screening, nodule absent), growing, slow-growing or
stable (against its earlier exams). The size that growth is judged on is the one that drives the
category: the mean diameter (solid, ground glass) or the solid component's (part-solid). A solid
component appearing in what was a ground glass nodule is a new solid component, whatever its size.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.nodule.lungrads import (
    BENIGN_CALCIFICATION_MAX,
    CATEGORIES,
    FOLLOW_UP,
    NOTICE,
    SPICULATION_4X,
    TEXTURES,
    LungRads,
)
from core.nodule.lungrads_table import (
    GROWTH_MM,
    INTERVAL_MONTHS,
    YEAR_DAYS,
    Row,
    lungrads_growth,
    row,
    size_row,
)


@dataclass(frozen=True)
class NoduleExam:
    """One nodule at one exam: date, texture, mean diameter and (part-solid) the solid component's."""

    date: _dt.date
    texture: str
    mean_diameter_mm: float
    solid_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.date, _dt.date):
            raise ValueError(f"an exam's date must be a date, not {self.date!r}")
        if self.texture not in TEXTURES:
            raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, not {self.texture!r}")
        _size("mean diameter", self.mean_diameter_mm)
        if self.texture == "part-solid":
            if self.solid_diameter_mm is None:
                raise ValueError("a part-solid nodule needs the solid component's mean diameter")
            _size("solid component diameter", self.solid_diameter_mm, allow_zero=True)

    @property
    def mean_mm(self) -> float:
        return round(self.mean_diameter_mm, 1)

    @property
    def solid_mm(self) -> float:
        """The solid size Lung-RADS reads: all of a solid nodule, the component of a part-solid one."""
        if self.texture == "solid":
            return self.mean_mm
        return round(self.solid_diameter_mm or 0.0, 1) if self.texture == "part-solid" else 0.0

    def growth_size(self, texture: str) -> float:
        """The size growth is judged on for a nodule whose current ``texture`` is given: the solid size
        (solid, part-solid; 0 for ground glass before, so a new solid part grows) or the mean diameter
        (ground glass)."""
        return self.mean_mm if texture == "ground glass" else self.solid_mm


@dataclass(frozen=True)
class ExamCategory:
    """The exam's Lung-RADS category (its highest nodule's), the follow-up and the date it falls due
    (``None`` for 4B/4X: diagnostic work-up, not a screening interval)."""

    category: str
    nodule: LungRads | None
    follow_up: str
    due: _dt.date | None


def follow_up_category(
    current: NoduleExam,
    priors: Sequence[NoduleExam] = (),
    *,
    screened_before: bool = False,
    prior_category: str | None = None,
    calcification: float | None = None,
    spiculation: float | None = None,
    juxtapleural: bool = False,
) -> LungRads:
    """The nodule's category at ``current`` given the same nodule's earlier exams (``priors``, any
    order). Without priors the nodule is new when ``screened_before``, else at baseline.
    ``prior_category``: the category given at the latest prior exam; without it that is computed from
    the priors themselves (the first as at baseline) and the rule says so. ``calcification`` and
    ``spiculation`` are LIDC-scale ratings as in ``core.nodule.lungrads``; ``juxtapleural``: the reader
    confirmed a smooth solid juxtapleural nodule. ValueError on a prior later than ``current``."""
    earlier = sorted(priors, key=lambda exam: exam.date)
    if earlier and earlier[-1].date > current.date:
        raise ValueError(f"a prior exam ({earlier[-1].date}) is later than the current one ({current.date})")
    inputs: dict = {"mean_diameter_mm": current.mean_mm, "texture": current.texture}
    if current.texture == "part-solid":
        inputs["solid_diameter_mm"] = current.solid_mm
    sizes = f"mean {current.mean_mm:.1f} mm" + (
        f", solid component {current.solid_mm:.1f} mm" if current.texture == "part-solid" else ""
    )
    status, change = _status(current, earlier, screened_before)
    inputs["status"] = status
    fired, category, detail = _evaluate(current, earlier, status, prior_category, juxtapleural, inputs)
    if calcification is not None and calcification <= BENIGN_CALCIFICATION_MAX:
        fired, category = row("benign-1"), "1"
        detail = f"calcification {calcification:.2f} <= {BENIGN_CALCIFICATION_MAX}"
    rule = f"{fired.text} ({sizes}; {status}{change}{detail})"
    doubling = _ggn_doubled(current, earlier) if category in ("2", "3", "4A", "4B") else ""
    if category in ("3", "4A", "4B") and spiculation is not None and spiculation >= SPICULATION_4X:
        fired, category = row("4X-spiculation"), "4X"
        rule += f"; raised to 4X: {fired.text}, spiculation {spiculation:.2f} >= {SPICULATION_4X}"
    elif doubling:
        fired, category = row("4X-ggn-doubling"), "4X"
        rule += f"; raised to 4X: {fired.text}: {doubling}"
    inputs["row"] = fired.key
    if fired.note:
        rule += f" [{fired.note}]"
    basis = f"Basis: measured sizes and texture with {len(earlier)} prior exam(s); {NOTICE}."
    return LungRads(category, rule, FOLLOW_UP[category], current.texture, inputs, basis)


def exam_category(results: Iterable[LungRads | None], exam_date: _dt.date) -> ExamCategory:
    """The exam's category: its highest nodule's (1 < 2 < 3 < 4A < 4B < 4X; ``None`` items, nodules
    not assessed, are passed over; no nodule at all is category 1), with the follow-up's due date."""
    best: LungRads | None = None
    for item in results:
        if item is not None and (best is None or item.rank > best.rank):
            best = item
    category = best.category if best else "1"
    months = INTERVAL_MONTHS[category]
    due = None if months is None else add_months(exam_date, months)
    return ExamCategory(category, best, FOLLOW_UP[category], due)


def add_months(day: _dt.date, months: int) -> _dt.date:
    """The same day ``months`` later (the month's last day where it is shorter: 31 Aug + 6 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _status(current: NoduleExam, earlier: list[NoduleExam], screened_before: bool) -> tuple[str, str]:
    """The nodule's status and the change that decided it, as text."""
    if not earlier:
        return ("new" if screened_before else "baseline"), ""
    texture, growth, slow = current.texture, None, None
    if texture == "part-solid" and earlier[-1].texture == "ground glass":  # a new solid component
        return "growing", f"; solid component new since {earlier[-1].date}"
    for prior in reversed(earlier):  # the most recent growth wins: it is the one the reader sees
        increase = round(current.growth_size(texture) - prior.growth_size(texture), 1)
        days = (current.date - prior.date).days
        if growth is None and lungrads_growth(increase, days):
            growth = f"; +{increase:.1f} mm in {days} days since {prior.date}"
        elif slow is None and increase > GROWTH_MM:
            slow = f"; +{increase:.1f} mm in {days} days since {prior.date}, < 1.5 mm per 12 months"
    if growth:
        return "growing", growth
    if slow:
        return "slow-growing", slow
    latest = earlier[-1]
    change = round(current.growth_size(texture) - latest.growth_size(texture), 1)
    return "stable", f"; {change:+.1f} mm in {(current.date - latest.date).days} days since {latest.date}"


def _evaluate(
    current: NoduleExam,
    earlier: list[NoduleExam],
    status: str,
    prior_category: str | None,
    juxtapleural: bool,
    inputs: dict,
) -> tuple[Row, str, str]:
    """The fired row, its category and the extra numbers to show."""
    mean, solid = current.mean_mm, current.solid_mm
    jux = row("juxtapleural-2")
    if juxtapleural and status in ("baseline", "new") and jux.matches(current.texture, jux.status, mean, 0.0):
        return jux, "2", ""
    if status != "stable" or current.texture == "ground glass":
        fired = size_row(current.texture, status, mean, solid)
        return fired, fired.category, ""
    latest = earlier[-1]
    now = size_row(current.texture, "baseline", mean, solid)
    before = size_row(latest.texture, "baseline", latest.mean_mm, latest.solid_mm)
    if CATEGORIES.index(now.category) > CATEGORIES.index(before.category):
        return row("size-threshold"), now.category, f"; size row now: {now.text}"
    computed = ""
    if prior_category is None:
        prior_category = follow_up_category(latest, earlier[:-1]).category
        computed = " computed from its sizes"
    elif prior_category not in CATEGORIES:
        raise ValueError(f"prior category must be one of {', '.join(CATEGORIES)}, not {prior_category!r}")
    inputs["prior_category"] = prior_category
    days = (current.date - latest.date).days
    said = f"; prior category {prior_category}{computed}"
    for step in (row("stepped-3-to-2"), row("stepped-4A-to-3")):
        if step.prior_category == prior_category and days >= step.min_interval_days:
            return step, step.category, said
    return row("stable-unchanged"), prior_category, said


def _ggn_doubled(current: NoduleExam, earlier: list[NoduleExam]) -> str:
    """Why a ground glass nodule counts as doubled in size within a year ("" when it does not)."""
    if current.texture != "ground glass":
        return ""
    for prior in earlier:
        days = (current.date - prior.date).days
        if prior.texture == "ground glass" and days <= YEAR_DAYS and current.mean_mm >= 2 * prior.mean_mm:
            return f"{prior.mean_mm:.1f} -> {current.mean_mm:.1f} mm in {days} days"
    return ""


def _size(name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a positive finite number of mm, not {value!r}")
