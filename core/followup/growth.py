"""How one nodule changed between a prior and a current study: interval, size at both times, change,
volume doubling time, and whether the change is growth by the screening guidelines' definitions.

Definitions and sources:

* Interval: whole days between the studies' dates (DICOM DA ``YYYYMMDD``; StudyDate, else
  AcquisitionDate).
* Lung-RADS v2022 growth (ACR Lung-RADS v2022, "Nodule growth"): mean diameter up by more than 1.5 mm
  within a 12-month interval (``core.nodule.lungrads_table.lungrads_growth`` holds the one definition).
* Volume growth (NELSON; European position statement, Oudkerk et al., Lancet Oncol 2017): volume up by
  25 % or more.
* Volume doubling time (Schultz, 1962; as used by NELSON): ``VDT = t * ln 2 / ln(V2 / V1)``, with the
  bands of the European position statement: < 400 days (positive), 400-600 (indeterminate), > 600
  (negative). Without volumes it is computed from the mean diameters as from spheres,
  ``t * ln 2 / (3 * ln(d2 / d1))``. A VDT is only given for a nodule that grows beyond measurement
  error: a stable or shrinking nodule would get a huge or a negative "doubling time", which is no
  doubling time at all, so ``vdt_text`` says "stable" or "shrinking" instead.
* Measurement error (QIBA CT volumetry profile: a change is real only beyond the measurement's
  repeatability): ``Repeatability``; its defaults are the shipped measurement's own 95 % limits of
  the same nodule measured twice (``core.measure.measurement.REPEATABILITY_VOLUME_PERCENT`` and
  ``REPEATABILITY_DIAMETER_MM``, measured by ``bench/bench_segmentation.py``; for two volumes measured
  together, ``REPEATABILITY_PAIRED_VOLUME_PERCENT``, by ``bench/bench_volume_repeatability.py``). The
  trend is judged on the volumes when both are known, else on the mean diameters; a volume change by its
  share of the smaller of the two volumes, as the repeatability was measured (so a shrinkage by half
  is as far beyond it as a doubling).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any

from core.measure.measurement import (
    REPEATABILITY_DIAMETER_MM,
    REPEATABILITY_PAIRED_VOLUME_PERCENT,
    REPEATABILITY_VOLUME_PERCENT,
)
from core.nodule.lungrads_table import lungrads_growth

VOLUME_GROWTH_PERCENT = 25.0  # NELSON: volume change >= 25 % is growth
TRENDS = ("growing", "stable", "shrinking", "change within measurement error")


@dataclass(frozen=True)
class Repeatability:
    """The smallest change that is more than measurement error: a volume share (%) for volumes each
    measured on its own study, one for the two volumes of a nodule measured together
    (``core.measure.paired``: smaller, since what did not change cancels), and a diameter (mm); by
    default the shipped measurement's (module docstring)."""

    volume_percent: float = REPEATABILITY_VOLUME_PERCENT
    diameter_mm: float = REPEATABILITY_DIAMETER_MM
    paired_volume_percent: float = REPEATABILITY_PAIRED_VOLUME_PERCENT

    def volume_limit(self, volume_method: str | None) -> float:
        """The volume share a change must reach, for volumes measured as ``volume_method`` says."""
        return self.paired_volume_percent if volume_method == "paired" else self.volume_percent

    @property
    def text(self) -> str:
        """For reports: what a change must exceed to be more than measurement error."""
        volume, diameter = f"{self.volume_percent:g} %", f"{self.diameter_mm:g} mm"
        together = f"{self.paired_volume_percent:g} %"
        return (
            f"{volume} of the smaller volume ({together} for volumes measured together; {diameter} of the "
            "mean diameter without volumes)"
        )

    def __post_init__(self) -> None:
        for name in ("volume_percent", "diameter_mm", "paired_volume_percent"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"repeatability {name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True)
class TimePoint:
    """One nodule's size at one study: its date, mean diameter and, when measured, volume and the mean
    diameter of its solid component (part-solid nodules)."""

    date: _dt.date
    mean_diameter_mm: float
    volume_mm3: float | None = None
    solid_diameter_mm: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.date, _dt.date):
            raise ValueError(f"a time point's date must be a date, not {self.date!r}")
        _positive("mean_diameter_mm", self.mean_diameter_mm)
        if self.volume_mm3 is not None:
            _positive("volume_mm3", self.volume_mm3)
        if self.solid_diameter_mm is not None:
            _positive("solid_diameter_mm", self.solid_diameter_mm, allow_zero=True)

    @classmethod
    def from_measurement(cls, date: _dt.date, measurement: Any) -> TimePoint:
        """From a ``core.measure`` ``NoduleMeasurement`` (or anything with its size fields)."""
        return cls(
            date,
            measurement.mean_diameter_mm,
            measurement.volume_mm3,
            getattr(measurement, "solid_diameter_mm", None),
        )


