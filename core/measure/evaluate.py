"""How close a mask is to a reference mask (a phantom's rendered consensus mask): Dice and volume error.

Both masks are boxes in the same volume grid (``NoduleMask``); they are compared voxel for voxel on
the union of their boxes. Volume error is signed and relative: ``(V_mask - V_truth) / V_truth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.measure.mask import NoduleMask


@dataclass(frozen=True)
class Agreement:
    dice: float
    volume_error: float  # signed, relative to the reference
    truth_voxels: int
    mask_voxels: int


def agreement(truth: NoduleMask, mask: NoduleMask) -> Agreement:
    """Dice and relative volume error of ``mask`` against ``truth`` (ValueError for an empty truth)."""
    if truth.voxels == 0:
        raise ValueError("the reference mask is empty")
    lo = np.minimum(truth.origin_zyx, mask.origin_zyx)
    hi = np.maximum(np.add(truth.origin_zyx, truth.mask.shape), np.add(mask.origin_zyx, mask.mask.shape))
    a, b = _paste(truth, lo, hi), _paste(mask, lo, hi)
    inter, ta, tb = int((a & b).sum()), int(a.sum()), int(b.sum())
    return Agreement(2 * inter / (ta + tb), (tb - ta) / ta, ta, tb)


def _paste(mask: NoduleMask, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    out = np.zeros(tuple(hi - lo), dtype=bool)
    where = tuple(
        slice(o - a, o - a + n) for o, a, n in zip(mask.origin_zyx, lo, mask.mask.shape, strict=True)
    )
    out[where] = mask.mask
    return out
