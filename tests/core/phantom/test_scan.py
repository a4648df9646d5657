"""Scanning a phantom crop under a protocol: kernel, noise level, slice profile, calibration, lungs."""

from dataclasses import replace

import numpy as np
import pytest

from core.phantom.noise import add_noise
from core.phantom.protocol import MATRIX, NOMINAL
from core.phantom.scan import adjust_lungs, chest_grid, needs_reslice, reconstruct, reslice
from core.phantom.torso import LUNG_HU

SPACING = (0.7, 0.7, 1.25)


def _high_frequency_share(image: np.ndarray) -> float:
    """Share of the in-plane noise power above 0.25 cycles per pixel."""
    power = np.abs(np.fft.fft2(image - image.mean(axis=(1, 2), keepdims=True))) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(image.shape[1]), np.fft.fftfreq(image.shape[2]), indexing="ij"))
    return float(power[:, f > 0.25].sum() / power.sum())


def test_sharp_kernel_has_more_high_frequency_noise_at_equal_level():
    flat = np.zeros((8, 96, 96), np.int16)
    soft = replace(NOMINAL, noise_hu=30.0)
    sharp = replace(soft, kernel="sharp")
    a = reconstruct(flat, SPACING, soft, np.random.default_rng(0)).astype(float)
    b = reconstruct(flat, SPACING, sharp, np.random.default_rng(0)).astype(float)
    assert a.std() == pytest.approx(30, rel=0.05) and b.std() == pytest.approx(30, rel=0.05)
    assert _high_frequency_share(b) > 1.5 * _high_frequency_share(a)


def test_sharp_kernel_overshoots_at_edges():
    step = np.full((4, 32, 32), -900, np.int16)
    step[:, :, 16:] = 40
    soft = reconstruct(step, SPACING, replace(NOMINAL, noise_hu=0.0), np.random.default_rng(0))
    sharp = reconstruct(
        step, SPACING, replace(NOMINAL, kernel="sharp", noise_hu=0.0), np.random.default_rng(0)
    )
    assert soft.max() == 40 and soft.min() == -900
    assert sharp.max() > 60 and sharp.min() < -920


def test_low_dose_doubles_the_noise():
    flat = np.zeros((8, 64, 64), np.int16)
    std = MATRIX["2.5mm-soft-standard"]
    low = MATRIX["2.5mm-soft-low"]
    a = reconstruct(flat, SPACING, std, np.random.default_rng(1)).std()
    b = reconstruct(flat, SPACING, low, np.random.default_rng(1)).std()
    assert b / a == pytest.approx(2.0, rel=0.1)


def test_hu_offset_shifts_the_mean():
    base = np.full((4, 32, 32), -500, np.int16)
    shifted = reconstruct(
        base, SPACING, replace(NOMINAL, noise_hu=0.0, hu_offset=25.0), np.random.default_rng(0)
    )
    assert float(shifted.mean()) == pytest.approx(-475.0)
    noisy = reconstruct(base, SPACING, replace(NOMINAL, hu_offset=-30.0), np.random.default_rng(0))
    assert float(noisy.mean()) == pytest.approx(-530.0, abs=2.0)


def test_nominal_reconstruction_is_the_old_noise_bit_for_bit():
    hu = np.random.default_rng(3).integers(-1000, 200, (10, 40, 40)).astype(np.int16)
    old = add_noise(hu, 20.0, SPACING, np.random.default_rng(9))
    assert np.array_equal(reconstruct(hu, SPACING, NOMINAL, np.random.default_rng(9)), old)


