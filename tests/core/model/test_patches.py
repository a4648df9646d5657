"""Marker -> model input: slices spanning the nodule, fixed-fov keeps size, paper mode does not."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.patches import Jitter, PatchConfig, extract_patches, slice_weights
from core.volume import CTVolume


def sphere_volume(radius_mm: float, spacing=(0.7, 0.7, 1.0), shape=(60, 128, 128)) -> CTVolume:
    z, y, x = np.indices(shape).astype(np.float64)
    centre = np.array(shape) / 2
    distance = np.sqrt(
        ((x - centre[2]) * spacing[0]) ** 2
        + ((y - centre[1]) * spacing[1]) ** 2
        + ((z - centre[0]) * spacing[2]) ** 2
    )
    hu = np.where(distance <= radius_mm, 40, -850).astype(np.int16)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -centre[::-1] * np.array(spacing)  # voxel centre of the sphere at (0, 0, 0) mm
    return CTVolume(hu, affine)


def bright_fraction(patches: np.ndarray) -> float:
    middle = patches[len(patches) // 2, 0]
    return float((middle > 0.0).mean())


def test_slices_span_the_nodule_and_values_are_normalised():
    volume = sphere_volume(5.0)
    patches = extract_patches(volume, (0.0, 0.0, 0.0), 10.0, PatchConfig(max_slices=50))
    assert patches.shape == (11, 1, 64, 64) and patches.dtype == np.float32
    assert patches.min() >= -1 and patches.max() <= 1
    assert extract_patches(volume, (0.0, 0.0, 0.0), 10.0, PatchConfig()).shape[0] == 5


def test_fixed_fov_keeps_size_and_paper_mode_is_size_blind():
    small, large = sphere_volume(3.0), sphere_volume(9.0)
    fixed = PatchConfig(mode="fixed-fov")
    paper = PatchConfig(mode="paper")
    ratio_fixed = bright_fraction(extract_patches(large, (0, 0, 0), 18, fixed)) / bright_fraction(
        extract_patches(small, (0, 0, 0), 6, fixed)
    )
    ratio_paper = bright_fraction(extract_patches(large, (0, 0, 0), 18, paper)) / bright_fraction(
        extract_patches(small, (0, 0, 0), 6, paper)
    )
    assert ratio_fixed > 6
    assert ratio_paper == pytest.approx(1.0, abs=0.25)
    assert fixed.side_mm(6) == fixed.side_mm(18) == 48.0
    assert paper.side_mm(18) == pytest.approx(22.5)
    assert paper.side_mm(1.0) == pytest.approx(3.75)  # the 3 mm floor


def test_three_channels_copy_the_grey_level():
    patches = extract_patches(sphere_volume(4.0), (0, 0, 0), 8, PatchConfig(channels=3))
    assert patches.shape[1] == 3 and np.array_equal(patches[:, 0], patches[:, 2])


def test_jitter_flips_and_turns():
    volume = sphere_volume(4.0)
    config = PatchConfig()
    base = extract_patches(volume, (3.0, 0.0, 0.0), 8, config)  # off-centre: flips move it
    flipped = extract_patches(volume, (3.0, 0.0, 0.0), 8, config, Jitter(flip_x=True))
    assert np.allclose(flipped, base[..., ::-1])
    turned = extract_patches(volume, (3.0, 0.0, 0.0), 8, config, Jitter(quarter_turns=1))
    assert np.allclose(turned, np.rot90(base, 1, axes=(2, 3)))


def test_centre_outside_the_volume_is_refused_and_config_validated():
    with pytest.raises(ValueError, match="outside the volume"):
        extract_patches(sphere_volume(3.0), (500.0, 0.0, 0.0), 6, PatchConfig())
    with pytest.raises(ValueError, match="patch mode"):
        PatchConfig(mode="zoom")
    with pytest.raises(ValueError, match="fov_mm"):
        PatchConfig(fov_mm=0.0)


def test_slice_weights_double_the_centre():
    assert slice_weights(5).tolist() == pytest.approx([1 / 6, 1 / 6, 2 / 6, 1 / 6, 1 / 6])
    assert slice_weights(4).tolist() == pytest.approx([1 / 6, 2 / 6, 2 / 6, 1 / 6])
    assert slice_weights(1).tolist() == [1.0]


def test_neighbour_channels_hold_the_slices_below_and_above():
    volume = sphere_volume(6.0)  # 1 mm slices: f = 0.25 of a 12 mm marker is 3 slices
    single = extract_patches(volume, (0.0, 0.0, 0.0), 12, PatchConfig(max_slices=3))
    config = PatchConfig(max_slices=3, channels=3, neighbour_fraction=0.25)
    stacked = extract_patches(volume, (0.0, 0.0, 0.0), 12, config, Jitter(flip_x=True, quarter_turns=1))
    assert stacked.shape == (3, 3, 64, 64)
    turned = np.rot90(single[:, 0, :, ::-1], 1, axes=(1, 2))
    assert np.allclose(stacked[:, 1], turned)  # the middle channel is the slice itself, jittered alike
    below = extract_patches(volume, (0.0, 0.0, -3.0), 12, PatchConfig(max_slices=3))
    assert np.allclose(stacked[1, 0], np.rot90(below[1, 0, :, ::-1], 1))  # 3 slices lower
    # the sphere is narrower 3 mm off its centre: the outer channels of the middle slice show less of it
    assert (stacked[1, 0] > 0).sum() < (stacked[1, 1] > 0).sum() and np.allclose(stacked[1, 0], stacked[1, 2])
    with pytest.raises(ValueError, match="neighbour_fraction"):
        PatchConfig(neighbour_fraction=0.25)  # one channel cannot hold three slices
    # stored only when used: libraries and caches cut before the option keep their digests
    assert "neighbour_fraction" not in PatchConfig().to_dict()
    assert PatchConfig.from_dict(config.to_dict()) == config
