"""Registration of a prior study to the current one, and the per-nodule refinement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.followup.register import Registration, refine_point, register
from core.util.cancellation import Cancelled
from core.volume import CTVolume

SPACING = (2.0, 2.0, 2.5)  # (x, y, z) mm
SHAPE = (48, 96, 96)  # (z, y, x)


def _motion(angles_deg=(1.5, 0.0, 3.0), shift_mm=(6.0, -4.0, 3.0)) -> np.ndarray:
    """A rigid motion prior -> current (4x4, LPS mm): rotations about x then z, then a shift."""
    ax, _, az = np.radians(angles_deg)
    about_x = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    about_z = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = about_z @ about_x
    matrix[:3, 3] = shift_mm
    return matrix


def _affine(spacing=SPACING, shape=SHAPE) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape[::-1]) - 1) / 2 * np.array(spacing)
    return affine


def _chest(points_mm: np.ndarray, rng_seed: int = 0) -> np.ndarray:
    """HU of a small synthetic chest at LPS points (..., 3): a body cylinder, two lungs with
    branching-like bright blobs (a smooth random field) inside."""
    from scipy import ndimage

    x, y, z = points_mm[..., 0], points_mm[..., 1], points_mm[..., 2]
    body = (x / 85) ** 2 + (y / 65) ** 2 <= 1
    lungs = np.zeros(x.shape, bool)
    for side in (-1, 1):
        lungs |= ((x - side * 40) / 30) ** 2 + (y / 40) ** 2 + ((z - 5 * side) / 50) ** 2 <= 1
    # structure inside the lungs: a fixed smooth random field on a 1 mm lattice, sampled at the points
    field = ndimage.gaussian_filter(np.random.default_rng(rng_seed).standard_normal((130, 90, 190)), 2.5)
    index = np.stack([z + 65, y + 45, x + 95], axis=0)
    texture = ndimage.map_coordinates(field, index, order=1, mode="nearest")
    hu = np.where(body, 40.0, -1000.0)
    hu = np.where(lungs, np.where(texture > 0.05, 30.0, -860.0), hu)
    return hu


def _volume(
    motion: np.ndarray | None = None, noise: float = 10.0, seed: int = 1, spacing=SPACING, shape=SHAPE
) -> CTVolume:
    """The synthetic chest on a grid, the patient moved by ``motion`` (prior -> this study)."""
    k, j, i = np.indices(shape)
    affine = _affine(spacing, shape)
    points = np.stack([i, j, k], axis=-1) @ affine[:3, :3].T + affine[:3, 3]
    if motion is not None:  # this study's point q shows the prior's anatomy at motion^-1 q
        back = np.linalg.inv(motion)
        points = points @ back[:3, :3].T + back[:3, 3]
    hu = _chest(points) + np.random.default_rng(seed).normal(0, noise, shape)
    return CTVolume(np.rint(hu).astype(np.int16), affine)


@pytest.fixture(scope="module")
def pair():
    motion = _motion()
    prior, current = _volume(), _volume(motion, seed=2)
    return prior, current, motion, register(prior, current)


def _lung_points() -> np.ndarray:
    return np.array([[-40, 0, 0], [40, 10, 20], [-35, -20, -25], [45, 15, -30], [-30, 25, 30]], float)


def test_a_known_shift_and_rotation_is_recovered_within_a_millimetre(pair):
    _, _, motion, result = pair
    points = _lung_points()
    truth = points @ motion[:3, :3].T + motion[:3, 3]
    before = np.linalg.norm(points - truth, axis=1)
    after = np.linalg.norm(result.to_current(points) - truth, axis=1)
    assert before.min() > 5  # the motion is far larger than the tolerance
    assert after.max() < 1.0, after
    back = result.to_prior(result.to_current(points))
    assert np.allclose(back, points, atol=1e-9)
    assert result.lung_surface_mm < 0.5 * result.lung_surface_before_mm


def test_a_prior_stored_in_another_voxel_order_registers_as_well(pair):
    """Scanners store slices feet-first or head-first and columns either way: only LPS mm count."""
    prior, current, motion, _ = pair
    nz, _, nx = prior.shape
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])
    flip[0, 3], flip[2, 3] = nx - 1, nz - 1  # columns and slices reversed
    stored = CTVolume(np.ascontiguousarray(prior.array[::-1, :, ::-1]), prior.affine @ flip)
    result = register(stored, current)
    points = _lung_points()
    truth = points @ motion[:3, :3].T + motion[:3, 3]
    assert np.linalg.norm(result.to_current(points) - truth, axis=1).max() < 1.0


def test_a_current_study_on_another_grid_registers_as_well(pair):
    """Another reconstruction: other pixel size, slice spacing and field of view."""
    prior, _, motion, _ = pair
    current = _volume(motion, seed=3, spacing=(2.4, 2.4, 3.0), shape=(40, 84, 84))
    result = register(prior, current)
    points = _lung_points()
    truth = points @ motion[:3, :3].T + motion[:3, 3]
    assert np.linalg.norm(result.to_current(points) - truth, axis=1).max() < 1.0


def test_the_lung_maps_a_caller_has_are_used_and_checked(pair):
    from core.imaging.location import LungMap

    prior, current, _, result = pair
    again = register(prior, current, lung_maps=(LungMap(prior), LungMap(current)))
    assert np.allclose(again.current_to_prior, result.current_to_prior, atol=1e-9)
    with pytest.raises(ValueError, match=r"^current study: the lung map given was found on another volume$"):
        register(prior, current, lung_maps=(None, LungMap(prior)))


def test_the_result_is_saved_and_read_back_unchanged(pair):
    result = pair[3]
    text = json.dumps(result.to_dict(), allow_nan=False)
    again = Registration.from_dict(json.loads(text))
    assert np.array_equal(again.current_to_prior, result.current_to_prior)
    assert again.lung_surface_mm == pytest.approx(result.lung_surface_mm, abs=1e-4)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("schema"),
        lambda d: d.__setitem__("current_to_prior", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        lambda d: d["current_to_prior"][0].__setitem__(0, float("nan")),
        lambda d: d.__setitem__("current_to_prior", [[0.0] * 4, [0.0] * 4, [0.0] * 4, [0, 0, 0, 1.0]]),
        lambda d: d.__setitem__("lung_surface_mm", "far"),
        lambda d: d.pop("lung_surface_before_mm"),
    ],
)
def test_a_damaged_saved_registration_is_refused_with_its_reason(pair, damage):
    data = json.loads(json.dumps(pair[3].to_dict()))
    damage(data)
    with pytest.raises(ValueError, match="registration"):
        Registration.from_dict(data)


def test_progress_is_reported_and_reaches_the_end(pair):
    prior, current = pair[0], pair[1]
    seen: list[tuple[int, int]] = []
    register(prior, current, progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert len(seen) > 10 and done == sorted(done) and seen[-1][0] == seen[-1][1]


@pytest.mark.parametrize("after_calls", [0, 12])
def test_cancelling_raises_cancelled_and_stops_early(pair, after_calls):
    prior, current = pair[0], pair[1]
    asked, seen = [], []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > after_calls

    with pytest.raises(Cancelled):
        register(prior, current, progress=lambda d, t: seen.append((d, t)), cancelled=cancelled)
    assert not seen or seen[-1][0] < seen[-1][1]  # stopped before the end
    assert len(asked) == after_calls + 1  # stopped at once, not at the end of a stage


def test_a_study_without_lungs_is_a_clear_message():
    soft = CTVolume(np.full(SHAPE, 40, np.int16), _affine())
    with pytest.raises(ValueError, match=r"^current study: no lungs found .* is it a chest CT\?$"):
        register(_volume(), soft)
    with pytest.raises(ValueError, match=r"^prior CT\.nii: no lungs found"):
        register(soft, _volume(), names=("prior CT.nii", "current"))
    from dataclasses import replace
    from pathlib import Path

    with pytest.raises(ValueError, match=r"^prior study soft\.nii\.gz: no lungs found"):
        register(replace(soft, source=Path("soft.nii.gz")), _volume())


def test_a_study_with_too_few_slices_is_a_clear_message():
    """Two slices of a chest: ITK's smoothing raised a RuntimeError with its C++ source path."""
    chest = _volume()
    two = CTVolume(np.ascontiguousarray(chest.array[20:22]), chest.affine)
    with pytest.raises(
        ValueError, match=r"^prior study: its lungs span too little \(.* mm\) to be registered"
    ):
        register(two, chest)


