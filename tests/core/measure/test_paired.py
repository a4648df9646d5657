"""core.measure.paired: one nodule's volumes at two scans measured together (one region, one tissue
contrast, the current carried into the prior's grid): the same nodule scanned twice measures the same,
a grown one its growth, and what cannot be measured together is a ValueError with the reason."""

import math

import numpy as np
import pytest
from scipy import ndimage

from core.measure.mask import NoduleMask
from core.measure.paired import paired_volumes
from core.measure.segment import partial_volume_mm3
from core.volume import CTVolume

LUNG, TISSUE = -850.0, 30.0
SIZE_MM = 32.0
THICK = (2.5, 0.7, 0.7)  # z, y, x spacing (mm)


def _scan(
    radii_mm,
    spacing=THICK,
    shift=(0.0, 0.0, 0.0),
    seed=0,
    offset_hu=0.0,
    origin_mm=(0.0, 0.0, 0.0),
    tube_mm=None,
):
    """(volume, mask): an ellipsoid nodule of ``radii_mm`` (z, y, x) supersampled onto the grid, moved
    by ``shift`` voxels, its edge blurred, a 3 mm vessel along z touching it (its axis ``tube_mm`` from
    the centre if given, else just beyond the nodule's x radius), 20 HU of noise; the
    grid's corner at ``origin_mm`` (x, y, z); the mask is its noiseless occupancy cut at a half."""
    shape = tuple(round(SIZE_MM / s) for s in spacing)
    sub = 5
    frac = (np.arange(sub) + 0.5) / sub - 0.5
    centre = SIZE_MM / 2 + np.array(shift) * spacing
    axes = [
        ((np.arange(n)[:, None] + frac) * s).ravel() - c
        for n, s, c in zip(shape, spacing, centre, strict=True)
    ]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    fine = (z / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2 + (x / radii_mm[2]) ** 2 <= 1.0
    occupancy = fine.reshape(shape[0], sub, shape[1], sub, shape[2], sub).mean(axis=(1, 3, 5))
    occupancy = ndimage.gaussian_filter(occupancy, [0.5 / s for s in spacing])
    hu = LUNG + occupancy * (TISSUE - LUNG)
    yy, xx = (np.indices(shape[1:]) * np.array(spacing[1:])[:, None, None]) - SIZE_MM / 2
    axis = radii_mm[2] + 1.5 if tube_mm is None else tube_mm  # the vessel does not move with a shift
    tube = ((yy**2 + (xx - axis) ** 2) <= 1.5**2).astype(float)
    hu += np.broadcast_to(tube, shape) * (TISSUE + 10 - hu)
    hu += np.random.default_rng(seed).normal(0.0, 20.0, shape) + offset_hu
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    affine[:3, 3] = origin_mm
    volume = CTVolume(np.rint(hu).astype(np.int16), affine)
    return volume, NoduleMask((0, 0, 0), occupancy >= 0.5, "m").cropped()


def _rendered_mm3(radii_mm) -> float:
    return 4 / 3 * math.pi * float(np.prod(radii_mm))


def _together(prior, current, matrix=None):
    (pv, pm), (cv, cm) = prior, current
    own = partial_volume_mm3(cv, cm)
    return paired_volumes(pv, pm, cv, cm, np.eye(4) if matrix is None else matrix, own)


FLAT = (1.6, 4.0, 3.5)  # a flat nodule on 2.5 mm slices: two slices, all partial volume


def test_the_same_nodule_scanned_twice_measures_the_same_together():
    """Issue 17 (repeatability): the same flat nodule against a vessel, other noise and a sub-voxel
    shift: each scan's own volume follows its own tissue level and mask; together they agree."""
    prior, current = _scan(FLAT), _scan(FLAT, shift=(0.45, 0.3, -0.35), seed=1)
    own = partial_volume_mm3(*prior), partial_volume_mm3(*current)
    assert abs(own[0] - own[1]) > 0.10 * min(own)  # each on its own: 87 and 98 mm3
    together = _together(prior, current)
    assert together.current_mm3 == pytest.approx(own[1])
    assert abs(together.change_mm3) <= 0.03 * together.current_mm3
    assert together.prior_mm3 == pytest.approx(together.current_mm3, rel=0.03)


def test_a_grown_nodule_measures_its_growth():
    small, large = (2.5, 4.0, 4.0), (3.2, 5.0, 5.0)
    together = _together(
        _scan(small, tube_mm=6.5), _scan(large, shift=(0.3, -0.2, 0.25), seed=1, tube_mm=6.5)
    )
    truth = _rendered_mm3(large) - _rendered_mm3(small)
    assert together.change_mm3 == pytest.approx(truth, rel=0.10)


def test_a_calibration_offset_between_the_scanners_cancels():
    plain = _together(_scan(FLAT), _scan(FLAT, seed=1))
    offset = _together(_scan(FLAT), _scan(FLAT, seed=1, offset_hu=40.0))
    assert offset.change_mm3 == pytest.approx(plain.change_mm3, abs=0.02 * plain.current_mm3)


def test_the_current_on_its_own_grid_is_carried_through_the_registration():
    """The current scanned at another table position: the registration (current mm -> prior mm)
    carries it; the same change as on the one grid."""
    moved = np.array([12.6, -7.35, 25.0])  # whole voxels in x, y and z: the same voxels, moved
    current = _scan(FLAT, seed=1, origin_mm=moved)
    matrix = np.eye(4)
    matrix[:3, 3] = -moved
    same_grid = _together(_scan(FLAT), _scan(FLAT, seed=1))
    assert _together(_scan(FLAT), current, matrix).change_mm3 == pytest.approx(same_grid.change_mm3, abs=0.5)


def test_what_cannot_be_measured_together_is_a_value_error_saying_why():
    prior, current = _scan(FLAT), _scan(FLAT, seed=1)
    (pv, pm), (cv, cm) = prior, current
    with pytest.raises(ValueError, match="registration"):
        paired_volumes(pv, pm, cv, cm, np.full((4, 4), np.nan), 50.0)
    with pytest.raises(ValueError, match="own volume"):
        paired_volumes(pv, pm, cv, cm, np.eye(4), 0.0)
    far = np.eye(4)
    far[:3, 3] = (0.0, 0.0, -14.0)  # the current's nodule carried to the prior's last slices
    with pytest.raises(ValueError, match="outside the prior study"):
        paired_volumes(pv, pm, cv, cm, far, 50.0)
    z0, depth = cm.origin_zyx[0], cm.mask.shape[0]  # a current holding the nodule's slices only
    affine = cv.affine.copy()
    affine[2, 3] += z0 * THICK[0]
    short = CTVolume(cv.array[z0 : z0 + depth].copy(), affine)
    cut = NoduleMask((0, *cm.origin_zyx[1:]), cm.mask, "m")
    with pytest.raises(ValueError, match="outside the current study"):
        paired_volumes(pv, pm, short, cut, np.eye(4), 50.0)
    flat = CTVolume(np.full(pv.shape, int(LUNG), dtype=np.int16), pv.affine)
    with pytest.raises(ValueError, match="no tissue contrast"):
        paired_volumes(flat, pm, flat, cm, np.eye(4), 50.0)


def test_a_thick_prior_against_a_thin_current_measures_the_same_nodule_the_same():
    """Reviewer's case: 2.5 mm prior slices against a 1.0 mm current; the current read at one depth
    per prior slice measured a stable nodule 4-6 % larger, sampled across each prior slice it agrees."""
    nodule = (2.2, 3.0, 3.0)  # one depth per prior slice: +4.7 %
    together = _together(
        _scan(nodule), _scan(nodule, spacing=(1.0, 0.7, 0.7), shift=(0.3, 0.2, -0.1), seed=1)
    )
    assert abs(together.change_mm3) <= 0.03 * together.current_mm3
