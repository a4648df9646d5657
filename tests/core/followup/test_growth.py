"""Growth between two time points: interval, changes, VDT (Schultz), guideline growth flags, error."""

import datetime as dt
import math
from types import SimpleNamespace

import pytest

from core.followup.growth import (
    Repeatability,
    TimePoint,
    doubling_time_days,
    growth,
    parse_da,
    study_date,
    vdt_band,
)
from core.measure.measurement import (
    REPEATABILITY_DIAMETER_MM,
    REPEATABILITY_PAIRED_VOLUME_PERCENT,
    REPEATABILITY_VOLUME_PERCENT,
)

DAY0 = dt.date(2024, 1, 10)
PRECISE = Repeatability(volume_percent=10.0, diameter_mm=1.5)  # a measurement repeating to 10 %


def point(days: int, diameter: float, volume: float | None = None) -> TimePoint:
    return TimePoint(DAY0 + dt.timedelta(days=days), diameter, volume)


def test_dicom_dates_parse_and_bad_ones_say_why():
    assert parse_da("20240110") == DAY0
    assert parse_da("2024.01.10") == DAY0  # the old ACR-NEMA form
    with pytest.raises(ValueError, match="not a DICOM date"):
        parse_da("2024-01-10x")
    with pytest.raises(ValueError, match="not a calendar date"):
        parse_da("20241301")
    with pytest.raises(ValueError, match="not a DICOM date"):
        parse_da("")


def test_study_date_falls_back_to_the_acquisition_date():
    assert study_date("20240110", "20230101") == DAY0
    assert study_date("", "20240110") == DAY0
    with pytest.raises(ValueError, match="not a DICOM date"):
        study_date("", "")


def test_doubling_volume_in_300_days_is_a_vdt_of_300_days():
    result = growth(point(0, 6.0, 100.0), point(300, 7.6, 200.0))
    assert result.interval_days == 300
    assert result.trend == "growing"
    assert result.vdt_days == pytest.approx(300.0)
    assert result.vdt_text == "300 days"
    assert result.vdt_band == "< 400 days"
    assert result.volume_change_mm3 == pytest.approx(100.0)
    assert result.volume_change_percent == pytest.approx(100.0)
    assert result.diameter_change_mm == pytest.approx(1.6)
    assert result.volume_growth and result.lungrads_growth


def test_vdt_from_diameters_when_no_volume_treats_the_nodule_as_a_sphere():
    # volume doubles when the diameter grows by 2 ** (1/3): 5.0 -> 6.3 mm over 100 days
    d2 = 5.0 * 2 ** (1 / 3)
    result = growth(point(0, 5.0), point(100, d2), Repeatability(diameter_mm=0.5))
    assert result.volume_change_percent is None
    assert result.vdt_days == pytest.approx(100.0)


def test_shrinking_nodule_has_no_doubling_time_only_the_word():
    result = growth(point(0, 8.0, 268.0), point(180, 6.0, 113.0), PRECISE)
    assert result.trend == "shrinking"
    assert result.vdt_days is None and result.vdt_band is None
    assert result.vdt_text == "shrinking"
    assert result.volume_change_percent < 0
    assert not result.volume_growth and not result.lungrads_growth


def test_unchanged_nodule_is_stable_not_a_huge_doubling_time():
    result = growth(point(0, 6.0, 113.0), point(365, 6.0, 113.0))
    assert result.trend == "stable"
    assert result.vdt_days is None and result.vdt_text == "stable"


def test_change_smaller_than_repeatability_is_labelled_as_measurement_error():
    result = growth(point(0, 6.0, 100.0), point(90, 6.1, 105.0), Repeatability(volume_percent=10.0))
    assert result.trend == "change within measurement error"
    assert result.within_error
    assert result.vdt_days is None and result.vdt_text == "stable"
    # the same change is real when the measurement repeats to 2 %
    real = growth(point(0, 6.0, 100.0), point(90, 6.1, 105.0), Repeatability(volume_percent=2.0))
    assert real.trend == "growing" and real.vdt_days == pytest.approx(90 * math.log(2) / math.log(1.05))


def test_without_volumes_the_diameter_repeatability_decides():
    limit = Repeatability(diameter_mm=1.5)
    assert growth(point(0, 6.0), point(90, 7.0), limit).trend == "change within measurement error"
    assert growth(point(0, 6.0), point(90, 4.0), limit).trend == "shrinking"


@pytest.mark.parametrize(
    ("d2", "days", "expected"),
    [
        (6.6, 180, True),  # +1.6 mm in 6 months
        (6.5, 180, False),  # +1.5 mm is not more than 1.5
        (6.6, 365, True),  # +1.6 mm in 12 months
        (7.0, 730, False),  # +2.0 mm in 24 months: 1 mm per 12 months, slow growth
        (9.0, 500, True),  # +4.0 mm in 16 months: > 1.5 mm per 12 months
    ],
)
def test_lungrads_growth_is_more_than_1_5_mm_within_12_months(d2, days, expected):
    assert growth(point(0, 5.0), point(days, d2)).lungrads_growth is expected