def _sphere(diameter_mm: float, dz: float, px: float = 0.5, slices: int = 64) -> np.ndarray:
    z, y, x = np.mgrid[:slices, :24, :24].astype(float)
    r = np.sqrt(((z - slices // 2) * dz) ** 2 + ((y - 12) * px) ** 2 + ((x - 12) * px) ** 2)
    return np.where(r <= diameter_mm / 2, 0.0, -1000.0).astype(np.float32)


def test_thick_slices_blur_a_small_sphere_along_z():
    dz = 0.625
    fine = _sphere(3.0, dz)
    centre_mm = 32 * dz
    profiles = {}
    for thickness in (1.25, 5.0):
        protocol = replace(NOMINAL, slice_thickness_mm=thickness, slice_interval_mm=thickness)
        out, z0 = reslice(fine, dz, protocol, centre_mm)
        profile = out[:, 12, 12] + 1000.0  # excess over the background along z, through the centre
        assert (z0 - centre_mm) / thickness == pytest.approx(round((z0 - centre_mm) / thickness))
        profiles[thickness] = profile
        # the slab average conserves what the sphere adds along z (partial volume, not loss)
        assert profile.sum() * thickness == pytest.approx((fine[:, 12, 12] + 1000.0).sum() * dz, rel=1e-4)
    assert profiles[5.0].max() < 0.7 * profiles[1.25].max()  # a 3 mm sphere fills under 3/5 of a 5 mm slice
    assert profiles[1.25].max() == pytest.approx(1000.0)


def test_overlapping_slices_are_closer_than_thick():
    fine = _sphere(6.0, 0.625)
    protocol = replace(NOMINAL, slice_thickness_mm=2.5, slice_interval_mm=1.25)
    out, _ = reslice(fine, 0.625, protocol, 0.0)
    contiguous, _ = reslice(fine, 0.625, replace(protocol, slice_interval_mm=2.5), 0.0)
    assert len(out) == pytest.approx(2 * len(contiguous), abs=1)


def test_reslice_refuses_a_crop_thinner_than_a_slice():
    with pytest.raises(ValueError, match="holds no"):
        reslice(np.zeros((4, 8, 8), np.float32), 0.625, MATRIX["5mm-soft-standard"], 0.0)


def test_chest_grids():
    assert chest_grid(NOMINAL) == (0.7, 1.25) and not needs_reslice(NOMINAL, 1.25)
    assert chest_grid(MATRIX["5mm-sharp-low"]) == (0.7, 1.25)  # 5 mm slices from 1.25 mm slabs
    assert chest_grid(replace(NOMINAL, slice_thickness_mm=1.5, slice_interval_mm=1.5)) == (0.7, 0.625)
    overlap = replace(NOMINAL, slice_interval_mm=0.625)
    assert chest_grid(overlap) == (0.7, 0.625) and needs_reslice(overlap, 0.625)


def test_adjust_lungs_moves_parenchyma_not_tissue():
    hu = np.full((2, 8, 8), LUNG_HU, np.float32)
    hu[:, :, :2] = 40.0  # chest wall
    hu[:, 4, 4] = 40.0  # a vessel in the lung
    lung = np.zeros(hu.shape, bool)
    lung[:, :, 2:] = True
    assert adjust_lungs(hu.copy(), lung, NOMINAL, SPACING, None) == pytest.approx(hu)
    denser = adjust_lungs(hu.copy(), lung, replace(NOMINAL, lung_density_hu=50.0), SPACING, None)
    assert denser[0, 0, 5] == pytest.approx(LUNG_HU + 50) and denser[0, 0, 0] == pytest.approx(40.0)
    assert denser[0, 4, 4] == pytest.approx(40.0)
    faint = adjust_lungs(hu.copy(), lung, replace(NOMINAL, vessel_contrast=0.5), SPACING, None)
    assert faint[0, 4, 4] < 40.0 - 300 and faint[0, 0, 0] == pytest.approx(40.0)
    textured = adjust_lungs(
        hu.copy(), lung, replace(NOMINAL, lung_texture_hu=20.0), SPACING, np.random.default_rng(0)
    )
    assert textured[:, :, 2:].std() > 5 and np.all(textured[:, :, :2] == 40.0)
