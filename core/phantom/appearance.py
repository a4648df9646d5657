"""How a nodule looks, from its eight LIDC attribute ratings only (never its malignancy).

The rules, one rating each (means of the readers, LIDC scales):

* texture (1 non-solid .. 5 solid): the solid fraction of the nodule and the ground-glass density
  (about -620 HU for pure ground glass to -380 HU for mostly solid); the solid part about +30 HU.
* calcification (1 popcorn, 2 laminated, 3 solid, 4 non-central, 5 central, 6 absent): the pattern
  of calcium (+400 to +1000 HU) when the mean is below 5.5.
* internal structure (1 soft tissue, 2 fluid, 3 fat, 4 air): the centre of the solid part.
* margin (1 poorly defined .. 5 sharp): edge blur, 1.1 mm to 0.3 mm.
* subtlety (1 extremely subtle .. 5 obvious): contrast against the surrounding lung, 80% to 100%.
* spiculation (1 none .. 5 marked): thin strands radiating from the surface.
* sphericity and lobulation: carried by the real LIDC mask itself; nothing is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.nodule.ratings import ATTRIBUTES

CALCIFICATION_PATTERNS = {1: "popcorn", 2: "laminated", 3: "solid", 4: "non-central", 5: "central"}
INTERNAL = {1: "soft tissue", 2: "fluid", 3: "fat", 4: "air"}


@dataclass(frozen=True)
class Appearance:
    solid_fraction: float
    solid_hu: float
    ground_glass_hu: float
    edge_blur_mm: float
    contrast: float
    calcification: str | None
    internal: str
    spicules: int
    spicule_length_mm: float

    @property
    def texture_class(self) -> str:
        if self.solid_fraction <= 0.05:
            return "ground glass"
        return "solid" if self.solid_fraction >= 0.9 else "part-solid"


def appearance_from_ratings(attributes: Mapping[str, float]) -> Appearance:
    """Map the eight mean attribute ratings to rendering parameters. Malignancy is not read."""
    missing = [name for name in ATTRIBUTES if name not in attributes]
    if missing:
        raise ValueError(f"attribute ratings missing: {', '.join(missing)}")
    r = {name: float(attributes[name]) for name in ATTRIBUTES}  # only the eight, by construction
    texture = r["texture"]
    calcification = None
    if r["calcification"] < 5.5:
        calcification = CALCIFICATION_PATTERNS[int(np.clip(round(r["calcification"]), 1, 5))]
    return Appearance(
        solid_fraction=float(np.interp(texture, [1, 2, 3, 4, 5], [0.0, 0.15, 0.45, 0.8, 1.0])),
        solid_hu=30.0,
        ground_glass_hu=float(np.interp(texture, [1, 3, 5], [-620.0, -480.0, -380.0])),
        edge_blur_mm=float(np.interp(r["margin"], [1, 5], [1.1, 0.3])),
        contrast=float(np.interp(r["subtlety"], [1, 5], [0.8, 1.0])),
        calcification=calcification,
        internal=INTERNAL[int(np.clip(round(r["internal_structure"]), 1, 4))],
        spicules=round(max(r["spiculation"] - 1.0, 0.0) * 3),
        spicule_length_mm=float(np.interp(r["spiculation"], [1, 5], [2.0, 9.0])),
    )