def test_nelson_growth_is_a_volume_change_of_25_percent_or_more():
    assert growth(point(0, 6.0, 100.0), point(90, 6.4, 125.0)).volume_growth
    assert not growth(point(0, 6.0, 100.0), point(90, 6.4, 124.9)).volume_growth


@pytest.mark.parametrize(
    ("vdt", "band"),
    [(399.9, "< 400 days"), (400, "400-600 days"), (600, "400-600 days"), (600.1, "> 600 days")],
)
def test_vdt_bands(vdt, band):
    assert vdt_band(vdt) == band


def test_same_day_pair_has_no_doubling_time():
    result = growth(point(0, 6.0, 100.0), point(0, 6.0, 150.0), PRECISE)
    assert result.trend == "growing" and result.vdt_days is None
    assert "same day" in result.vdt_text


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="later than the current"):
        growth(point(10, 6.0), point(0, 6.0))
    with pytest.raises(ValueError, match="volume_mm3"):
        point(0, 6.0, -1.0)
    with pytest.raises(ValueError, match="mean_diameter_mm"):
        point(0, float("nan"))
    with pytest.raises(ValueError, match="repeatability"):
        Repeatability(volume_percent=-1)
    with pytest.raises(ValueError, match="grew"):
        doubling_time_days(100, 200.0, 100.0)


def test_time_point_from_a_measurement_record():
    measured = SimpleNamespace(mean_diameter_mm=7.5, volume_mm3=220.0, solid_diameter_mm=None)
    assert TimePoint.from_measurement(DAY0, measured) == TimePoint(DAY0, 7.5, 220.0, None)
    assert set(growth(point(0, 6.0), point(1, 6.0)).to_dict()) >= {"vdt_days", "trend", "interval_days"}


def test_by_default_the_measured_repeatability_decides_what_is_within_measurement_error():
    """The defaults are the shipped segmenter's 95 % limits (bench/bench_segmentation.py), not the
    10 % / 1.5 mm placeholders: a change just inside them is measurement error, just outside real."""
    assert Repeatability() == Repeatability(REPEATABILITY_VOLUME_PERCENT, REPEATABILITY_DIAMETER_MM)
    assert (REPEATABILITY_VOLUME_PERCENT, REPEATABILITY_DIAMETER_MM) != (10.0, 1.5)
    inside = 100.0 * (1 + (REPEATABILITY_VOLUME_PERCENT - 1) / 100)
    outside = 100.0 * (1 + (REPEATABILITY_VOLUME_PERCENT + 1) / 100)
    assert growth(point(0, 6.0, 100.0), point(365, 6.5, inside)).trend == "change within measurement error"
    assert growth(point(0, 6.0, 100.0), point(365, 6.5, outside)).trend == "growing"
    d = REPEATABILITY_DIAMETER_MM
    assert growth(point(0, 6.0), point(365, 6.0 + d - 0.1)).trend == "change within measurement error"
    assert growth(point(0, 6.0), point(365, 6.0 + d + 0.1)).trend == "growing"
    text = (
        f"{REPEATABILITY_VOLUME_PERCENT:g} % of the smaller volume ({REPEATABILITY_PAIRED_VOLUME_PERCENT:g} %"
    )
    assert (
        Repeatability().text
        == text + f" for volumes measured together; {d:g} mm of the mean diameter without volumes)"
    )


def test_volumes_measured_together_are_judged_by_their_own_smaller_limit():
    """Two volumes measured together (core.measure.paired) repeat to 5.5 %, each on its own to 10.2 %
    (bench/bench_volume_repeatability.py): an 8 % change is real in the first case only."""
    assert REPEATABILITY_PAIRED_VOLUME_PERCENT < 8.0 < REPEATABILITY_VOLUME_PERCENT
    prior, current = point(0, 6.0, 100.0), point(365, 6.2, 108.0)
    assert growth(prior, current, volume_method="independent").trend == "change within measurement error"
    together = growth(prior, current, volume_method="paired")
    assert together.trend == "growing" and together.volume_method == "paired" and not together.within_error
    assert Repeatability(paired_volume_percent=9.0).volume_limit("paired") == 9.0
    assert Repeatability(paired_volume_percent=9.0).volume_limit(None) == REPEATABILITY_VOLUME_PERCENT
    with pytest.raises(ValueError, match="paired_volume_percent"):
        Repeatability(paired_volume_percent=float("nan"))


def test_a_volume_change_is_judged_over_the_smaller_volume_as_the_repeatability_was_measured():
    """The bench measures |dV| / the smaller volume; a shrinkage from 100 to 70 mm3 is 43 % of the
    smaller volume (30 % of the prior): beyond a 40 % repeatability, as a growth from 70 to 100 is."""
    limit = Repeatability(volume_percent=40.0)
    assert growth(point(0, 6.0, 100.0), point(365, 5.5, 70.0), limit).trend == "shrinking"
    assert growth(point(0, 5.5, 70.0), point(365, 6.0, 100.0), limit).trend == "growing"
    assert (
        growth(point(0, 6.0, 100.0), point(365, 5.8, 75.0), limit).trend == "change within measurement error"
    )
