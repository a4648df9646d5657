"""Per-sample augmentation: each transform keeps what it must, samples draw independently, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.training.augment import (
    AugmentConfig,
    Draw,
    augment,
    blur_sharpen,
    hu_jitter,
    rotate_scale,
    symmetries,
)

NONE = AugmentConfig(flips=False, rotate_deg=0, scale=0, sharpen=0, hu_scale=0, hu_offset=0)
HU = (-1100.0, 500.0)


def patches(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, 3, 16, 16)).astype(np.float32))


def disc(n: int, size: int = 64, radius: float = 12.0) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    image = np.where(np.hypot(yy, xx) < radius, 0.6, -0.8).astype(np.float32)
    return torch.from_numpy(np.broadcast_to(image, (n, 3, size, size)).copy())


def test_a_flip_twice_and_four_quarter_turns_are_the_identity():
    x, n = patches(), 6
    yes, no = np.ones(n, bool), np.zeros(n, bool)
    assert torch.equal(symmetries(symmetries(x, yes, no, np.zeros(n, int)), yes, no, np.zeros(n, int)), x)
    assert torch.equal(symmetries(symmetries(x, no, yes, np.zeros(n, int)), no, yes, np.zeros(n, int)), x)
    once = symmetries(x, no, no, np.ones(n, int))
    assert not torch.equal(once, x)
    assert torch.equal(symmetries(once, no, no, np.full(n, 3)), x)


def test_the_z_flip_reverses_the_slices_and_the_in_plane_flip_mirrors_them():
    x, n = patches(), 6
    no = np.zeros(n, bool)
    flipped = symmetries(x, no, np.ones(n, bool), np.zeros(n, int))
    assert torch.equal(flipped[:, 0], x[:, 2]) and torch.equal(flipped[:, 2], x[:, 0])
    assert torch.equal(flipped[:, 1], x[:, 1])
    mirrored = symmetries(x, np.ones(n, bool), no, np.zeros(n, int))
    assert torch.equal(mirrored, x.flip(3))


def test_each_sample_gets_its_own_symmetry():
    x = patches(4)
    out = symmetries(x, np.array([0, 1, 0, 0], bool), np.array([0, 0, 1, 0], bool), np.array([0, 0, 0, 2]))
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], x[1].flip(2))
    assert torch.equal(out[2], x[2].flip(0))
    assert torch.equal(out[3], torch.rot90(x[3], 2, dims=(1, 2)))


def test_a_small_rotation_keeps_a_centred_disc_and_its_area():
    x = disc(3)
    area = (x[:, 0] > 0).sum(dim=(1, 2)).float()
    for angle in (15.0, -15.0, 7.0):
        out = rotate_scale(x, np.full(3, angle), np.ones(3))
        ratio = (out[:, 0] > 0).sum(dim=(1, 2)).float() / area
        assert torch.all((ratio - 1).abs() < 0.03), ratio
    assert torch.allclose(rotate_scale(x, np.zeros(3), np.ones(3)), x, atol=1e-5)


def test_scaling_changes_the_disc_area_by_the_square_of_the_zoom():
    x = disc(2)
    area = float((x[0, 0] > 0).sum())
    out = rotate_scale(x, np.zeros(2), np.array([1.1, 0.9]))
    ratios = (out[:, 0] > 0).sum(dim=(1, 2)).float() / area
    assert abs(float(ratios[0]) - 1.21) < 0.05 and abs(float(ratios[1]) - 0.81) < 0.05


def test_blur_smooths_and_sharpening_raises_the_contrast_of_an_edge():
    x = disc(3)
    out = blur_sharpen(x, np.array([-1.0, 0.0, 1.0]))
    assert torch.equal(out[1], x[1])
    assert torch.allclose(out[0, 0, 32, 22:42], x[0, 0, 32, 22:42])  # far from the rim, nothing moves
    assert float(out[0].std()) < float(x[0].std()) < float(out[2].std())
    assert float(out[2].max()) <= 1.0 and float(out[0].min()) >= -1.0


def test_hu_jitter_stays_within_its_bounds_and_is_exact_in_hu():
    x = torch.linspace(-0.99, 0.99, 3 * 8 * 8).reshape(1, 3, 8, 8).repeat(5, 1, 1, 1)
    scale, offset = np.array([0.03, -0.03, 0.0, 0.0, 0.02]), np.array([0.0, 0.0, 20.0, -20.0, -15.0])
    out = hu_jitter(x, scale, offset, HU)
    to_hu = lambda v: (v + 1) * 800 - 1100  # noqa: E731 - the patches' mapping (PatchConfig.hu_range)
    expected = (to_hu(x) * torch.tensor(1 + scale, dtype=torch.float32)[:, None, None, None]) + torch.tensor(
        offset, dtype=torch.float32
    )[:, None, None, None]
    assert torch.allclose(to_hu(out), expected.clamp(-1100, 500), atol=0.05)
    assert float((to_hu(out) - to_hu(x)).abs().max()) <= 0.03 * 1100 + 20 + 0.05
    assert float(out.abs().max()) <= 1.0


def test_random_augmentation_keeps_the_range_and_the_bounds_of_the_intensity_change():
    config = AugmentConfig(flips=False, rotate_deg=0, scale=0, sharpen=0)
    x = patches(64)
    out = augment(x, np.random.default_rng(0), config)
    largest = (config.hu_scale * 1100 + config.hu_offset) / 800  # HU -> normalised units
    assert float((out - x).abs().max()) <= largest + 1e-6 and float(out.abs().max()) <= 1.0
    assert float((out - x).abs().max()) > largest / 4  # it did move


def test_samples_draw_independently_and_a_seed_repeats_the_draws():
    x = disc(32)
    x[:, 0] -= 0.1  # channels differ, so the z flip shows
    out = augment(x, np.random.default_rng(5), AugmentConfig())
    flat = out.reshape(len(out), -1)
    assert len({tuple(np.round(row.numpy(), 4)) for row in flat}) == len(out)  # no two samples alike
    draw = Draw.random(1000, AugmentConfig(), np.random.default_rng(1))
    assert 0.4 < draw.flip_x.mean() < 0.6 and 0.4 < draw.flip_z.mean() < 0.6
    assert set(draw.turns.tolist()) == {0, 1, 2, 3}
    assert abs(np.corrcoef(draw.angle_deg, draw.zoom)[0, 1]) < 0.1
    assert torch.equal(out, augment(x, np.random.default_rng(5), AugmentConfig()))
    assert not torch.equal(out, augment(x, np.random.default_rng(6), AugmentConfig()))


def test_nothing_enabled_leaves_the_batch_unchanged():
    x = patches()
    assert torch.equal(augment(x, np.random.default_rng(0), NONE), x)


def test_the_config_round_trips_and_refuses_silly_ranges():
    config = AugmentConfig(rotate_deg=10, hu_range=(-1000.0, 400.0))
    assert AugmentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="rotate_deg"):
        AugmentConfig(rotate_deg=90)
    with pytest.raises(ValueError, match="hu_range"):
        AugmentConfig(hu_range=(500.0, -1100.0))
