"""The prior's key image of a follow-up pair: the current patch cut from the prior through the
registration, at the same scale, orientation and window, so both show the same anatomy."""

from __future__ import annotations

import numpy as np
import pytest

from core.followup.register import Registration
from core.report.images import prior_view_image, view_image
from core.volume import CTVolume

SHIFT_VOXELS = np.array([5, -3, 2])  # (x, y, z): where the patient lies in the prior, in voxels
SPACING = np.array([0.7, 0.7, 2.5])


def _volume(array: np.ndarray) -> CTVolume:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-10.0, -12.0, 0.0)
    return CTVolume(array, affine)


def _pair():
    """A current study with an ellipsoid nodule and its prior: the same chest shifted by whole voxels."""
    z, y, x = np.indices((24, 64, 64))
    array = np.full((24, 64, 64), -850, np.int16)
    nodule = ((x - 30) * 0.7 / 6) ** 2 + ((y - 34) * 0.7 / 4) ** 2 + ((z - 12) * 2.5 / 5) ** 2 <= 1
    array[nodule] = 40
    array[:, :, 50:] = -100  # a chest wall on one side, so the picture is not symmetric
    current = _volume(array)
    prior = _volume(np.roll(array, tuple(SHIFT_VOXELS[::-1]), axis=(0, 1, 2)))
    matrix = np.eye(4)
    matrix[:3, 3] = SHIFT_VOXELS * SPACING  # current mm -> prior mm
    centre = current.voxel_to_mm(np.array([30.0, 34.0, 12.0]))
    return prior, current, Registration(matrix, 0.0, 0.0), centre


def test_the_prior_image_is_the_current_patch_seen_in_the_prior_through_the_registration():
    prior, current, registration, centre = _pair()
    now = view_image(current, centre, 6.0, size_px=64, crop_mm=30.0)
    before = prior_view_image(prior, current, registration, centre, 6.0, size_px=64, crop_mm=30.0)
    assert before.shape == now.shape == (64, 64, 3) and before.dtype == np.uint8
    assert np.abs(before.astype(int) - now.astype(int)).max() <= 1  # the same pixels, the shift undone
    ignoring = prior_view_image(prior, current, Registration(np.eye(4), 0.0, 0.0), centre, 6.0, 64, 30.0)
    assert np.abs(ignoring.astype(int) - now.astype(int)).max() > 100  # without it: another place


def test_outside_the_prior_is_black_and_a_bad_patch_is_refused():
    prior, current, registration, centre = _pair()
    far = np.eye(4)
    far[2, 3] = 500.0  # half a metre along the body: no prior there
    outside = prior_view_image(prior, current, Registration(far, 0.0, 0.0), centre, 6.0, 32, 30.0, ring=False)
    assert not outside.any()
    with pytest.raises(ValueError, match="at least 8 px"):
        prior_view_image(prior, current, registration, centre, 6.0, size_px=4)
