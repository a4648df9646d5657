"""The phantom's second rendering for repeatability (segmentation benchmark): the same study with
other noise and the nodules moved by a sub-voxel shift, its truth masks moved with them."""

import numpy as np
import pytest
from scipy import ndimage

from core.phantom.nodules import render_nodule, resample_mask
from core.phantom.study import PhantomOptions, build_phantom, truth_masks
from tests.nodule_factory import ellipsoid_nodule

SMALL = PhantomOptions(seed=5, split="train", nodules=1, size=160, pixel_spacing=1.0, slice_thickness=2.5)


def _centroid(occupancy):
    grid = np.indices(occupancy.shape).reshape(3, -1)
    return (grid * occupancy.ravel()).sum(axis=1) / occupancy.sum()


def test_a_sub_voxel_shift_moves_the_resampled_nodule_and_keeps_its_volume():
    nodule = ellipsoid_nodule(radii_mm=(6, 5, 4), spacing=(0.6, 0.6, 1.25))
    plain = resample_mask(nodule, (1.0, 1.0, 2.5))
    moved = resample_mask(nodule, (1.0, 1.0, 2.5), (0.4, 0.0, -0.3))
    assert np.allclose(_centroid(moved.occupancy) - _centroid(plain.occupancy), (0.4, 0.0, -0.3), atol=0.05)
    assert moved.occupancy.sum() == pytest.approx(plain.occupancy.sum(), rel=0.02)


def test_a_second_rendering_differs_in_noise_and_shift_only():
    nodules = [ellipsoid_nodule("LIDC-IDRI-0003/scan-1/nodule-1", radii_mm=(5, 4, 4))]
    first, placed = build_phantom(SMALL, nodules)
    again, _ = build_phantom(SMALL, nodules, noise_seed=0)
    second, placed2 = build_phantom(SMALL, nodules, noise_seed=1, shift_zyx=(0.5, -0.25, 0.25))
    assert not np.array_equal(again.array, first.array)  # other noise
    assert placed2[0].centre_zyx == placed[0].centre_zyx and placed2[0].shift_zyx == (0.5, -0.25, 0.25)
    noise = (again.array.astype(float) - first.array).std()
    assert (second.array.astype(float) - again.array).std() > noise  # the nodule moved, too
    a, b = truth_masks(first, placed)["n1"], truth_masks(second, placed2)["n1"]
    assert not np.array_equal(a.in_volume(first.shape), b.in_volume(first.shape))


@pytest.mark.parametrize("shift", [(0.6, 0, 0), (0, 0, float("nan")), (0.1, 0.1)])
def test_a_shift_beyond_half_a_voxel_is_refused(shift):
    with pytest.raises(ValueError, match="shift"):
        build_phantom(SMALL, [ellipsoid_nodule()], shift_zyx=shift)


def test_a_negative_noise_seed_is_refused():
    with pytest.raises(ValueError, match="noise seed"):
        build_phantom(SMALL, [ellipsoid_nodule()], noise_seed=-1)


def _render(nodule, shift):
    volume = np.full((40, 60, 60), -850.0, dtype=np.float32)
    render_nodule(volume, nodule, (20, 30, 30), (0.7, 0.7, 2.5), seed=3, shift_zyx=shift)
    return volume + 850.0  # what the nodule added to the lung


@pytest.mark.parametrize(
    "ratings",
    [
        {"spiculation": 5.0, "texture": 3.0},  # spicules, a solid core inside ground glass
        {"calcification": 1.0, "texture": 5.0},  # popcorn calcium clumps placed at random
    ],
)
def test_a_shifted_rendering_draws_the_same_nodule_so_the_truth_is_repeatable(ratings):
    """Issue 17, repeatability: the second rendering moved the spicules, the solid core and the
    calcium (redrawn from the shifted outline), so even the truth's volume was not repeatable."""
    nodule = ellipsoid_nodule("LIDC-IDRI-0007/scan-1/nodule-2", radii_mm=(5, 4, 4), **ratings)
    shift = (0.0, -0.4, 0.35)  # in-plane, where resampling the plain rendering is close to exact
    plain, moved = _render(nodule, (0.0, 0.0, 0.0)), _render(nodule, shift)
    # the truth's partial-volume volume (the occupancy sum) and what the nodule adds to the lung
    a, b = (resample_mask(nodule, (0.7, 0.7, 2.5), s).occupancy.sum() for s in ((0, 0, 0), shift))
    assert b == pytest.approx(a, rel=0.02)
    assert moved.sum() == pytest.approx(plain.sum(), rel=0.03)
    assert resample_mask(nodule, (0.7, 0.7, 2.5), (0.45, 0, 0)).occupancy.sum() == pytest.approx(a, rel=0.02)
    # the same nodule, moved: the moved rendering agrees with the plain one shifted by as much
    back = ndimage.shift(plain, shift, order=1, mode="nearest")
    assert np.abs(moved - back).sum() < 0.05 * np.abs(plain).sum()  # 25-30 % when redrawn