@dataclass(frozen=True)
class Growth:
    """The change of one nodule between two time points (see the module docstring for definitions)."""

    interval_days: int
    prior_mean_diameter_mm: float
    current_mean_diameter_mm: float
    diameter_change_mm: float
    diameter_change_percent: float
    prior_volume_mm3: float | None
    current_volume_mm3: float | None
    volume_change_mm3: float | None
    volume_change_percent: float | None
    trend: str  # one of TRENDS
    vdt_days: float | None  # only for a nodule growing beyond measurement error
    vdt_text: str  # "412 days", "stable", "shrinking", or why there is none
    vdt_band: str | None  # "< 400 days", "400-600 days", "> 600 days" (with vdt_days only)
    lungrads_growth: bool  # mean diameter up > 1.5 mm within 12 months
    volume_growth: bool  # volume up >= 25 % (NELSON)
    within_error: bool  # the change judged is smaller than the repeatability
    # how the two volumes were measured: "paired" (together, core.measure.paired), "independent"
    # (each study on its own), None without volumes
    volume_method: str | None = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def parse_da(text: str) -> _dt.date:
    """A DICOM DA value (``YYYYMMDD``; the old ``YYYY.MM.DD`` is accepted) as a date; ValueError if not."""
    value = str(text).strip().replace(".", "")
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"study date {text!r} is not a DICOM date (YYYYMMDD)")
    try:
        return _dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise ValueError(f"study date {text!r} is not a calendar date") from exc


def study_date(study_date_da: str, acquisition_date_da: str = "") -> _dt.date:
    """The date of a study: its StudyDate, else its AcquisitionDate; ValueError when neither is usable."""
    try:
        return parse_da(study_date_da)
    except ValueError:
        if not str(acquisition_date_da or "").strip():
            raise
        return parse_da(acquisition_date_da)


def growth(
    prior: TimePoint,
    current: TimePoint,
    error: Repeatability | None = None,
    volume_method: str = "independent",
) -> Growth:
    """How the nodule changed from ``prior`` to ``current``. ValueError when the prior is later.
    ``volume_method``: how the two volumes were measured (``Growth.volume_method``)."""
    error = error or Repeatability()
    days = (current.date - prior.date).days
    if days < 0:
        raise ValueError(f"the prior study ({prior.date}) is later than the current one ({current.date})")
    d1, d2 = prior.mean_diameter_mm, current.mean_diameter_mm
    diameter_change = round(d2 - d1, 1)
    volumes = prior.volume_mm3 is not None and current.volume_mm3 is not None
    volume_change = volume_percent = None
    if volumes:
        volume_change = current.volume_mm3 - prior.volume_mm3
        volume_percent = 100.0 * volume_change / prior.volume_mm3
        change, ratio, power = volume_percent, 1 + volume_percent / 100, 1
        # over the smaller volume, as the repeatability is measured: a shrinkage to 1 / (1 + limit)
        # is as far outside it as a growth to 1 + limit
        spread = 100.0 * abs(volume_change) / min(prior.volume_mm3, current.volume_mm3)
        within = spread < error.volume_limit(volume_method)
    else:  # a sphere's volume goes with the cube of its diameter
        change, ratio, power = diameter_change, d2 / d1, 3
        within = abs(change) < error.diameter_mm
    if change == 0:
        trend = "stable"
    elif within:
        trend = "change within measurement error"
    else:
        trend = "growing" if change > 0 else "shrinking"
    vdt, vdt_text, band = _doubling_time(trend, days, ratio, power)
    return Growth(
        interval_days=days,
        prior_mean_diameter_mm=d1,
        current_mean_diameter_mm=d2,
        diameter_change_mm=diameter_change,
        diameter_change_percent=100.0 * (d2 - d1) / d1,
        prior_volume_mm3=prior.volume_mm3,
        current_volume_mm3=current.volume_mm3,
        volume_change_mm3=volume_change,
        volume_change_percent=volume_percent,
        trend=trend,
        vdt_days=vdt,
        vdt_text=vdt_text,
        vdt_band=band,
        lungrads_growth=lungrads_growth(diameter_change, days),
        volume_growth=volume_percent is not None and volume_percent >= VOLUME_GROWTH_PERCENT,
        within_error=within or change == 0,
        volume_method=volume_method if volumes else None,
    )


def doubling_time_days(interval_days: float, v1: float, v2: float) -> float:
    """Schultz's volume doubling time ``t * ln 2 / ln(V2/V1)``; ValueError unless V2 > V1 > 0 and t > 0."""
    if not (v1 > 0 and v2 > v1 and interval_days > 0):
        raise ValueError("a doubling time needs a positive interval and a volume that grew")
    return interval_days * math.log(2.0) / math.log(v2 / v1)


def vdt_band(vdt_days: float) -> str:
    """The European position statement's band of a volume doubling time: < 400, 400-600, > 600 days."""
    if vdt_days < 400:
        return "< 400 days"
    return "400-600 days" if vdt_days <= 600 else "> 600 days"


def _doubling_time(trend: str, days: int, ratio: float, power: int) -> tuple[float | None, str, str | None]:
    if trend == "shrinking":
        return None, "shrinking", None
    if trend != "growing":
        return None, "stable", None
    if days == 0:
        return None, "no interval (same day): no doubling time", None
    vdt = doubling_time_days(days, 1.0, ratio**power)
    return vdt, f"{vdt:.0f} days", vdt_band(vdt)


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
