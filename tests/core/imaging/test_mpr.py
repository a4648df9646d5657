"""Planes show the patient the way radiologists expect, whatever the storage order."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.mpr import VIEWS, XPlanes, letter, plane, slab_slices
from core.volume import CTVolume


def _volume(direction=None, spacing=(0.7, 0.8, 2.5), shape=(6, 5, 4)) -> CTVolume:
    array = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(np.eye(3) if direction is None else direction) * np.asarray(spacing)
    return CTVolume(array, affine)


def test_standard_orientation_letters_and_axes():
    volume = _volume()
    axial, coronal, sagittal = (plane(volume, name) for name in VIEWS)
    assert axial.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert axial.shape == (5, 4) and coronal.shape == (6, 4) and sagittal.shape == (6, 5)
    assert coronal.pixel_mm == (0.7, 2.5) and sagittal.pixel_mm == (0.8, 2.5)
    np.testing.assert_array_equal(axial.image(volume.array, 2), volume.array[2])
    # Coronal: superior (the last slice) on the top row.
    np.testing.assert_array_equal(coronal.image(volume.array, 1), volume.array[::-1, 1, :])
    np.testing.assert_array_equal(sagittal.image(volume.array, 3), volume.array[::-1, :, 3])


def test_feet_first_and_flipped_rows_still_show_the_right_way_round():
    flipped = _volume(direction=np.diag([1.0, -1.0, -1.0]))
    standard = _volume()
    for name in VIEWS:
        a, b = plane(standard, name), plane(flipped, name)
        assert a.letters == b.letters
    # The flipped volume holds the same anatomy mirrored in y and z: its axial slice 0 is the
    # standard's top slice, shown with anterior (row y=4 of the flipped data) at the top.
    axial = plane(flipped, "axial")
    np.testing.assert_array_equal(axial.image(flipped.array, 0), flipped.array[0, ::-1, :])


@pytest.mark.parametrize("name", VIEWS)
def test_screen_and_voxel_coordinates_round_trip(name):
    volume = _volume(direction=np.diag([-1.0, 1.0, -1.0]))
    p = plane(volume, name)
    voxel = np.array([1.25, 3.5, 4.0])
    u, v, depth = p.to_screen(voxel)
    np.testing.assert_allclose(p.to_voxel(u, v, depth), voxel)
    # The displayed pixel under (u, v) holds that voxel's value.
    image = p.image(volume.array, round(depth))
    rounded = np.round(voxel).astype(int)
    assert image[int(v), int(u)] == volume.array[rounded[2], rounded[1], rounded[0]]


def test_mip_slab_is_the_maximum_over_its_slices():
    volume = _volume()
    axial = plane(volume, "axial")
    np.testing.assert_array_equal(axial.image(volume.array, 3, slab=3), volume.array[2:5].max(axis=0))
    assert axial.image(volume.array, 0, slab=3).shape == (5, 4)  # clipped at the edge
    assert slab_slices(axial, 10.0) == 4 and slab_slices(axial, 0.1) == 1


def test_oblique_letters():
    assert letter(np.array([0.9, 0.4, 0.0])) == "LP"
    assert letter(np.array([0.0, 0.0, -1.0])) == "I"


@pytest.mark.parametrize(
    "direction",
    [None, np.diag([1.0, -1.0, -1.0]), np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])],
    ids=["axial", "flipped", "sagittal-acquired"],
)
def test_x_plane_cache_gives_the_same_images_as_the_array(direction):
    volume = _volume(direction, shape=(6, 5, 7))
    rng = np.random.default_rng(0)
    array = rng.integers(-1024, 3000, volume.shape).astype(np.int16)
    cache = XPlanes(array, capacity=3)  # smaller than the slabs: eviction on every change
    for name in VIEWS:
        p = plane(volume, name)
        for slab in (1, 2, 3, 5):
            for index in [*range(-1, p.depth + 1), 3, 0, 3]:
                cached = p.image(array, index, slab, cache)
                np.testing.assert_array_equal(cached, p.image(array, index, slab), err_msg=f"{name} {slab}")
    assert 0 < len(cache._planes) <= 3  # the view across x was served from the cache
    other = XPlanes(array.copy())
    p = plane(volume, "sagittal")
    p.image(array, 2, 3, other)  # a cache of another array is not used
    assert not other._planes
