"""The Lung-RADS v2022 table with priors, as data: one ``Row`` per rule, each with the ACR text it implements.

Source: ACR Lung-RADS v2022 assessment categories and notes (American College of Radiology, Nov 2022;
summarised in Christensen et al., J Am Coll Radiol 2024;21(3):473-488). Sizes are mean diameters
(long + short axis) / 2 in mm, to 0.1 mm; for a part-solid nodule the solid component's mean
diameter drives the category. ``core.nodule.lungrads`` holds the baseline rules from a marker and
the model's guesses; ``core.nodule.lungrads_followup`` evaluates these rows from measured sizes and
the nodule's priors and returns the same ``LungRads`` record.

Readings of the table that are this module's, not the ACR's, each said in its row's ``note``:

* Growth (``lungrads_growth``): the v2022 definition is "> 1.5 mm within a 12-month interval"; over a
  longer interval an increase counts as growth when it exceeds 1.5 mm per 12 months, else it is slow
  growth (v2022: growth over multiple screening exams that never reaches 1.5 mm in 12 months).
* Stepped management needs a follow-up close to the one the category asked for: from one month before
  the scheduled 6-month (category 3) or 3-month (category 4A) follow-up (``min_interval_days``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GROWTH_MM = 1.5  # Lung-RADS v2022 growth: mean diameter up > 1.5 mm within 12 months
YEAR_DAYS = 365
INF = math.inf


@dataclass(frozen=True)
class Row:
    """One rule of the table: it fires for a nodule of ``texture`` with ``status`` whose mean diameter
    lies in ``mean_mm`` and solid component in ``solid_mm`` (half-open ``[low, high)`` in mm), and, for
    the stepped-management rows, whose category at the prior exam was ``prior_category`` at least
    ``min_interval_days`` ago. ``text`` is the ACR rule; ``note`` says how this module reads it."""

    key: str
    category: str
    texture: str  # "solid" | "part-solid" | "ground glass" | "any"
    status: str  # see STATUSES
    text: str
    mean_mm: tuple[float, float] = (0.0, INF)
    solid_mm: tuple[float, float] = (0.0, INF)
    prior_category: str | None = None
    min_interval_days: int = 0
    note: str = ""

    def matches(self, texture: str, status: str, mean_mm: float, solid_mm: float) -> bool:
        return (
            self.texture in (texture, "any")
            and self.status == status
            and self.mean_mm[0] <= mean_mm < self.mean_mm[1]
            and self.solid_mm[0] <= solid_mm < self.solid_mm[1]
        )


# baseline: first screening; new: absent from the prior exam; growing: > 1.5 mm within 12 months (the
# solid component for part-solid, including a new one); slow-growing: > 1.5 mm over several exams,
# never 1.5 mm in 12 months; stable: neither (stable or smaller)
STATUSES = ("baseline", "new", "growing", "slow-growing", "stable")


def _rows(texture: str, status: str, *entries: tuple) -> tuple[Row, ...]:
    """The rows of one texture and status, from ``(category, text[, mean_mm[, solid_mm]])`` entries."""
    name = {"solid": "solid", "part-solid": "part", "ground glass": "ggn"}[texture]
    return tuple(
        Row(f"{name}-{status}-{entry[0]}", entry[0], texture, status, *entry[1:]) for entry in entries
    )


_SLOW = "growth > 1.5 mm since an earlier exam that never reached 1.5 mm per 12 months"
_SIZE_ROWS = (
    *_rows(
        "solid",
        "baseline",
        ("2", "solid nodule < 6 mm at baseline", (0, 6)),
        ("3", "solid nodule >= 6 to < 8 mm at baseline", (6, 8)),
        ("4A", "solid nodule >= 8 to < 15 mm at baseline", (8, 15)),
        ("4B", "solid nodule >= 15 mm at baseline", (15, INF)),
    ),
    *_rows(
        "solid",
        "new",
        ("2", "new solid nodule < 4 mm", (0, 4)),
        ("3", "new solid nodule 4 mm to < 6 mm", (4, 6)),
        ("4A", "new solid nodule 6 to < 8 mm", (6, 8)),
        ("4B", "new solid nodule >= 8 mm", (8, INF)),
    ),
    *_rows(
        "solid",
        "growing",
        ("4A", "growing solid nodule < 8 mm", (0, 8)),
        ("4B", "growing solid nodule >= 8 mm", (8, INF)),
    ),
    Row("solid-slow-growing-4B", "4B", "solid", "slow-growing", "slow-growing solid nodule", note=_SLOW),
    # part-solid: solid_mm is the solid component's mean diameter
    *_rows(
        "part-solid",
        "baseline",
        ("2", "part-solid nodule < 6 mm total at baseline", (0, 6)),
        ("3", "part-solid nodule >= 6 mm total with solid component < 6 mm at baseline", (6, INF), (0, 6)),
        ("4A", "part-solid nodule with solid component >= 6 to < 8 mm at baseline", (6, INF), (6, 8)),
        ("4B", "part-solid nodule with solid component >= 8 mm at baseline", (0, INF), (8, INF)),
    ),
    *_rows(
        "part-solid",
        "new",
        ("3", "new part-solid nodule < 6 mm total", (0, 6)),
        ("4A", "new part-solid nodule (>= 6 mm total) with solid component < 4 mm", (6, INF), (0, 4)),
        ("4B", "new part-solid nodule (>= 6 mm total) with solid component >= 4 mm", (6, INF), (4, INF)),
    ),
    *_rows(
        "part-solid",
        "growing",
        ("4A", "part-solid nodule with a new or growing solid component < 4 mm", (0, INF), (0, 4)),
        ("4B", "part-solid nodule with a new or growing solid component >= 4 mm", (0, INF), (4, INF)),
    ),
    Row(
        "part-slow-growing-4B",
        "4B",
        "part-solid",
        "slow-growing",
        "slow-growing part-solid nodule",
        note=_SLOW,
    ),
    # ground glass (non-solid)
    *_rows(
        "ground glass",
        "baseline",
        ("2", "ground glass nodule < 30 mm at baseline", (0, 30)),
        ("3", "ground glass nodule >= 30 mm at baseline", (30, INF)),
    ),
    *_rows(
        "ground glass",
        "new",
        ("2", "new ground glass nodule < 30 mm", (0, 30)),
        ("3", "new ground glass nodule >= 30 mm", (30, INF)),
    ),
    *_rows("ground glass", "growing", ("2", "growing ground glass nodule < 30 mm", (0, 30))),
    Row(
        "ggn-growing-3",
        "3",
        "ground glass",
        "growing",
        "ground glass nodule growing to or beyond 30 mm",
        (30, INF),
        note="no row of its own in v2022: the >= 30 mm row (3), by the size-threshold note",
    ),
    *_rows("ground glass", "stable", ("2", "ground glass nodule < 30 mm, or >= 30 mm and stable")),
    *_rows("ground glass", "slow-growing", ("2", "ground glass nodule >= 30 mm (or < 30 mm) slowly growing")),
)

_FOLLOW_UP_ROWS = (
    Row(
        "stepped-3-to-2",
        "2",
        "any",
        "stable",
        "category 3 nodule stable or decreased in size at 6-month follow-up CT",
        prior_category="3",
        min_interval_days=152,
        note="a follow-up from 5 months on counts as the 6-month one",
    ),
    Row(
        "stepped-4A-to-3",
        "3",
        "any",
        "stable",
        "category 4A nodule stable or decreased in size at 3-month follow-up CT",
        prior_category="4A",
        min_interval_days=60,
        note="a follow-up from 2 months on counts as the 3-month one",
    ),
    Row(
        "size-threshold",
        "",
        "any",
        "stable",
        "a nodule that crosses a size threshold, even without growth, is reclassified by its size",
        note="category of the baseline size row",
    ),
    Row(
        "stable-unchanged",
        "",
        "any",
        "stable",
        "stable nodule without a stepped-management step: the category of the prior exam stands",
        note="4B/4X have no stepped step; 3/4A keep theirs until the scheduled follow-up",
    ),
)

_MODIFIER_ROWS = (
    Row(
        "benign-1",
        "1",
        "any",
        "any",
        "nodule with benign calcification (complete, central, popcorn, concentric rings) or fat",
    ),
    Row(
        "juxtapleural-2",
        "2",
        "solid",
        "any",
        "juxtapleural nodule < 10 mm mean diameter at baseline or new, solid, smooth margins, oval, "
        "lentiform or triangular",
        (0, 10),
        note="the reader confirms the juxtapleural shape",
    ),
    Row(
        "4X-spiculation",
        "4X",
        "any",
        "any",
        "category 3 or 4 nodule with additional features that "
        "increase the suspicion of lung cancer (spiculation)",
    ),
    Row(
        "4X-ggn-doubling",
        "4X",
        "ground glass",
        "growing",
        "ground glass nodule that doubles in size within 1 year (an additional suspicious feature)",
        note="mean diameter at least doubled within 12 months",
    ),
)

ROWS: tuple[Row, ...] = _SIZE_ROWS + _FOLLOW_UP_ROWS + _MODIFIER_ROWS

# Rows of the v2022 table that sizes and textures cannot decide; the reader assigns them.
NOT_ASSESSED = (
    "0: part or all of the lungs cannot be evaluated, or findings suggest an infectious or "
    "inflammatory process (1-3 month LDCT)",
    "2: category 4B lesion proven benign after diagnostic work-up",
    "2 / 4A / 4B: airway (endobronchial) nodules, subsegmental, segmental or more proximal",
    "2 / 3 / 4A / 4B: atypical pulmonary cysts (thin-walled, thick-walled, multilocular)",
)

# Recommended follow-up per category, with the LDCT interval in months (None: diagnostic work-up).
INTERVAL_MONTHS = {"1": 12, "2": 12, "3": 6, "4A": 3, "4B": None, "4X": None}


def row(key: str) -> Row:
    """The row with this key (KeyError naming it when there is none)."""
    for candidate in ROWS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no Lung-RADS row {key!r}")


def size_row(texture: str, status: str, mean_mm: float, solid_mm: float) -> Row:
    """The size row (baseline, new, growing, slow-growing, ground glass stable) that fires."""
    for candidate in _SIZE_ROWS:
        if candidate.matches(texture, status, mean_mm, solid_mm):
            return candidate
    raise ValueError(f"no Lung-RADS row for a {status} {texture} nodule of {mean_mm:.1f} mm")


def lungrads_growth(increase_mm: float, interval_days: float) -> bool:
    """Lung-RADS v2022 growth: mean diameter up by more than 1.5 mm within 12 months (over a longer
    interval: more than 1.5 mm per 12 months). ``increase_mm`` is rounded to 0.1 mm first, as the
    diameters are."""
    increase = round(increase_mm, 1)
    if increase <= GROWTH_MM:
        return False
    return interval_days <= YEAR_DAYS or increase * YEAR_DAYS / interval_days > GROWTH_MM
