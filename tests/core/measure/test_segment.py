"""The classical method (segment_nodule_classical) on small synthetic chests: a sphere in lung, on
the wall, on a vessel, ground glass, thick slices, a noisy series, and markers that hit no nodule."""

import numpy as np
import pytest

from core.measure.evaluate import agreement
from core.measure.mask import NoduleMask
from core.measure.segment import SegmentationError, partial_volume_mm3, segment_nodule_classical
from core.volume import CTVolume

LUNG, TISSUE, GROUND_GLASS = -850.0, 30.0, -600.0
SHAPE_MM = (40.0, 48.0, 48.0)  # z, y, x


def _grid(spacing_zyx, sub=3):
    """Supersampled voxel-centre coordinates (mm), shape (3, z, y, x, sub**3)."""
    shape = tuple(round(e / s) for e, s in zip(SHAPE_MM, spacing_zyx, strict=True))
    frac = (np.arange(sub) + 0.5) / sub - 0.5
    axes = [((np.arange(n)[:, None] + frac[None, :]) * s) for n, s in zip(shape, spacing_zyx, strict=True)]
    z, y, x = np.meshgrid(*[a.ravel() for a in axes], indexing="ij")
    return shape, sub, (z, y, x)


def _occupancy(inside, shape, sub):
    """Average the supersampled bool field back onto the voxel grid (partial volume)."""
    return inside.reshape(shape[0], sub, shape[1], sub, shape[2], sub).mean(axis=(1, 3, 5))


def _chest(
    spacing_zyx=(1.0, 0.8, 0.8), nodule_hu=TISSUE, radius=4.0, wall=False, vessel=False, noise=15.0, seed=0
):
    """A lung block with a sphere at its middle; optionally a chest wall touching it (+x side) or a
    vessel cylinder along z touching it (-x side). Returns the volume, the centre (LPS) and the truth."""
    shape, sub, (z, y, x) = _grid(spacing_zyx)
    middle = np.array(SHAPE_MM) / 2
    sphere = _occupancy(
        (z - middle[0]) ** 2 + (y - middle[1]) ** 2 + (x - middle[2]) ** 2 <= radius**2, shape, sub
    )
    hu = np.full(shape, LUNG, dtype=np.float64)
    if wall:
        hu += _occupancy(x >= middle[2] + radius, shape, sub) * (TISSUE + 10 - LUNG)
    if vessel:
        axis = (middle[1], middle[2] - radius - 1.5)
        tube = _occupancy((y - axis[0]) ** 2 + (x - axis[1]) ** 2 <= 1.5**2, shape, sub)
        hu += tube * (TISSUE + 10 - hu)
    hu += sphere * (nodule_hu - hu)
    hu += np.random.default_rng(seed).normal(0.0, noise, shape)
    affine = np.diag([spacing_zyx[2], spacing_zyx[1], spacing_zyx[0], 1.0])
    volume = CTVolume(np.rint(hu).astype(np.int16), affine)
    centre_mm = volume.voxel_to_mm((middle / np.array(spacing_zyx) - 0.5)[::-1])
    return volume, centre_mm, NoduleMask((0, 0, 0), sphere >= 0.5, "truth")


def _check(volume, centre, truth, tolerance=0.2, diameter=8.0):
    mask = segment_nodule_classical(volume, centre, diameter)
    result = agreement(truth, mask)
    assert abs(result.volume_error) <= tolerance, result
    assert result.dice >= 0.85, result
    return mask


def test_an_isolated_solid_sphere_is_segmented_to_its_volume():
    volume, centre, truth = _chest()
    mask = _check(volume, centre, truth, tolerance=0.1)
    assert mask.method.startswith("classical/") and mask.warnings == ()
    assert mask.centre_mm == tuple(float(v) for v in centre) and mask.diameter_mm == 8.0


def test_a_sphere_on_the_chest_wall_does_not_leak_into_the_wall():
    _check(*_chest(wall=True))


def test_a_sphere_touching_a_thicker_vessel_does_not_leak_along_it():
    _check(*_chest(vessel=True))


def test_a_ground_glass_sphere_is_segmented_at_its_own_contrast():
    _check(*_chest(nodule_hu=GROUND_GLASS))


def test_a_marker_a_little_off_centre_or_too_large_still_finds_the_nodule():
    volume, centre, truth = _chest(wall=True)
    mask = segment_nodule_classical(volume, np.add(centre, [1.5, -1.0, 0.5]), 12.0)
    assert agreement(truth, mask).dice >= 0.85


def test_thick_slices_are_segmented_with_a_warning():
    volume, centre, truth = _chest(spacing_zyx=(3.0, 0.8, 0.8), radius=5.0)
    mask = _check(volume, centre, truth, diameter=10.0)
    assert any("less reliable" in w and "3 mm" in w for w in mask.warnings)


def test_a_noisy_series_sharp_kernel_or_low_dose_still_segments():
    _check(*_chest(noise=70.0, seed=3))


