"""Hand-made nodule measurements for report and Lung-RADS tests that need no segmentation."""

from __future__ import annotations

from dataclasses import replace

from core.measure.measurement import NoduleMeasurement


def measurement(**changes) -> NoduleMeasurement:
    """A part-solid 12.4 x 8.2 mm nodule with a 6.5 mm solid part; ``changes`` replace fields."""
    base = NoduleMeasurement(
        volume_mm3=512.3,
        effective_diameter_mm=9.93,
        long_axis_mm=12.4,
        short_axis_mm=8.2,
        mean_diameter_mm=10.3,
        plane="axial",
        slice_index=7,
        long_axis_ends_mm=((-6.2, -3.0, 10.0), (6.2, -3.0, 10.0)),
        short_axis_ends_mm=((0.0, -7.1, 10.0), (0.0, 1.1, 10.0)),
        texture="part-solid",
        solid_diameter_mm=6.5,
        solid_volume_mm3=140.0,
        mean_hu=-310.0,
        max_hu=85.0,
        calcification_fraction=0.0,
        touches_pleura=True,
        method="classical/test",
        edited=False,
    )
    return replace(base, **changes)
