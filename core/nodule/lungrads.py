"""Lung-RADS v2022 category of one nodule at baseline screening, from measured sizes when the nodule
was segmented, else from the model's texture guess and the marker diameter; and the Fleischner 2017
recommendation for a single incidental nodule.

Both are research estimates, never a reading. With a measurement of the nodule's 3D mask (``Measured``:
``core.measure``'s ``NoduleMeasurement`` fits it) the size is its mean of long and short axis, the
texture its measured texture (unless the reader rated it) and a part-solid nodule's solid part its
measured solid component. Without one the size is the reader's marker diameter, the texture class
comes from the predicted LIDC texture score, and the solid part is estimated from that score. Every
result says which ("measured" or "estimated", ``basis`` and ``inputs``).

The rules, on the original LIDC scales (``core.lidc.records``):

* size: the measured mean of long and short axis, or the marker diameter standing for it, to 0.1 mm.
* texture (1 non-solid/ground glass .. 3 part solid .. 5 solid): ``< 2.0`` ground glass,
  ``2.0 to < 4.0`` part-solid, ``>= 4.0`` solid (``TEXTURE_CUTOFFS``).
* solid component of a part-solid nodule: the texture score read as a linear solid share of the
  diameter, ``(texture - 1) / 4`` (1 = none, 3 = half, 5 = all), rounded to 0.1 mm.
* calcification (1 popcorn, 2 laminated, 3 solid, 4 non-central, 5 central, 6 absent): a mean score
  ``<= 4.5`` is taken as a confident benign pattern and gives category 1.
* spiculation (1 none .. 5 marked): ``>= 3.5`` raises a category 3, 4A or 4B to 4X.

Only baseline rows of the table apply: a single marker knows nothing of growth or of earlier scans.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Protocol

from core.nodule.ratings import RATING_MAX

CATEGORIES = ("1", "2", "3", "4A", "4B", "4X")  # lowest to highest concern
TEXTURES = ("solid", "part-solid", "ground glass")
TEXTURE_CUTOFFS = (2.0, 4.0)  # texture < 2.0 ground glass; 2.0 to < 4.0 part-solid; >= 4.0 solid
BENIGN_CALCIFICATION_MAX = 4.5  # LIDC calcification <= 4.5: a benign pattern (6 = absent)
SPICULATION_4X = 3.5  # LIDC spiculation >= 3.5: a suspicious feature (category 3/4 -> 4X)

FOLLOW_UP = {
    "1": "continue annual screening: LDCT in 12 months",
    "2": "continue annual screening: LDCT in 12 months",
    "3": "LDCT in 6 months",
    "4A": "LDCT in 3 months; PET/CT may be used",
    "4B": "diagnostic chest CT, PET/CT and/or tissue sampling",
    "4X": "diagnostic chest CT, PET/CT and/or tissue sampling",
}
NOTICE = "research estimate, not a clinical reading: confirm texture and size on the images"


@dataclass(frozen=True)
class LungRads:
    """One nodule's Lung-RADS v2022 category at baseline, and how it was reached.

    ``rule`` names the row of the table that fired, with the numbers; ``basis`` says where they came
    from (the model's texture guess, the marker diameter); ``inputs`` holds the numbers used.
    """

    category: str
    rule: str
    follow_up: str
    texture: str
    inputs: dict[str, Any] = field(default_factory=dict)
    basis: str = ""

    @property
    def rank(self) -> int:
        """Position in ``CATEGORIES`` (0 = category 1): larger is more suspicious."""
        return CATEGORIES.index(self.category)

    @property
    def text(self) -> str:
        """One line for a report or a tooltip: category, the rule that fired, the basis."""
        return f"Lung-RADS {self.category}: {self.rule}. Follow-up: {self.follow_up}. {self.basis}"


class Measured(Protocol):
    """What Lung-RADS reads from a nodule's measured mask (``core.measure.NoduleMeasurement``)."""

    mean_diameter_mm: float  # (long + short axis) / 2, to 0.1 mm
    texture: str  # one of TEXTURES
    solid_diameter_mm: float | None  # the solid component's mean diameter (part-solid only)


_ASSESSED = ("texture", "calcification", "spiculation")
_TEXTURE_BASIS = {
    "model": "the model's texture guess",
    "reader": "the reader's texture rating",
    "measured": "the measured texture",
}


def texture_class(texture_score: float) -> str:
    """``"ground glass"``, ``"part-solid"`` or ``"solid"`` from an LIDC texture score (1..5)."""
    low, high = TEXTURE_CUTOFFS
    if texture_score < low:
        return "ground glass"
    return "part-solid" if texture_score < high else "solid"


def solid_fraction(texture_score: float) -> float:
    """Estimated solid share of the diameter: ``(texture - 1) / 4``, clipped to 0..1."""
    return min(max((texture_score - 1.0) / 4.0, 0.0), 1.0)


def nodule_category(
    diameter_mm: float,
    model_attributes: Mapping[str, float] | None,
    reader_attributes: Mapping[str, float] | None = None,
    measured: Measured | None = None,
) -> LungRads | None:
    """A nodule's category as every view shows it (review, worklist, ``batch``, SR/PDF/CSV/JSON).

    The reader's confirmed ratings win over the model's (texture, calcification, spiculation), and
    ``basis`` and ``rule`` say whose each one is; a measurement's size, texture and solid part win over
    the marker and the model's texture (``lung_rads``). ``None`` when there is no model result yet or
    the ratings cannot be assessed (a rating missing or off its scale; ``lung_rads`` says why).
    """
    if model_attributes is None:
        return None
    reader = dict(reader_attributes or {})
    try:
        return lung_rads(
            diameter_mm, dict(model_attributes) | reader, from_reader=frozenset(reader), measured=measured
        )
    except (ValueError, TypeError):
        return None


def lung_rads(
    diameter_mm: float,
    attributes: Mapping[str, float],
    from_reader: frozenset[str] = frozenset(),
    measured: Measured | None = None,
) -> LungRads:
    """Lung-RADS v2022 category at baseline from the marker diameter and the predicted LIDC attributes,
    or from a measurement of the nodule's mask when ``measured`` is given.

    ``attributes`` must hold ``texture`` unless ``measured`` gives it; ``calcification`` and
    ``spiculation`` are used when present (without them benign calcification and the 4X raise are not
    assessed, and ``rule`` says so). A measurement's mean diameter replaces the marker's; its texture
    replaces the model's (a reader's texture rating still wins); its solid component is the solid part
    of a part-solid nodule, estimated from the texture score only when it has none.
    Raises ``ValueError`` on a diameter that is not a positive finite number, a measurement with an
    unknown texture, or on a missing, non-finite or out-of-scale rating. ``from_reader`` names the
    ratings a reader gave (the rule and basis then say "reader", not "model").
    """
    if not isinstance(attributes, Mapping):
        raise ValueError(f"attributes must be a mapping of LIDC ratings, not {type(attributes).__name__}")
    diameter = _diameter(measured.mean_diameter_mm if measured is not None else diameter_mm)
    whose = {name: "reader" if name in from_reader else "model" for name in _ASSESSED}
    if measured is not None and measured.texture not in TEXTURES:
        raise ValueError(f"a measured texture must be one of {', '.join(TEXTURES)}, not {measured.texture!r}")
    if measured is not None and whose["texture"] != "reader":
        whose["texture"] = "measured"
    if whose["texture"] != "measured" and attributes.get("texture") is None:
        raise ValueError("Lung-RADS needs the predicted texture score ('texture'), and it is missing")
    texture_score = _rating(attributes, "texture") if attributes.get("texture") is not None else None
    calcification = _rating(attributes, "calcification") if "calcification" in attributes else None
    spiculation = _rating(attributes, "spiculation") if "spiculation" in attributes else None
    texture = measured.texture if whose["texture"] == "measured" else texture_class(texture_score)
    inputs: dict[str, Any] = {
        "diameter_mm": diameter,
        "size_basis": "measured" if measured is not None else "marker",
        "texture_score": texture_score,
        "texture": texture,
        "texture_basis": whose["texture"],
        "calcification_score": calcification,
        "spiculation_score": spiculation,
    }
    solid = _solid_part(diameter, texture, texture_score, measured, inputs)
    basis = _basis(diameter, measured is not None, whose["texture"], texture_score, texture, inputs)

    if calcification is not None and calcification <= BENIGN_CALCIFICATION_MAX:
        rule = (
            f"benign calcification ({whose['calcification']} calcification {calcification:.2f} <= "
            f"{BENIGN_CALCIFICATION_MAX}: a benign pattern; {texture} {diameter:.1f} mm)"
        )
        return LungRads("1", rule, FOLLOW_UP["1"], texture, inputs, basis)

    size = f"{'measured' if measured is not None else 'marker'} {diameter:.1f} mm"
    category, rule = _table_row(diameter, texture, size, solid)
    if spiculation is None and category in ("3", "4A", "4B"):
        rule += "; spiculation not given, so 4X not assessed"
    elif spiculation is not None and category in ("3", "4A", "4B") and spiculation >= SPICULATION_4X:
        rule += (
            f"; category {category} raised to 4X, suspicious feature: spiculation "
            f"({whose['spiculation']} spiculation {spiculation:.2f} >= {SPICULATION_4X})"
        )
        category = "4X"
    if calcification is None:
        rule += "; calcification not given, so benign calcification not assessed"
    return LungRads(category, rule, FOLLOW_UP[category], texture, inputs, basis)


def _solid_part(diameter, texture, texture_score, measured, inputs) -> tuple[float, str] | None:
    """A part-solid nodule's solid part (mm) and how it was found: measured, else estimated from the
    texture score; ``inputs`` gets both. ``None`` for other textures."""
    if texture != "part-solid":
        return None
    if measured is not None and measured.solid_diameter_mm is not None:
        solid = _diameter(measured.solid_diameter_mm)
        inputs["solid_part_mm"], inputs["solid_part_basis"] = solid, "measured"
        return solid, f"solid part {solid:.1f} mm, measured on its solid component"
    if texture_score is None:
        raise ValueError("a part-solid nodule needs a measured solid part or a texture score to estimate it")
    fraction = solid_fraction(texture_score)
    solid = round(diameter * fraction, 1)
    inputs["solid_fraction"] = fraction
    inputs["solid_part_mm"], inputs["solid_part_basis"] = solid, "estimated"
    source = "a marker does not measure it" if measured is None else "its mask has no solid component"
    return solid, (
        f"solid part ~{solid:.1f} mm, estimated as {fraction:.0%} of the diameter from texture "
        f"{texture_score:.2f}: {source}"
    )


def _basis(diameter, size_measured, texture_from, texture_score, texture, inputs) -> str:
    """Where the numbers came from, "measured" or "estimated", in one sentence."""
    tail = f"baseline screening rows only; {NOTICE}."
    if not size_measured:  # the marker and a texture score: every number is an estimate
        return (
            f"Basis: estimated from {_TEXTURE_BASIS[texture_from]} (texture {texture_score:.2f} -> "
            f"{texture}) and the marker diameter ({diameter:.1f} mm), {tail}"
        )
    parts = [f"size measured on the nodule's 3D mask (mean of long and short axis {diameter:.1f} mm)"]
    if texture_from == "measured":
        parts.append(f"texture measured ({texture})")
    else:
        parts.append(f"texture from {_TEXTURE_BASIS[texture_from]} ({texture_score:.2f} -> {texture})")
    if "solid_part_mm" in inputs:
        parts.append(f"solid part {inputs['solid_part_basis']} ({inputs['solid_part_mm']:.1f} mm)")
    return f"Basis: {'; '.join(parts)}; {tail}"


def _table_row(diameter: float, texture: str, size: str, solid: tuple[float, str] | None) -> tuple[str, str]:
    """The baseline row of the Lung-RADS v2022 table for a non-calcified nodule."""
    if texture == "solid":
        if diameter < 6.0:
            return "2", f"solid < 6 mm at baseline ({size})"
        if diameter < 8.0:
            return "3", f"solid 6.0 to < 8 mm at baseline ({size})"
        if diameter < 15.0:
            return "4A", f"solid 8.0 to < 15 mm at baseline ({size})"
        return "4B", f"solid >= 15 mm at baseline ({size})"
    if texture == "ground glass":
        if diameter < 30.0:
            return "2", f"ground glass < 30 mm ({size})"
        return "3", f"ground glass >= 30 mm at baseline ({size})"
    part, how = solid
    if diameter < 6.0:
        return "2", f"part-solid < 6 mm total at baseline ({size})"
    if part < 6.0:
        return "3", f"part-solid >= 6 mm total with solid part < 6 mm ({size}; {how})"
    if part < 8.0:
        return "4A", f"part-solid with solid part 6.0 to < 8 mm ({size}; {how})"
    return "4B", f"part-solid with solid part >= 8 mm ({size}; {how})"


def study_category(results: Iterable[Any]) -> LungRads | None:
    """The highest category of a study (1 < 2 < 3 < 4A < 4B < 4X), or ``None`` without nodules.
    ``None`` items (nodules not assessed) are passed over.

    Each item is a ``LungRads``, or a ``(diameter_mm, attributes)`` pair where ``attributes`` is a
    mapping of LIDC ratings or anything with an ``attributes`` mapping (an inference ``NoduleResult``).
    The first of equally high categories wins.
    """
    best: LungRads | None = None
    for item in results:
        if item is None:
            continue
        if not isinstance(item, LungRads):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(
                    f"study_category takes LungRads or (diameter_mm, attributes) pairs, not {item!r}"
                )
            diameter, attributes = item
            attributes = getattr(attributes, "attributes", attributes)
            item = lung_rads(diameter, attributes)
        if best is None or item.rank > best.rank:
            best = item
    return best


def fleischner(diameter_mm: float, texture: str) -> str:
    """Fleischner 2017 recommendation for a single incidental nodule (patient >= 35 years, not
    screening), as a short string. ``texture``: ``"solid"``, ``"part-solid"`` or ``"ground glass"``.

    The size is the diameter rounded to the nearest whole mm, as Fleischner asks: < 6, 6-8, > 8 mm.
    """
    diameter = _diameter(diameter_mm)
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, not {texture!r}")
    mm = math.floor(diameter + 0.5)
    head = f"Fleischner 2017, single {texture} nodule, {diameter:.1f} mm (marker; texture from the model)"
    if texture == "solid":
        if mm < 6:
            advice = "< 6 mm: no routine follow-up (optional CT at 12 months if high risk)"
        elif mm <= 8:
            advice = "6-8 mm: CT at 6-12 months, then consider CT at 18-24 months"
        else:
            advice = "> 8 mm: consider CT at 3 months, PET/CT or tissue sampling"
    elif mm < 6:
        advice = "< 6 mm: no routine follow-up"
    elif texture == "ground glass":
        advice = ">= 6 mm: CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years"
    else:
        advice = (
            ">= 6 mm: CT at 3-6 months to confirm persistence; if unchanged and the solid part < 6 mm, "
            "annual CT for 5 years"
        )
    return f"{head}: {advice}"


def _diameter(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"diameter must be a number of mm, not {value!r}")
    diameter = float(value)
    if not math.isfinite(diameter) or diameter <= 0:
        raise ValueError(f"diameter must be a positive finite number of mm, not {value!r}")
    return round(diameter, 1)


def _rating(attributes: Mapping[str, float], name: str) -> float:
    value = attributes[name]
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite LIDC rating, not {value!r}")
    value = float(value)
    top = RATING_MAX[name]
    if not 1.0 - 1e-6 <= value <= top + 1e-6:
        raise ValueError(f"{name} {value:g} is outside the LIDC scale 1..{top}")
    return value
