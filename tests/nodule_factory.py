"""Hand-made LIDC-like nodules for tests that must not depend on the real annotation table."""

from __future__ import annotations

import numpy as np

from core.lidc.records import LidcNodule
from core.nodule.ratings import RATINGS


def ellipsoid_nodule(
    nodule_id: str = "LIDC-IDRI-0001/scan-1/nodule-1",
    radii_mm: tuple[float, float, float] = (6.0, 5.0, 4.0),
    spacing: tuple[float, float, float] = (0.7, 0.7, 1.25),
    **ratings: float,
) -> LidcNodule:
    """An ellipsoid consensus mask with radii (x, y, z) in mm and the given mean ratings (4 readers)."""
    counts = [int(np.ceil(r / s)) + 1 for r, s in zip(radii_mm, spacing, strict=True)]
    z, y, x = np.mgrid[-counts[2] : counts[2] + 1, -counts[1] : counts[1] + 1, -counts[0] : counts[0] + 1]
    mask = (x * spacing[0] / radii_mm[0]) ** 2 + (y * spacing[1] / radii_mm[1]) ** 2 + (
        z * spacing[2] / radii_mm[2]
    ) ** 2 <= 1
    defaults = dict.fromkeys(RATINGS, 3.0) | {"calcification": 6.0, "internal_structure": 1.0}
    defaults |= {"texture": 5.0, "margin": 4.0, "subtlety": 4.0, "spiculation": 1.0}
    values = defaults | ratings
    return LidcNodule(
        nodule_id=nodule_id,
        patient_id=nodule_id.split("/")[0],
        scan_id=1,
        series_uid="1.2.3",
        annotation_ids=(1, 2, 3, 4),
        ratings={name: (values[name],) * 4 for name in RATINGS},
        centroid_mm=(0.0, 0.0, 0.0),
        diameter_mm=2 * max(radii_mm[:2]),
        bbox_mm=tuple((-r, r) for r in radii_mm),
        mask=mask,
        mask_spacing=spacing,
    )
