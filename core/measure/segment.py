"""A nodule's 3D mask from a marker (centre + rough diameter), in the CT's own grid.

First version: lung-window threshold, the connected part that holds the marker's centre, kept inside
a sphere of 1.5x the marker's radius. To be replaced by the measured method (issue 17).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from core.measure.mask import NoduleMask
from core.volume import CTVolume

THRESHOLD_HU = -500.0
METHOD = "classical/threshold-v0"


class SegmentationError(ValueError):
    """A marker that cannot be segmented; the message says why (air, outside the volume...)."""


def segment_nodule(volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> NoduleMask:
    """The nodule at ``centre_mm`` (LPS) of about ``diameter_mm``; SegmentationError when none."""
    if not volume.contains_mm(np.asarray(centre_mm, dtype=np.float64)):
        raise SegmentationError(f"the marker at {_mm(centre_mm)} lies outside the volume")
    spacing_zyx = np.array(volume.spacing[::-1])
    centre_zyx = volume.mm_to_voxel(np.asarray(centre_mm, dtype=np.float64))[::-1]
    reach = 0.75 * float(diameter_mm) + 2 * spacing_zyx
    lo = np.maximum(np.floor(centre_zyx - reach / spacing_zyx).astype(int), 0)
    hi = np.minimum(np.ceil(centre_zyx + reach / spacing_zyx).astype(int) + 1, volume.shape)
    box = volume.array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].astype(np.float32)
    grid = np.indices(box.shape, dtype=np.float32)
    offset = (grid - (centre_zyx - lo)[:, None, None, None]) * spacing_zyx[:, None, None, None]
    inside = np.sqrt((offset**2).sum(axis=0)) <= 0.75 * float(diameter_mm)
    dense = (box > THRESHOLD_HU) & inside
    labels, count = ndimage.label(dense)
    if count == 0:
        raise SegmentationError(f"nothing denser than {THRESHOLD_HU:g} HU at the marker {_mm(centre_mm)}")
    seed = tuple(np.clip(np.rint(centre_zyx - lo).astype(int), 0, np.array(box.shape) - 1))
    keep = labels[seed]
    if keep == 0:  # the centre itself is air: take the part nearest to it
        distance, (iz, iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        if distance[seed] * spacing_zyx.min() > float(diameter_mm) / 2:
            raise SegmentationError(f"no nodule within the marker at {_mm(centre_mm)} (air)")
        keep = labels[iz[seed], iy[seed], ix[seed]]
    mask = labels == keep
    return NoduleMask(
        tuple(int(v) for v in lo), mask, METHOD, tuple(float(v) for v in centre_mm), float(diameter_mm)
    ).cropped()


def _mm(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in point) + ") mm"
