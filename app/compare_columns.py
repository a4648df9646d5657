"""The ranked table's follow-up columns: the prior's size, the change, the volume doubling time, the
trend and Lung-RADS v2022 with the prior of each current nodule in the study's follow-up reading
(``core.followup.compare.FollowUp``).

Shown only while the shown study has a reading; a nodule the reading pairs gets its pair's numbers,
one it calls new says so, one marked after the reading was made is left blank ("not in the reading").
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from core.followup.compare import FollowUp
from core.measure.paired import METHOD as PAIRED
from core.measure.paired import TOGETHER_TEXT as TOGETHER

FOLLOW_UP_COLUMNS = ["Prior", "Change", "VDT", "Trend", "Lung-RADS w/ prior"]
TREND_ORDER = {"new": 4, "growing": 3, "change within measurement error": 2, "stable": 1, "shrinking": 0}


def follow_up_texts(reading: FollowUp | None, marker_id: str) -> list[tuple[str, object, str]]:
    """(text, sort key, tooltip) of each follow-up column for a current marker."""
    blank = [("", None, "")] * len(FOLLOW_UP_COLUMNS)
    if reading is None:
        return blank
    for new in reading.new:
        if new.current_id == marker_id:
            rads = new.lung_rads
            tip = f"Not seen in the prior of {reading.prior.date.isoformat()}" + (
                f"\nLung-RADS as a new nodule: {rads.category} ({rads.rule})" if rads else ""
            )
            return [
                ("-", None, tip),
                ("", None, ""),
                ("", None, ""),
                ("new", TREND_ORDER["new"], tip),
                _rads(rads),
            ]
    for pair in reading.pairs:
        if pair.current_id != marker_id:
            continue
        g = pair.growth
        if g is None:
            return [("?", None, pair.error), *blank[1:]]
        rads = pair.lung_rads
        prior = (
            f"{g.prior_volume_mm3:.0f} mm³"
            if g.prior_volume_mm3 is not None
            else f"{g.prior_mean_diameter_mm:.1f} mm"
        )
        if g.volume_change_percent is not None:
            change, key = f"{g.volume_change_percent:+.0f} %", g.volume_change_percent
        else:
            change, key = f"{g.diameter_change_mm:+.1f} mm", g.diameter_change_mm
        tip = (
            f"Prior {reading.prior.date.isoformat()} ({g.interval_days} days): mean diameter "
            f"{g.prior_mean_diameter_mm:.1f} -> {g.current_mean_diameter_mm:.1f} mm "
            f"({g.diameter_change_mm:+.1f} mm)"
            + (f"\nLung-RADS with the prior: {rads.category} ({rads.rule})" if rads else "")
            + ("\nThe change is within measurement error" if g.within_error else "")
            + (f"\n{TOGETHER}" if g.volume_method == PAIRED else "")
        )
        vdt = g.vdt_text + (f" ({g.vdt_band})" if g.vdt_band else "")
        return [
            (prior, g.prior_volume_mm3, tip),
            (change, key, tip),
            (vdt, g.vdt_days, "Volume doubling time (Schultz): t ln 2 / ln(V2/V1)"),
            (g.trend, TREND_ORDER.get(g.trend, 0), tip),
            _rads(rads),
        ]
    return [("", None, "Marked after the follow-up reading was made: press P to compare again"), *blank[1:]]


def _rads(rads) -> tuple[str, object, str]:
    """Lung-RADS v2022 with the prior: the category and the rule that fired."""
    from app.nodule_table import RADS_ORDER  # the table's order (it imports this module)

    if rads is None:
        return "", None, ""
    return rads.category, RADS_ORDER.get(rads.category, 0), f"{rads.rule}\nFollow-up: {rads.follow_up}"


def fill_follow_up(table, first_column: int, reading: FollowUp | None) -> None:
    """Set the follow-up cells of every row of ``table`` (a ``NoduleTable``) and show the columns only
    with a reading."""
    sorting = table.isSortingEnabled()
    table.setSortingEnabled(False)
    for row in range(table.rowCount()):
        for offset, (text, key, tip) in enumerate(follow_up_texts(reading, table.marker_at(row))):
            item = table._text(text, key)
            item.setToolTip(tip)
            if offset < 3:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(row, first_column + offset, item)
    for offset in range(len(FOLLOW_UP_COLUMNS)):
        table.setColumnHidden(first_column + offset, reading is None)
    table.setSortingEnabled(sorting)