def test_refinement_corrects_a_registration_that_is_a_few_mm_off(pair):
    prior, current, motion, result = pair
    off = result.current_to_prior.copy()
    off[:3, 3] += [2.5, -2.0, 3.0]
    wrong = Registration(off, result.lung_surface_mm, result.lung_surface_before_mm)
    for point in _lung_points():
        truth = motion[:3, :3] @ point + motion[:3, 3]
        refined = refine_point(prior, current, point, wrong)
        assert np.linalg.norm(np.array(refined.propagated_mm) - truth) > 2.5
        assert refined.refined and refined.score > 0.5
        assert np.linalg.norm(np.array(refined.current_mm) - truth) < 1.0, point


def test_refinement_without_structure_keeps_the_propagated_point():
    flat = CTVolume(np.full(SHAPE, -850, np.int16), _affine())
    identity = Registration(np.eye(4), 0.0, 0.0)
    refined = refine_point(flat, flat, (0.0, 0.0, 0.0), identity)
    assert not refined.refined and refined.current_mm == refined.propagated_mm == (0.0, 0.0, 0.0)


def test_refinement_of_a_point_outside_a_study_is_a_clear_message(pair):
    prior, current, _, result = pair
    with pytest.raises(ValueError, match="outside the prior study"):
        refine_point(prior, current, (500.0, 0.0, 0.0), result)
    shifted = Registration(np.eye(4) + np.pad(np.array([[0, 0, 0, 150.0]]), ((0, 3), (0, 0))), 0.0, 0.0)
    with pytest.raises(ValueError, match="outside the current study"):
        refine_point(prior, current, (-80.0, 0.0, 0.0), shifted)
    with pytest.raises(ValueError, match="three finite"):
        refine_point(prior, current, (float("nan"), 0.0, 0.0), result)


