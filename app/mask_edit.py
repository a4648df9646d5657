"""The reader's edits of a nodule mask (no Qt): grow or shrink by a voxel, paint or erase a sphere.

Each returns a new ``NoduleMask`` marked as edited (method "edited"), in the tightest box inside the
volume; the marker's centre and diameter are kept with it. ValueError when nothing would be left.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from core.measure.mask import NoduleMask

EDITED = "edited"


def _edited(mask: NoduleMask, box: np.ndarray, origin, shape_zyx) -> NoduleMask:
    made = replace(mask, origin_zyx=tuple(int(v) for v in origin), mask=box, method=EDITED, edited=True)
    made = made.clipped(shape_zyx).cropped()
    if not made.mask.any():
        raise ValueError("that edit would leave the mask empty")
    return made


def grown(mask: NoduleMask, shape_zyx) -> NoduleMask:
    """One voxel more all round (6-connected)."""
    box = ndimage.binary_dilation(np.pad(mask.mask, 1))
    return _edited(mask, box, np.subtract(mask.origin_zyx, 1), shape_zyx)


def shrunk(mask: NoduleMask, shape_zyx) -> NoduleMask:
    """One voxel less all round (6-connected)."""
    box = ndimage.binary_erosion(np.pad(mask.mask, 1))
    return _edited(mask, box, np.subtract(mask.origin_zyx, 1), shape_zyx)


def painted(
    mask: NoduleMask, centre_zyx, radius_mm: float, spacing_zyx, shape_zyx, add: bool = True
) -> NoduleMask:
    """The mask with a ball of ``radius_mm`` around voxel ``centre_zyx`` added (brush) or taken
    away (eraser)."""
    centre = np.asarray(centre_zyx, float)
    reach = np.floor(radius_mm / np.asarray(spacing_zyx, float)).astype(int)
    lo = np.minimum(np.round(centre).astype(int) - reach, mask.origin_zyx)
    hi = np.maximum(np.round(centre).astype(int) + reach + 1, np.add(mask.origin_zyx, mask.mask.shape))
    box = np.zeros(tuple(hi - lo), dtype=bool)
    start = np.subtract(mask.origin_zyx, lo)
    box[tuple(slice(a, a + n) for a, n in zip(start, mask.mask.shape, strict=True))] = mask.mask
    grid = np.ogrid[tuple(slice(0, n) for n in box.shape)]
    distance = sum(((g + a - c) * s) ** 2 for g, a, c, s in zip(grid, lo, centre, spacing_zyx, strict=True))
    ball = distance <= radius_mm**2
    box = box | ball if add else box & ~ball
    return _edited(mask, box, lo, shape_zyx)
