"""partial_volume_mm3 on analytic shapes: a sphere of known volume (8 mm, 268 mm^3) rendered with
partial volume, a blurred margin and noise, on 1.25 and 2.5 mm slices; its mask given explicitly
(the noiseless occupancy cut at a level), so that only the volume estimate is under test."""

import math

import numpy as np
import pytest
from scipy import ndimage

from core.measure.mask import NoduleMask
from core.measure.segment import partial_volume_mm3
from core.volume import CTVolume

LUNG, TISSUE = -850.0, 30.0
RADIUS = 4.0
TRUE_MM3 = 4 / 3 * math.pi * RADIUS**3
SIZE_MM = 32.0
THIN, THICK = (1.25, 0.7, 0.7), (2.5, 0.7, 0.7)  # z, y, x spacing (mm)


def _render(spacing, blur_mm=0.3, shift=(0.0, 0.0, 0.0), seed=0, vessel=False, sub=5):
    """(volume, occupancy): the sphere supersampled onto the grid (partial volume), moved by
    ``shift`` voxels, its edge blurred by ``blur_mm`` (sigma), in 20 HU of noise; ``vessel``: a
    3 mm tube along z touching its side, as dense as the nodule."""
    shape = tuple(round(SIZE_MM / s) for s in spacing)
    frac = (np.arange(sub) + 0.5) / sub - 0.5
    centre = SIZE_MM / 2 + np.array(shift) * spacing
    lines = zip(shape, spacing, centre, strict=True)
    axes = [((np.arange(n)[:, None] + frac) * s).ravel() - c for n, s, c in lines]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    fine = (z**2 + y**2 + x**2) <= RADIUS**2
    occupancy = fine.reshape(shape[0], sub, shape[1], sub, shape[2], sub).mean(axis=(1, 3, 5))
    sigma = [blur_mm / s for s in spacing]
    occupancy = ndimage.gaussian_filter(occupancy, sigma)
    hu = LUNG + occupancy * (TISSUE - LUNG)
    if vessel:
        y, x = (np.indices(shape[1:]) * np.array(spacing[1:])[:, None, None]) - SIZE_MM / 2
        tube = ((y**2 + (x - RADIUS - 1.5) ** 2) <= 1.5**2).astype(float)
        tube = ndimage.gaussian_filter(np.broadcast_to(tube, shape).astype(float), sigma)
        hu += tube * (TISSUE + 10 - hu)
    hu += np.random.default_rng(seed).normal(0.0, 20.0, shape)
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    return CTVolume(np.rint(hu).astype(np.int16), affine), occupancy


def _volume(volume, mask):
    return partial_volume_mm3(volume, NoduleMask((0, 0, 0), mask, "m").cropped())


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_a_blurred_margin_is_counted_beyond_the_half_level_mask(spacing):
    """Issue 17 (volume error): a poorly defined margin (1 mm blur) spreads a quarter of a small
    nodule's edge tissue beyond its half-level outline; only the mask and its first outer layer were
    read, so the 8 mm sphere measured 15-16 % small. The band around the mask holds it."""
    volume, occupancy = _render(spacing, blur_mm=1.0)
    assert _volume(volume, occupancy >= 0.5) == pytest.approx(TRUE_MM3, rel=0.05)


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_a_mask_drawn_a_little_tight_still_gets_the_nodule_volume(spacing):
    """Issue 17 (volume error): the learned segmenter's masks sit inside the half level; the
    nodule's own voxels just outside them are more than half tissue and were counted as
    'left out on purpose' (wall, vessel): 5-13 % lost on a sharp sphere cut at 65 % occupancy."""
    volume, occupancy = _render(spacing)
    assert _volume(volume, occupancy >= 0.65) == pytest.approx(TRUE_MM3, rel=0.03)


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_a_vessel_the_mask_cut_off_is_left_out_of_the_band(spacing):
    """The band reads the voxels around the mask, but not another structure that crosses it: a
    vessel touching the nodule (reaching beyond the band) and the voxels nearer to it."""
    volume, occupancy = _render(spacing, blur_mm=1.0, vessel=True)
    assert _volume(volume, occupancy >= 0.5) == pytest.approx(TRUE_MM3, rel=0.08)


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_two_renderings_differing_in_noise_and_a_sub_voxel_shift_agree(spacing):
    """Repeatability (QIBA): the same sphere, other noise and moved by a fraction of a voxel along
    every axis, each with its own half-level mask: the volumes agree within 3 %, the voxel counts
    do not need to."""
    first, occupancy = _render(spacing, blur_mm=0.6)
    second, moved = _render(spacing, blur_mm=0.6, shift=(0.5, 0.3, -0.2), seed=1)
    a, b = _volume(first, occupancy >= 0.5), _volume(second, moved >= 0.5)
    assert abs(a - b) <= 0.03 * min(a, b)
    assert a == pytest.approx(TRUE_MM3, rel=0.05) and b == pytest.approx(TRUE_MM3, rel=0.05)


def test_noise_alone_around_an_empty_box_adds_no_volume():
    """A mask of one voxel of lung (a reader's stray click): the band's noise does not make a
    nodule of it (shares are clipped at 0, the lung around holds no tissue)."""
    volume, _ = _render(THIN)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[2, 2, 2] = True
    assert _volume(volume, mask) <= 2 * float(np.prod(volume.spacing))


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_a_reader_shrinking_the_mask_shrinks_the_volume(spacing):
    """The band must not undo a reader's edit: a mask shrunk by a voxel (to cut off what the reader
    judged not nodule) was measured back to the automatic mask's volume by its band."""
    volume, occupancy = _render(spacing)
    drawn = occupancy >= 0.5
    shrunk = ndimage.binary_erosion(drawn)
    automatic = _volume(volume, drawn)
    edited = partial_volume_mm3(volume, NoduleMask((0, 0, 0), shrunk, "edited", edited=True).cropped())
    assert edited <= 0.75 * automatic
    assert edited == pytest.approx(float(shrunk.sum() * np.prod(spacing)), rel=0.15)


@pytest.mark.parametrize("spacing", [THIN, THICK])
def test_a_heterogeneous_ground_glass_edge_is_read_at_its_typical_level(spacing):
    """Issue 17 (volume error): ground glass is patchy (+-45 HU here, about what the phantoms draw);
    the edge layer's upper quartile, taken as the tissue level, reads it too dense and every edge
    voxel's share too small: -8 % on average on 2.5 mm slices. Its 60th percentile: within 5 %."""
    errors = []
    for seed in (0, 1, 2):
        volume, occupancy = _render(spacing, blur_mm=0.6, seed=seed)
        rng = np.random.default_rng(seed + 10)
        patchy = ndimage.gaussian_filter(rng.standard_normal(occupancy.shape), 0.8)
        tissue = -600.0 + patchy * 45.0 / patchy.std()
        hu = LUNG + occupancy * (tissue - LUNG) + rng.normal(0.0, 20.0, patchy.shape)
        volume = CTVolume(np.rint(hu).astype(np.int16), volume.affine)
        errors.append(_volume(volume, occupancy >= 0.5) / TRUE_MM3 - 1)
    assert abs(float(np.mean(errors))) <= 0.05
