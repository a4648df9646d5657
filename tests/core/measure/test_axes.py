"""measure_nodule on analytic shapes: the Lung-RADS axes on the right plane, volume, solid part,
calcification and pleural contact, each against the value the shape was drawn with."""

import numpy as np
import pytest

from core.measure.axes import measure_nodule
from core.measure.mask import NoduleMask
from core.volume import CTVolume

LUNG_HU, SOLID_HU, GROUND_GLASS_HU = -850, 40, -600


def _volume(hu: np.ndarray, spacing_xyz) -> CTVolume:
    affine = np.diag([*spacing_xyz, 1.0])
    affine[:3, 3] = (-100.0, -80.0, 20.0)  # an origin that is not zero, so mm and voxels differ
    return CTVolume(np.rint(hu).astype(np.int16), affine)


def _grid_mm(shape, spacing_xyz, centre_zyx):
    z, y, x = np.indices(shape, dtype=np.float64)
    sx, sy, sz = spacing_xyz
    return (x - centre_zyx[2]) * sx, (y - centre_zyx[1]) * sy, (z - centre_zyx[0]) * sz


def _ellipsoid(shape, spacing_xyz, semi_xyz, centre_zyx=None):
    centre_zyx = centre_zyx or tuple(n // 2 for n in shape)
    x, y, z = _grid_mm(shape, spacing_xyz, centre_zyx)
    a, b, c = semi_xyz
    return (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1.0


def _measure(hu, inside, spacing_xyz, method="test"):
    return measure_nodule(_volume(hu, spacing_xyz), NoduleMask((0, 0, 0), inside, method).cropped())


def _solid(inside):
    return np.where(inside, SOLID_HU, LUNG_HU)


@pytest.mark.parametrize(
    ("semi_xyz", "plane", "long_mm", "short_mm"),
    [
        ((12.0, 8.0, 4.0), "axial", 24.0, 16.0),  # longest along x, next along y: axial (wins the tie)
        ((7.0, 4.0, 11.0), "coronal", 22.0, 14.0),  # longest along z, next along x: coronal (z-x)
        ((4.0, 7.0, 11.0), "sagittal", 22.0, 14.0),  # longest along z, next along y: sagittal (z-y)
    ],
)
def test_the_long_axis_is_measured_on_the_plane_where_it_is_greatest(semi_xyz, plane, long_mm, short_mm):
    spacing = (0.7, 0.7, 0.7)
    shape = (41, 41, 41)
    inside = _ellipsoid(shape, spacing, semi_xyz)
    m = _measure(_solid(inside), inside, spacing)
    assert m.plane == plane
    assert m.slice_index == 20  # through the centre
    assert m.long_axis_mm == pytest.approx(long_mm, abs=0.7)
    assert m.short_axis_mm == pytest.approx(short_mm, abs=0.7)
    assert m.mean_diameter_mm == pytest.approx((long_mm + short_mm) / 2, abs=0.7)
    assert m.mean_diameter_mm == round(m.mean_diameter_mm, 1)
    ends = np.array(m.long_axis_ends_mm)
    assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(m.long_axis_mm)
    across = np.array(m.short_axis_ends_mm)
    assert np.linalg.norm(across[1] - across[0]) == pytest.approx(m.short_axis_mm)
    assert abs(np.dot(ends[1] - ends[0], across[1] - across[0])) < 1e-6 * m.long_axis_mm * m.short_axis_mm


def test_anisotropic_voxels_measure_in_mm_between_voxel_edges():
    spacing = (0.6, 0.8, 2.5)
    shape = (21, 61, 61)
    semi = (8.9, 6.0, 13.0)  # longest along z (2.5 mm slices), next along x: coronal
    inside = _ellipsoid(shape, spacing, semi)
    m = _measure(_solid(inside), inside, spacing)
    assert m.plane == "coronal"
    assert m.long_axis_mm == pytest.approx(26.0, abs=2.5)
    assert m.short_axis_mm == pytest.approx(17.8, abs=0.6)
    expected = 4 / 3 * np.pi * np.prod(semi)
    assert m.volume_mm3 == pytest.approx(inside.sum() * 0.6 * 0.8 * 2.5)
    assert m.volume_mm3 == pytest.approx(expected, rel=0.05)
    assert m.effective_diameter_mm == pytest.approx(2 * np.prod(semi) ** (1 / 3), rel=0.02)


def test_a_single_voxel_is_one_voxel_wide():
    spacing = (0.7, 0.7, 1.25)
    inside = np.zeros((5, 5, 5), dtype=bool)
    inside[2, 2, 2] = True
    m = _measure(_solid(inside), inside, spacing)
    assert m.plane == "coronal"  # the voxel is longest (1.25 mm) along z
    assert (m.long_axis_mm, m.short_axis_mm) == (pytest.approx(1.25), pytest.approx(0.7))
    assert m.mean_diameter_mm == 1.0  # 0.975 rounded half up to 0.1 mm
    assert m.volume_mm3 == pytest.approx(0.7 * 0.7 * 1.25)


def test_a_row_of_voxels_is_measured_edge_to_edge_not_centre_to_centre():
    inside = np.zeros((3, 3, 12), dtype=bool)
    inside[1, 1, 1:11] = True  # 10 voxels of 0.5 mm along x: 5.0 mm, not 4.5
    m = _measure(_solid(inside), inside, (0.5, 0.5, 0.5))
    assert m.long_axis_mm == pytest.approx(5.0)
    assert m.short_axis_mm == pytest.approx(0.5)


def _noise(shape, sigma=20.0, seed=0):
    return np.random.default_rng(seed).normal(0.0, sigma, shape)


def test_a_part_solid_sphere_gives_its_solid_core_diameter():
    spacing = (0.7, 0.7, 0.7)
    shape = (41, 41, 41)
    whole = _ellipsoid(shape, spacing, (10.0, 10.0, 10.0))
    core = _ellipsoid(shape, spacing, (4.0, 4.0, 4.0))
    hu = np.where(core, SOLID_HU, np.where(whole, GROUND_GLASS_HU, LUNG_HU)) + _noise(shape)
    m = _measure(hu, whole, spacing)
    assert m.texture == "part-solid"
    assert m.solid_diameter_mm == pytest.approx(8.0, abs=0.7)
    assert m.solid_volume_mm3 == pytest.approx(core.sum() * 0.7**3, rel=0.15)
    assert m.mean_diameter_mm == pytest.approx(20.0, abs=0.7)


def test_ground_glass_with_noise_has_no_solid_part_and_a_solid_nodule_is_solid():
    spacing = (0.7, 0.7, 1.25)
    shape = (25, 41, 41)
    inside = _ellipsoid(shape, spacing, (8.0, 8.0, 8.0))
    glass = _measure(np.where(inside, GROUND_GLASS_HU, LUNG_HU) + _noise(shape, 40.0), inside, spacing)
    assert glass.texture == "ground glass" and glass.solid_diameter_mm is None
    # a solid nodule whose rim reads as ground glass (partial volume) is still solid
    rim = inside & ~_ellipsoid(shape, spacing, (7.3, 7.3, 7.0))
    hu = np.where(rim, -450, np.where(inside, SOLID_HU, LUNG_HU)) + _noise(shape, 40.0)
    solid = _measure(hu, inside, spacing)
    assert solid.texture == "solid" and solid.solid_diameter_mm is None


def test_calcification_fraction_and_hu():
    spacing = (0.7, 0.7, 0.7)
    shape = (31, 31, 31)
    whole = _ellipsoid(shape, spacing, (8.0, 8.0, 8.0))
    calcium = _ellipsoid(shape, spacing, (4.0, 4.0, 4.0))
    hu = np.where(calcium, 600, np.where(whole, SOLID_HU, LUNG_HU))
    m = _measure(hu, whole, spacing)
    assert m.calcification_fraction == pytest.approx(calcium.sum() / whole.sum())
    assert m.max_hu == 600
    soft = (whole & ~calcium).sum()
    assert m.mean_hu == pytest.approx((600 * calcium.sum() + SOLID_HU * soft) / whole.sum())
    plain = _measure(_solid(whole), whole, spacing)
    assert plain.calcification_fraction == 0.0


def _chest(shape, spacing, gap_mm, vessel=False):
    """Lung on the right of a chest wall (x < 15 mm) and a 10 mm nodule ``gap_mm`` off the wall."""
    x, y, z = _grid_mm(shape, spacing, (0, 0, 0))
    hu = np.full(shape, float(LUNG_HU))
    hu[x < 15.0] = SOLID_HU
    centre = 15.0 + 5.0 + gap_mm
    cy, cz = shape[1] * spacing[1] / 2, shape[0] * spacing[2] / 2
    nodule = (x - centre) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= 25.0
    if vessel:  # a 3 mm vessel along y that the nodule's far side touches
        hu[(x - centre - 6.5) ** 2 + (z - cz) ** 2 <= 1.5**2] = SOLID_HU
    hu[nodule] = SOLID_HU
    return hu + _noise(shape), nodule


@pytest.mark.parametrize(
    ("gap_mm", "vessel", "touches"), [(0.0, False, True), (4.0, False, False), (4.0, True, False)]
)
def test_a_nodule_on_the_chest_wall_touches_the_pleura_and_a_free_one_does_not(gap_mm, vessel, touches):
    spacing = (0.7, 0.7, 1.25)
    shape = (24, 50, 60)
    hu, nodule = _chest(shape, spacing, gap_mm, vessel)
    m = _measure(hu, nodule, spacing)
    assert m.touches_pleura is touches


def test_a_mask_outside_the_volume_is_refused_and_one_past_its_edge_warned():
    spacing = (1.0, 1.0, 1.0)
    hu = np.full((10, 10, 10), LUNG_HU)
    volume = _volume(hu, spacing)
    with pytest.raises(ValueError, match="no voxel inside the volume"):
        measure_nodule(volume, NoduleMask((20, 0, 0), np.ones((2, 2, 2), bool), "t"))
    with pytest.raises(ValueError, match="no voxel inside the volume"):
        measure_nodule(volume, NoduleMask((0, 0, 0), np.zeros((2, 2, 2), bool), "t"))
    m = measure_nodule(volume, NoduleMask((8, 8, 8), np.ones((4, 4, 4), bool), "classical/x", edited=True))
    assert m.volume_mm3 == 8.0
    assert any("past the volume's edge" in w for w in m.warnings)
    assert m.method == "classical/x" and m.edited


def test_a_thin_solid_nodule_is_not_darkened_by_the_lung_around_it():
    spacing = (0.7, 0.7, 0.7)
    shape = (21, 21, 21)
    z, y, x = np.indices(shape)
    # a thin plate on the diagonal of the axial image (two voxels across): partial volume leaves it at
    # about -100 HU, and its box holds lung on either side
    inside = (z >= 4) & (z < 17) & (y >= 4) & (y < 17) & (x - y >= 0) & (x - y <= 1)
    m = _measure(np.where(inside, -100, LUNG_HU) + _noise(shape), inside, spacing)
    assert m.texture == "solid"
    assert m.solid_volume_mm3 == pytest.approx(m.volume_mm3, rel=0.05)  # volume: partial volume


def test_planes_are_anatomical_in_a_series_acquired_coronally():
    """Array z runs posterior, y inferior, x left: the array's own "axial" images are coronal ones."""
    spacing = (0.7, 0.7, 0.7)
    shape = (41, 41, 41)
    affine = np.zeros((4, 4))
    affine[0, 0], affine[2, 1], affine[1, 2], affine[3, 3] = 0.7, -0.7, 0.7, 1.0  # x->L, y->I, z->P
    # longest along patient S-I (array y), next along L (array x): the coronal image (array z normal)
    inside = _ellipsoid(shape, spacing, (8.0, 12.0, 4.0))
    volume = CTVolume(np.where(inside, SOLID_HU, LUNG_HU).astype(np.int16), affine)
    m = measure_nodule(volume, NoduleMask((0, 0, 0), inside, "t").cropped())
    assert m.plane == "coronal" and m.slice_index == 20
    assert m.long_axis_mm == pytest.approx(24.0, abs=0.7) and m.short_axis_mm == pytest.approx(16.0, abs=0.7)
    ends = np.array(m.long_axis_ends_mm)
    assert abs(ends[1, 2] - ends[0, 2]) > 0.95 * m.long_axis_mm  # along patient z (S-I)


def test_the_volume_is_partial_volume_corrected_so_a_half_slice_shift_barely_moves_it():
    """Issue 17 (QIBA repeatability): the voxel count moved by a layer of 3 mm slices when the
    nodule moved half a slice; the edge voxels counted by their share of tissue do not."""
    from core.measure.segment import segment_nodule
    from tests.core.measure.test_segment import _shifted_sphere

    true_mm3 = 4 / 3 * np.pi * 4.0**3
    volumes, counts = [], []
    for shift in (0.0, 0.5):
        volume, centre = _shifted_sphere(shift)
        mask = segment_nodule(volume, centre, 8.0)
        volumes.append(measure_nodule(volume, mask).volume_mm3)
        counts.append(mask.voxels * float(np.prod(volume.spacing)))
    assert volumes == pytest.approx([true_mm3] * 2, rel=0.08)
    assert abs(volumes[0] - volumes[1]) < 0.5 * abs(counts[0] - counts[1])