@pytest.mark.parametrize(
    "where, fill, reason",
    [
        ("lung", None, "no nodule at the marker"),
        ("outside", None, "outside the volume"),
        ("wall", TISSUE, "not in the lungs"),
        ("air", -1000.0, "not in the lungs"),
    ],
)
def test_a_marker_on_no_nodule_gets_a_per_marker_reason(where, fill, reason):
    volume, centre, _ = _chest()
    if fill is not None:  # the whole neighbourhood is chest wall or air outside the body
        volume = CTVolume(np.full(volume.shape, fill, dtype=np.int16), volume.affine)
    if where == "lung":
        centre = np.add(centre, [0.0, 12.0, 0.0])
    if where == "outside":
        centre = np.add(centre, [0.0, 0.0, 100.0])
    with pytest.raises(SegmentationError, match=reason) as caught:
        segment_nodule_classical(volume, centre, 8.0)
    assert "mm" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("diameter", [0.0, -3.0, float("nan")])
def test_a_marker_without_a_valid_diameter_is_refused(diameter):
    volume, centre, _ = _chest()
    with pytest.raises(SegmentationError, match="diameter"):
        segment_nodule_classical(volume, centre, diameter)


def _shifted_sphere(shift_z):
    """A 4 mm-radius sphere on 3 mm slices, its centre moved ``shift_z`` of a slice."""
    spacing = (3.0, 0.8, 0.8)
    shape, sub, (z, y, x) = _grid(spacing, sub=5)
    middle = np.array(SHAPE_MM) / 2 + [shift_z * spacing[0], 0.0, 0.0]
    inside = (z - middle[0]) ** 2 + (y - middle[1]) ** 2 + (x - middle[2]) ** 2 <= 4.0**2
    hu = LUNG + _occupancy(inside, shape, sub) * (TISSUE - LUNG)
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    volume = CTVolume(np.rint(hu).astype(np.int16), affine)
    return volume, volume.voxel_to_mm((middle / np.array(spacing) - 0.5)[::-1])


def test_partial_volume_counts_edge_voxels_by_share_so_a_sub_voxel_shift_barely_moves_it():
    true_mm3 = 4 / 3 * np.pi * 4.0**3
    counts, partial = [], []
    for shift in (0.0, 0.5):
        volume, centre = _shifted_sphere(shift)
        mask = segment_nodule_classical(volume, centre, 8.0)
        counts.append(mask.voxels * np.prod(volume.spacing))
        partial.append(partial_volume_mm3(volume, mask))
    assert partial == pytest.approx([true_mm3] * 2, rel=0.08)
    assert abs(partial[0] - partial[1]) < 0.5 * abs(counts[0] - counts[1])


def test_partial_volume_of_an_empty_mask_is_zero():
    volume, _, _ = _chest()
    assert partial_volume_mm3(volume, NoduleMask((0, 0, 0), np.zeros((2, 2, 2), bool), "m")) == 0.0


def test_a_marker_drawn_much_smaller_than_the_nodule_still_gets_the_whole_nodule():
    volume, centre, truth = _chest()
    mask = segment_nodule_classical(volume, centre, 2.0)
    assert agreement(truth, mask).dice >= 0.85 and mask.diameter_mm == 2.0


def test_partial_volume_of_a_small_sharp_edged_nodule_is_its_voxel_count():
    """Shares read from the smoothed image spread a small nodule's tissue into the voxels around it
    and counted it again there (a one-voxel nodule measured four voxels)."""
    hu = np.full((15, 15, 15), -850, dtype=np.int16)
    inside = np.zeros(hu.shape, dtype=bool)
    inside[7, 7, 7] = True
    hu[inside] = 40
    for spacing in ((0.7, 0.7, 1.25), (0.6, 0.6, 2.5)):
        volume = CTVolume(hu, np.diag([*spacing, 1.0]))
        partial = partial_volume_mm3(volume, NoduleMask((0, 0, 0), inside, "m").cropped())
        assert partial == pytest.approx(np.prod(spacing), rel=0.05)


def test_partial_volume_leaves_out_the_dense_tissue_the_mask_ends_on():
    """A nodule on the chest wall: the wall voxels beside the mask are tissue too, but the mask was
    cut there on purpose; counting them by their share added a layer of wall to its volume."""
    hu = np.full((15, 15, 20), -850, dtype=np.int16)
    hu[:, :, :8] = 40  # the chest wall
    inside = np.zeros(hu.shape, dtype=bool)
    inside[5:10, 5:10, 8:12] = True  # a nodule on it
    hu[inside] = 40
    volume = CTVolume(hu, np.diag([0.7, 0.7, 1.25, 1.0]))
    partial = partial_volume_mm3(volume, NoduleMask((0, 0, 0), inside, "m"))
    assert partial == pytest.approx(inside.sum() * 0.7 * 0.7 * 1.25, rel=0.02)
