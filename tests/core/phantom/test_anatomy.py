"""Phantom chest anatomy: determinism, validation, tissue values, lungs, vessels, nodule sites, noise."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from core.phantom.anatomy import Chest, ChestConfig, add_noise, build_chest

SMALL = ChestConfig(rows=128, columns=128, slices=40, pixel_spacing=1.0, slice_spacing=2.5, seed=3)
# The brief's coarse example: a 256 mm field of view at 2.5 mm slices must still be a whole chest.
COARSE = ChestConfig(rows=256, columns=256, slices=120, pixel_spacing=1.0, slice_spacing=2.5, seed=1)


@pytest.fixture(scope="module")
def small() -> Chest:
    return build_chest(SMALL)


@pytest.fixture(scope="module")
def coarse() -> Chest:
    return build_chest(COARSE)


def components(mask: np.ndarray, full: bool = False) -> np.ndarray:
    """Sizes of the connected components of ``mask``, largest first."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(image, full))
    return np.sort(np.bincount(labels.ravel())[1:])[::-1]


def ball_offsets(radius_mm: float, spacing_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel offsets (n, 3) within ``radius_mm`` of a centre and their distances (mm)."""
    half = np.ceil(radius_mm / spacing_zyx).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1).reshape(-1, 3)
    dist = np.linalg.norm(grid * spacing_zyx, axis=1)
    keep = dist <= radius_mm
    return grid[keep], dist[keep]


def values_near(mask: np.ndarray, centre, radius_mm: float, spacing_zyx) -> np.ndarray:
    offsets, _ = ball_offsets(radius_mm, spacing_zyx)
    idx = np.asarray(centre) + offsets
    inside = np.all((idx >= 0) & (idx < mask.shape), axis=1)
    values = np.zeros(len(idx), dtype=bool)
    values[inside] = mask[tuple(idx[inside].T)]
    return values


def test_same_seed_gives_identical_voxels_and_another_seed_does_not(small):
    again = build_chest(SMALL)
    assert np.array_equal(small.hu, again.hu)
    assert np.array_equal(small.lung_mask, again.lung_mask)
    assert np.array_equal(small.vessel_mask, again.vessel_mask)
    other = build_chest(ChestConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not np.array_equal(small.hu, other.hu)


def test_outputs_have_the_documented_types_and_shapes(small):
    assert small.hu.dtype == np.int16 and small.hu.shape == (40, 128, 128)
    assert small.lung_mask.dtype == bool and small.vessel_mask.dtype == bool
    assert small.spacing == (1.0, 1.0, 2.5)
    assert "Chest(shape=(40, 128, 128)" in repr(small)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pixel_spacing": 0.3}, "pixel_spacing"),
        ({"pixel_spacing": 1.2}, "pixel_spacing"),
        ({"slice_spacing": 0.5}, "slice_spacing"),
        ({"slice_spacing": 5.0}, "slice_spacing"),
        ({"slice_thickness": 0.1}, "slice_thickness"),
        ({"rows": 10}, "rows"),
        ({"slices": 2.5}, "slices"),
        ({"noise_sigma": -1.0}, "noise_sigma"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_rejects_values_outside_the_allowed_ranges(change, message):
    with pytest.raises(ValueError, match=message):
        ChestConfig(**change)


def test_thickness_defaults_to_the_slice_spacing():
    assert ChestConfig(slice_spacing=1.25).thickness == 1.25
    assert ChestConfig(slice_spacing=1.25, slice_thickness=2.0).thickness == 2.0


def test_tissues_have_plausible_hounsfield_units(coarse):
    hu = coarse.hu
    assert hu[:, 0, 0].max() == -1000  # air round the patient (the table lies lower)
    parenchyma = coarse.lung_mask & ~coarse.vessel_mask & (hu < -500)
    assert -900 < np.median(hu[parenchyma]) < -780
    posterior = parenchyma.copy()
    posterior[:, : hu.shape[1] // 2] = False
    anterior = parenchyma & ~posterior
    assert np.median(hu[posterior]) > np.median(hu[anterior])  # dependent lung is denser
    soft = hu[(hu > -200) & (hu < 200) & ~coarse.lung_mask]
    assert soft.size > 0.1 * hu.size  # body wall, mediastinum and abdomen
    fat, muscle = np.sum((soft > -130) & (soft < -60)), np.sum((soft > 20) & (soft < 70))
    assert fat > 0.05 * soft.size and muscle > 0.2 * soft.size
    bone = hu > 400
    assert bone.sum() > 0.002 * hu.size and hu.max() > 700  # cortex of spine, ribs and sternum
    assert not np.any(bone & coarse.lung_mask)


def test_bone_sits_at_the_back_of_the_midline_where_the_spine_is(coarse):
    bone = coarse.hu[60] > 400
    rows, cols = np.nonzero(bone)
    spine = np.abs(cols - 127.5) < 12
    assert spine.sum() > 50
    assert rows[spine].mean() > np.nonzero(coarse.lung_mask[60])[0].mean()  # behind the lungs' centre


def test_lungs_are_two_separate_components_of_plausible_volume(coarse):
    sizes = components(coarse.lung_mask)
    assert sizes[:2].sum() > 0.99 * coarse.lung_mask.sum()
    litres = sizes[:2] * np.prod(coarse.spacing) / 1e6
    assert np.all((litres > 0.4) & (litres < 4.0)), litres
    half = coarse.lung_mask.shape[2] // 2
    right, left = coarse.lung_mask[..., :half].sum(), coarse.lung_mask[..., half:].sum()
    assert 1.0 < right / left < 1.4  # columns start at the patient's right; the right lung is larger


def test_lungs_taper_to_apices_above_and_sit_on_the_diaphragm(coarse):
    area = coarse.lung_mask.sum(axis=(1, 2))
    levels = np.nonzero(area)[0]
    widest = int(np.argmax(area))
    assert 0 < levels[0] < widest < levels[-1] < len(area) - 1  # neck above, abdomen below
    assert area[levels[-1] - 2] < 0.35 * area[widest]  # the apex is a narrow dome
    liver = (coarse.hu[levels[0] + 2] > 40) & (coarse.hu[levels[0] + 2] < 80)
    assert liver.sum() > 500  # upper abdomen under the domes


def test_vessels_lie_inside_the_lungs_and_branch_from_the_hila(coarse):
    vessels = coarse.vessel_mask
    assert not np.any(vessels & ~coarse.lung_mask)
    share = vessels.sum() / coarse.lung_mask.sum()
    assert 0.02 < share < 0.15
    assert np.median(coarse.hu[vessels]) > -300
    sizes = components(vessels, full=True)
    assert sizes[:2].sum() > 0.8 * vessels.sum()  # one tree system per lung, not scattered specks
    # Wider and denser round the hila (a third to two thirds of the way out) than near the ribs.
    thick = vessels.copy()  # vessel voxels whose four in-plane neighbours are vessel too
    thick[:, 1:] &= vessels[:, :-1]
    thick[:, :-1] &= vessels[:, 1:]
    thick[:, :, 1:] &= vessels[:, :, :-1]
    thick[:, :, :-1] &= vessels[:, :, 1:]
    cols = np.nonzero(coarse.lung_mask.any(axis=(0, 1)))[0]
    mid, half = (cols.min() + cols.max()) / 2, (cols.max() - cols.min()) / 2
    out = np.abs(np.arange(vessels.shape[2]) - mid) / half
    hilar, outer = (out > 0.33) & (out < 0.66), out > 0.66
    share = [thick[..., m].sum() / vessels[..., m].sum() for m in (hilar, outer)]
    density = [vessels[..., m].sum() / coarse.lung_mask[..., m].sum() for m in (hilar, outer)]
    assert share[0] > 1.3 * share[1] and density[0] > density[1]


@pytest.mark.parametrize("radius", [2.0, 5.0, 10.0])
def test_parenchymal_sites_are_inside_the_lung_off_the_pleura(coarse, radius):
    spacing = np.array(coarse.spacing[::-1])
    tol = spacing.max()
    rng = np.random.default_rng(0)
    for _ in range(3):
        centre = coarse.pick_site("parenchymal", radius, rng)
        assert values_near(coarse.lung_mask, centre, radius + tol, spacing).all()
        assert not coarse.vessel_mask[centre]


@pytest.mark.parametrize("radius", [2.0, 5.0, 10.0])
def test_juxtapleural_sites_touch_the_lung_boundary(coarse, radius):
    spacing = np.array(coarse.spacing[::-1])
    tol = spacing.max()
    rng = np.random.default_rng(1)
    for _ in range(3):
        centre = coarse.pick_site("juxtapleural", radius, rng)
        assert values_near(coarse.lung_mask, centre, radius, spacing).all()
        assert not values_near(coarse.lung_mask, centre, radius + tol, spacing).all()


@pytest.mark.parametrize("radius", [2.0, 5.0, 8.0])
def test_perivascular_sites_touch_a_vessel_away_from_the_pleura(coarse, radius):
    spacing = np.array(coarse.spacing[::-1])
    tol = spacing.max()
    rng = np.random.default_rng(2)
    for _ in range(3):
        centre = coarse.pick_site("perivascular", radius, rng)
        assert values_near(coarse.lung_mask, centre, radius + tol, spacing).all()
        assert values_near(coarse.vessel_mask, centre, radius + tol + spacing.min(), spacing).any()


def test_pick_site_refuses_impossible_requests(coarse):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no parenchymal site"):
        coarse.pick_site("parenchymal", 90.0, rng)
    with pytest.raises(ValueError, match="no juxtapleural site"):
        coarse.pick_site("juxtapleural", 90.0, rng)
    with pytest.raises(ValueError, match="site kind"):
        coarse.pick_site("endobronchial", 3.0, rng)
    with pytest.raises(ValueError, match="radius"):
        coarse.pick_site("parenchymal", 0.0, rng)


def test_pick_site_is_reproducible(coarse):
    first = coarse.pick_site("juxtapleural", 4.0, np.random.default_rng(7))
    assert coarse.pick_site("juxtapleural", 4.0, np.random.default_rng(7)) == first


def test_noise_has_the_requested_std_and_ct_like_correlation():
    flat = np.zeros((8, 160, 160), dtype=np.int16)
    noisy = add_noise(flat, 20.0, (0.7, 0.7, 1.0), np.random.default_rng(0))
    assert noisy.dtype == np.int16 and noisy.shape == flat.shape
    values = noisy.astype(np.float64)
    assert abs(values.std() - 20.0) < 2.0
    assert abs(values.mean()) < 1.0
    along_x = np.corrcoef(values[:, :, 1:].ravel(), values[:, :, :-1].ravel())[0, 1]
    along_y = np.corrcoef(values[:, 1:].ravel(), values[:, :-1].ravel())[0, 1]
    across_slices = np.corrcoef(values[1:].ravel(), values[:-1].ravel())[0, 1]
    assert along_x > 0.3 and along_y > 0.3  # grain of one to two pixels, as a CT kernel gives
    assert abs(across_slices) < 0.05  # contiguous slices are reconstructed independently
    far = np.corrcoef(values[:, :, 6:].ravel(), values[:, :, :-6].ravel())[0, 1]
    assert abs(far) < 0.1


def test_noise_is_reproducible_clipped_and_leaves_the_input_alone():
    hu = np.full((4, 64, 64), -1000, dtype=np.int16)
    hu[:, :, 32:] = 3000
    before = hu.copy()
    a = add_noise(hu, 30.0, (1.0, 1.0, 1.0), np.random.default_rng(5))
    b = add_noise(hu, 30.0, (1.0, 1.0, 1.0), np.random.default_rng(5))
    assert np.array_equal(a, b) and np.array_equal(hu, before)
    assert a.min() >= -1024 and a.max() <= 3071
    assert np.array_equal(add_noise(hu, 0.0, (1.0, 1.0, 1.0), np.random.default_rng(0)), hu)
    with pytest.raises(ValueError, match="sigma"):
        add_noise(hu, -1.0, (1.0, 1.0, 1.0), np.random.default_rng(0))
