"""A nodule's volume at two studies measured together: the change read from both images at once.

Each study's own volume (``partial_volume_mm3``) depends on its own tissue level and on the region its
own mask puts round the nodule; a sub-voxel shift of the nodule against the grid moves both, and so
the same nodule scanned twice can measure 20-50 % apart (thick slices, a nodule against the wall or a
vessel: ``bench/bench_volume_repeatability.py``). What a follow-up asks is the *change*, and that can
be read with neither moving (QIBA CT volumetry profile: measure both time points alike):

* one region for both: the prior's mask and the current mask carried into the prior's grid, grown by
  a voxel and by ``BAND_MM`` (their blurred edges), and the carried mask by ``CURRENT_REACH_VOXELS`` of
  the current's own voxels (its partial volume reaches that far in slices that may be thicker than
  the prior's; the axes are taken as aligned, as a rigid follow-up's nearly are);
* one tissue contrast for both: the mean of the two studies' own (tissue - parenchyma) levels
  (``partial_volume_levels``), and each study's own parenchyma level taken off its HU (a calibration
  offset between the scanners cancels);
* the current study resampled into that region through the registration (trilinear: it keeps the
  integral of the HU; a prior voxel larger than the current's sampled across and averaged), and
  the change ``sum((current - its parenchyma) - (prior - its parenchyma)) / contrast x voxel
  volume``: the partial-volume sum of a region that holds both nodules, the same
  for both studies, so what does not change between them (the wall, a vessel, the parenchyma) cancels
  and what changed is the nodule.

The current study keeps its own volume, the one every other view shows; the prior's is the current
one less the change. ``paired_volumes`` refuses (``ValueError`` with the reason) where the region
reaches outside either study, where the two studies give no tissue contrast, or where the change would
leave the prior no volume; the caller then keeps the two studies' own volumes.
Measured on phantoms in ``bench/bench_volume_repeatability.py`` and ``bench/bench_follow_up.py``
(README, "Measuring nodules" and "Follow-up").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.measure.mask import NoduleMask
from core.measure.segment import BAND_MM, partial_volume_levels
from core.volume import CTVolume

METHOD = "paired"
CURRENT_REACH_VOXELS = 1.5  # the carried mask's edge spread, in the current's own voxels
TOGETHER_TEXT = (
    "Volumes measured together with the prior: one region and one tissue level for both studies "
    "(the prior's volume is the current's less the change read from both images)"
)


@dataclass(frozen=True)
class PairedVolumes:
    """Volumes (mm^3) of one nodule at the prior and the current study, measured together."""

    prior_mm3: float
    current_mm3: float
    change_mm3: float  # current - prior, read from both images over one region
    contrast_hu: float  # the shared tissue - parenchyma contrast


def paired_volumes(
    prior: CTVolume,
    prior_mask: NoduleMask,
    current: CTVolume,
    current_mask: NoduleMask,
    current_to_prior: np.ndarray,
    current_mm3: float,
) -> PairedVolumes:
    """The nodule's prior and current volumes measured together (module docstring).

    ``current_to_prior``: 4x4 matrix from current LPS mm to prior LPS mm (the registration, refined at
    this nodule); ``current_mm3``: the current study's own volume of the nodule. ValueError with the
    reason where it cannot be measured together.
    """
    matrix = np.asarray(current_to_prior, dtype=np.float64)
    if (
        matrix.shape != (4, 4)
        or not np.all(np.isfinite(matrix))
        or not np.allclose(matrix[3], [0, 0, 0, 1])
        or abs(np.linalg.det(matrix[:3, :3])) < 1e-9
    ):
        raise ValueError("the studies' registration is not an invertible 4x4 affine matrix")
    if not (np.isfinite(current_mm3) and current_mm3 > 0):
        raise ValueError("the current study's own volume is not positive")
    to_current = np.linalg.inv(matrix)
    spacing = np.array(prior.spacing[::-1], dtype=np.float64)  # (z, y, x) mm
    current_spacing = np.array(current.spacing[::-1], dtype=np.float64)
    box = _box(prior, prior_mask, current, current_mask, matrix, spacing, current_spacing)
    if box is None:
        raise ValueError("the nodule's region reaches outside the prior study")
    lo, hi = box
    shape = tuple(int(v) for v in hi - lo)
    index = np.indices(shape, dtype=np.float64).reshape(3, -1) + lo[:, None]  # (z, y, x)

    def in_current(offset_zyx) -> np.ndarray:
        """The prior's box points (moved by ``offset_zyx`` prior voxels) as current voxels (z, y, x)."""
        prior_mm = prior.voxel_to_mm((index + np.asarray(offset_zyx)[:, None])[::-1].T)
        return current.mm_to_voxel(prior_mm @ to_current[:3, :3].T + to_current[:3, 3])[:, ::-1].T

    # a prior voxel larger than the current's is sampled several times across and averaged (a
    # thick prior slice against a thin current one would otherwise read the current at one depth)
    counts = np.maximum(np.ceil(spacing / current_spacing - 1e-6), 1).astype(int)
    offsets = [((np.arange(n) + 0.5) / n - 0.5) for n in counts]
    hu_current = np.zeros(shape, dtype=np.float64)
    for offset in np.array(np.meshgrid(*offsets, indexing="ij")).reshape(3, -1).T:
        hu_current += ndimage.map_coordinates(
            current.array, in_current(offset), order=1, mode="constant", cval=np.nan, output=np.float32
        ).reshape(shape)
    hu_current /= int(np.prod(counts))
    if np.isnan(hu_current).any():
        raise ValueError("the nodule's region reaches outside the current study")
    carried = (
        ndimage.map_coordinates(
            current_mask.mask.astype(np.float32),
            in_current((0.0, 0.0, 0.0)) - np.asarray(current_mask.origin_zyx, dtype=np.float64)[:, None],
            order=1,
            mode="constant",
            cval=0.0,
        ).reshape(shape)
        >= 0.5
    )
    own = NoduleMask(tuple(np.subtract(prior_mask.origin_zyx, lo)), prior_mask.mask, prior_mask.method)
    both = own.in_volume(shape) | carried
    if not both.any():
        raise ValueError("neither mask holds a voxel inside the prior study")
    (prior_bg, prior_tissue), (current_bg, current_tissue) = (
        partial_volume_levels(prior, prior_mask),
        partial_volume_levels(current, current_mask),
    )
    contrast = 0.5 * ((prior_tissue - prior_bg) + (current_tissue - current_bg))
    if not (np.isfinite(contrast) and contrast > 1.0):
        raise ValueError("the studies show no tissue contrast at the nodule")
    # each study's blurred edge: a voxel and the band round both masks, and a current voxel and a half
    # round the carried mask (its partial volume, in its own slices, may be thicker than the prior's)
    counted = ndimage.binary_dilation(both) | (
        ndimage.distance_transform_edt(~both, sampling=spacing) <= BAND_MM
    )
    if carried.any():
        reach = ndimage.distance_transform_edt(~carried, sampling=spacing / current_spacing)
        counted |= reach <= CURRENT_REACH_VOXELS
    region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    hu_prior = prior.array[region].astype(np.float32)
    difference = (hu_current[counted] - current_bg) - (hu_prior[counted] - prior_bg)
    change = float(difference.sum(dtype=np.float64) / contrast * np.prod(spacing))
    prior_mm3 = float(current_mm3) - change
    if prior_mm3 <= 0:
        raise ValueError("the change measured together leaves the prior no volume")
    return PairedVolumes(prior_mm3, float(current_mm3), change, float(contrast))


def _box(prior, prior_mask, current, current_mask, matrix, spacing, current_spacing):
    """(lo, hi) voxel bounds (z, y, x) in the prior of both masks and the band round them; None when
    the box leaves the prior study."""
    corners = (
        np.array([[z, y, x] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=np.float64)
        * np.array(current_mask.mask.shape)
        + np.array(current_mask.origin_zyx)
        - 0.5
    )
    current_mm = current.voxel_to_mm(corners[:, ::-1])
    in_prior = prior.mm_to_voxel(current_mm @ matrix[:3, :3].T + matrix[:3, 3])[:, ::-1]
    lo = np.minimum(np.floor(in_prior.min(axis=0)), prior_mask.origin_zyx)
    hi = np.maximum(np.ceil(in_prior.max(axis=0)) + 1, np.add(prior_mask.origin_zyx, prior_mask.mask.shape))
    pad = np.ceil((BAND_MM + 1.0 + current_spacing.max()) / spacing) + 1
    lo, hi = (lo - pad).astype(int), (hi + pad).astype(int)
    if np.any(lo < 0) or np.any(hi > prior.shape):
        return None
    return lo, hi