def test_a_phantom_follow_up_registers_within_a_millimetre_and_pairs_as_its_truth_says():
    from core.followup.matching import Candidate, match
    from core.phantom.followup import FollowUpOptions, build_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    pair = build_follow_up(SMALL, FollowUpOptions(current_slice_thickness=2.5), four_nodules())
    result = register(pair.prior, pair.current)
    motion = pair.prior_to_current
    for nodule in pair.prior_nodules:
        truth = motion[:3, :3] @ np.array(nodule.centre_mm) + motion[:3, 3]
        assert np.linalg.norm(result.to_current(nodule.centre_mm) - truth) < 1.0
        refined = refine_point(pair.prior, pair.current, nodule.centre_mm, result)
        assert np.linalg.norm(np.array(refined.current_mm) - truth) < 1.0

    def candidates(placed):
        return [Candidate(p.truth()["id"], p.centre_mm, p.nodule.diameter_mm) for p in placed]

    found = match(candidates(pair.prior_nodules), candidates(pair.current_nodules), result.to_current)
    assert {(p.prior_id, p.current_id) for p in found.pairs} == {
        (p["prior_id"], p["current_id"]) for p in pair.truth["pairs"]
    }
    assert list(found.new) == pair.truth["new"] and list(found.resolved) == pair.truth["resolved"]
