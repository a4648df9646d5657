"""The numbers read from one nodule's mask (``NoduleMeasurement``) and their JSON form.

The definitions (with their sources) are in the docstring of ``measure_nodule`` (``core.measure.axes``
once written); this module is only the record every consumer shares: the ``measure`` command, the
reports (CSV/JSON/PDF/SR), Lung-RADS and the viewer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

PLANES = ("axial", "coronal", "sagittal")
TEXTURES = ("solid", "part-solid", "ground glass")

Point = tuple[float, float, float]

# Repeatability of the shipped measurement (``core.measure.segment.segment_nodule``, the partial-volume
# volume and the Lung-RADS mean diameter): the limits within which two measurements of the same nodule
# fall, rendered twice into reserved-split phantoms (LIDC-IDRI 0851-1012) with other noise and a
# sub-voxel shift, nodules >= 6 mm, 1.25 and 2.5 mm slices pooled: |dV| / the smaller volume and
# |d mean diameter|. A follow-up change smaller than these is "within measurement error"
# (``core.followup.growth.Repeatability``'s defaults). Measured by
#   nice -n 15 .venv/bin/python bench/bench_segmentation.py --methods hybrid
# (seeds 11-14, 20 nodules each: 122 pairs), its "all thicknesses" lines: the robust 95 % limits
# (1.96 / 0.674 = 2.91 x the median |d|, the ratio for a normal difference) 10.2 % and 0.58 mm. The
# plain 95th percentiles, 88.4 % and 1.69 mm, are set by the 13 of 122 pairs whose mask itself
# changed between the renderings (a segmentation failure the reader sees in the outline and corrects,
# not noise a trend should absorb: taking them would call a 1.8x growth "within error").
REPEATABILITY_VOLUME_PERCENT = 10.2
REPEATABILITY_DIAMETER_MM = 0.6  # 0.58 measured, to the 0.1 mm that diameters are given in
# The same for a nodule's two volumes measured together in a follow-up (``core.measure.paired``: the
# current's own volume and the prior's as it less the change read from both images over one region),
# on the same 122 pairs: ``bench/bench_volume_repeatability.py --split test --seeds 11 12 13 14
# --masks hybrid``, its "all thicknesses" line for "paired (follow-up)": median |dV| / smaller 1.9 %,
# robust 95 % limit 5.5 % (the independent volumes' there: 3.5 % and 10.2 %, as above). None of the 122
# was refused by ``paired_volumes``; the two renderings share one grid, so the registration is exact
# there (``compare`` refines it at the nodule: 0.03 mm median on phantoms, README "Follow-up").
REPEATABILITY_PAIRED_VOLUME_PERCENT = 5.5


@dataclass(frozen=True)
class NoduleMeasurement:
    volume_mm3: float
    effective_diameter_mm: float  # diameter of the sphere of the same volume
    long_axis_mm: float  # longest in-plane diameter, on the plane (axial/coronal/sagittal) where greatest
    short_axis_mm: float  # longest diameter perpendicular to it, on the same slice
    mean_diameter_mm: float  # (long + short) / 2, rounded to 0.1 mm (Lung-RADS v2022)
    plane: str  # "axial" | "coronal" | "sagittal": where the long axis was measured
    slice_index: int  # the slice of that plane (0-based index along its normal axis in the volume)
    long_axis_ends_mm: tuple[Point, Point]  # LPS mm end points, for calipers
    short_axis_ends_mm: tuple[Point, Point]
    texture: str  # "solid" | "part-solid" | "ground glass", from the mask's HU
    solid_diameter_mm: float | None  # mean diameter of the solid component (part-solid only)
    solid_volume_mm3: float
    mean_hu: float
    max_hu: float
    calcification_fraction: float  # share of the mask's voxels at calcium density
    touches_pleura: bool
    method: str
    edited: bool = False
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, not {self.plane!r}")
        if self.texture not in TEXTURES:
            raise ValueError(f"texture must be one of {TEXTURES}, not {self.texture!r}")
        numbers = [self.volume_mm3, self.long_axis_mm, self.short_axis_mm, self.mean_hu, self.max_hu]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("a nodule measurement holds a non-finite number")
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def to_dict(self) -> dict:
        """JSON-ready, with the key names of ``measure``'s output."""
        data = asdict(self)
        data["long_axis_ends_mm"] = [list(p) for p in self.long_axis_ends_mm]
        data["short_axis_ends_mm"] = [list(p) for p in self.short_axis_ends_mm]
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> NoduleMeasurement:
        """ValueError when a saved measurement is malformed."""
        try:
            values = dict(data)
            values["long_axis_ends_mm"] = tuple(tuple(float(v) for v in p) for p in data["long_axis_ends_mm"])
            values["short_axis_ends_mm"] = tuple(
                tuple(float(v) for v in p) for p in data["short_axis_ends_mm"]
            )
            values["warnings"] = tuple(str(w) for w in data.get("warnings", ()))
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a saved measurement is malformed ({exc})") from exc
