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


def thresholded(mask: NoduleMask, array: np.ndarray, threshold_hu: float, reach: int = 2) -> NoduleMask:
    """The voxels at or above ``threshold_hu`` within ``reach`` voxels of the mask, in the parts that
    overlap it: a lower threshold takes in fainter tissue around the nodule (a little per step), a
    higher one keeps its denser core. ``array``: the volume's HU (z, y, x)."""
    origin = np.subtract(mask.origin_zyx, reach)
    box = np.pad(mask.mask, reach)
    near = ndimage.binary_dilation(box, iterations=reach)
    hu = np.full(box.shape, -1024, dtype=array.dtype)
    lo, hi = np.maximum(origin, 0), np.minimum(origin + box.shape, array.shape)
    if np.all(hi > lo):
        hu[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin, strict=True))] = array[
            tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        ]
    dense = near & (hu >= threshold_hu)
    labels, _ = ndimage.label(dense)
    keep = np.unique(labels[box & dense])
    return _edited(mask, np.isin(labels, keep[keep > 0]), origin, array.shape)
