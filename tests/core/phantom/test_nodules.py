"""The nodule renderer: real mask in, attribute rules applied, malignancy never read."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.phantom.appearance import appearance_from_ratings
from core.phantom.nodules import render_nodule, resample_mask
from tests.nodule_factory import ellipsoid_nodule

LUNG = -850.0
SPACING = (0.7, 0.7, 1.0)


def rendered(seed=1, **ratings) -> np.ndarray:
    volume = np.full((40, 80, 80), LUNG, np.float32)
    render_nodule(volume, ellipsoid_nodule(radii_mm=(7, 6, 5), **ratings), (20, 40, 40), SPACING, seed=seed)
    return volume


def centre(volume: np.ndarray) -> float:
    return float(volume[19:22, 38:43, 38:43].mean())


def test_malignancy_never_changes_a_voxel():
    nodule = ellipsoid_nodule(spiculation=4, texture=3, calcification=5)
    other = replace(nodule, ratings=nodule.ratings | {"malignancy": (1, 1, 1, 1)})
    assert nodule.label != other.label
    a = np.full((40, 80, 80), LUNG, np.float32)
    b = a.copy()
    render_nodule(a, nodule, (20, 40, 40), SPACING, seed=3)
    render_nodule(b, other, (20, 40, 40), SPACING, seed=3)
    assert np.array_equal(a, b)


def test_appearance_refuses_missing_attributes_and_ignores_malignancy():
    with pytest.raises(ValueError, match="texture"):
        appearance_from_ratings({"subtlety": 3})
    base = dict.fromkeys(["subtlety", "internal_structure", "sphericity", "margin", "lobulation"], 3.0)
    base |= {"calcification": 6.0, "spiculation": 1.0, "texture": 5.0}
    assert appearance_from_ratings(base | {"malignancy": 1}) == appearance_from_ratings(
        base | {"malignancy": 5}
    )


def test_texture_sets_density():
    assert -750 < centre(rendered(texture=1, subtlety=5)) < -400  # ground glass
    assert -60 < centre(rendered(texture=5, subtlety=5)) < 90  # solid
    part = rendered(texture=3, subtlety=5)
    assert centre(part) > -100 and part[20, 40, 31] < -300  # solid core, ground-glass rim


def test_calcification_patterns():
    assert centre(rendered(calcification=5)) > 300  # central
    assert centre(rendered(calcification=6)) < 150  # absent
    popcorn = rendered(calcification=1)
    assert popcorn.max() > 400


def test_internal_air_and_subtlety():
    assert centre(rendered(texture=5, internal_structure=4, subtlety=5)) < -500
    obvious, subtle = centre(rendered(subtlety=5)), centre(rendered(subtlety=1))
    assert subtle < obvious - 120  # 80% contrast: about 175 HU less for a solid nodule in lung


def test_margin_controls_edge_sharpness():
    def rise(volume):  # mm between 10% and 90% of the step along a row through the centre
        profile = volume[20, 40, 40:]
        low, high = profile.min(), profile.max()
        levels = (profile - low) / (high - low)
        return (np.argmax(levels < 0.1) - np.argmax(levels < 0.9)) * SPACING[0]

    assert rise(rendered(margin=5)) < rise(rendered(margin=1))


@pytest.mark.parametrize("target", [(0.7, 0.7, 1.0), (0.5, 0.5, 0.625), (1.0, 1.0, 3.0)])
def test_resampled_mask_keeps_the_volume(target):
    nodule = ellipsoid_nodule(radii_mm=(8, 6, 5), spacing=(0.6, 0.6, 1.25))
    source_mm3 = nodule.mask.sum() * np.prod(nodule.mask_spacing)
    shape = resample_mask(nodule, target)
    assert shape.occupancy.sum() * np.prod(target) == pytest.approx(source_mm3, rel=0.05)


def test_outside_the_volume_is_refused():
    with pytest.raises(ValueError, match="outside the volume"):
        render_nodule(np.zeros((10, 10, 10), np.float32), ellipsoid_nodule(), (100, 100, 100), SPACING, 0)
