"""Side, zone and slice of a nodule, from lungs found by a cheap threshold (LPS: +x = patient's left)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.imaging.location import ZONE_NOTE, ZONES, LungMap, describe_location
from core.volume import CTVolume

SHAPE = (60, 64, 80)  # (z, y, x)
SPACING = (2.0, 2.0, 2.5)  # (x, y, z) mm
LUNG_SLICES = (10, 49)  # first and last slice of both lungs (cylinders)
LOW_COLUMNS, HIGH_COLUMNS = 22, 58  # lung centres: columns below / above the body's centre (40)
BODY_CENTRE_X = 40


def chest(with_stomach_gas: bool = True) -> np.ndarray:
    """A soft-tissue body ellipse in air, two air 'lungs' (elliptic cylinders) and a gas bubble."""
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    hu = np.full(SHAPE, -1000, np.int16)
    body = ((x - BODY_CENTRE_X) / 36.0) ** 2 + ((y - 32) / 26.0) ** 2 <= 1
    hu[np.broadcast_to(body, SHAPE)] = 40
    in_range = (z >= LUNG_SLICES[0]) & (z <= LUNG_SLICES[1])
    for cx in (LOW_COLUMNS, HIGH_COLUMNS):
        lung = (((x - cx) / 10.0) ** 2 + ((y - 30) / 16.0) ** 2 <= 1) & in_range
        hu[lung] = -850
    if with_stomach_gas:  # below the lungs, under the high-column lung, not connected to it
        hu[2:7, 34:40, 52:62] = -950
    return hu


def affine(flip_x: bool = False, flip_z: bool = False, shift_x: float = 10.0) -> np.ndarray:
    """Voxel (x, y, z) -> LPS mm, the body's centre column at x = ``shift_x``; flipped axes run towards
    the patient's right / feet."""
    a = np.diag([*SPACING, 1.0])
    if flip_x:
        a[0, 0] = -SPACING[0]
    if flip_z:
        a[2, 2] = -SPACING[2]
    a[:3, 3] = np.array([shift_x, -60.0, 100.0]) - a[:3, :3] @ [BODY_CENTRE_X, 32, 0]
    return a


def at(volume: CTVolume, x: float, y: float, z: float) -> np.ndarray:
    return volume.voxel_to_mm([x, y, z])


def test_lungs_are_found_and_the_midline_is_the_body_centre():
    volume = CTVolume(chest(), affine(shift_x=10.0))
    lungs = LungMap(volume)
    assert lungs.found and "lungs found by threshold" in lungs.basis
    assert lungs.midline_mm == pytest.approx(10.0, abs=1.0)
    assert 360 < lungs.lung_ml < 440  # two elliptic cylinders, radii 20 x 32 mm, 100 mm high: 0.4 L
    bottom, top = at(volume, 0, 0, LUNG_SLICES[0])[2], at(volume, 0, 0, LUNG_SLICES[1])[2]
    for side in ("right", "left"):
        assert lungs.extents[side] == pytest.approx((bottom, top), abs=SPACING[2])


@pytest.mark.parametrize("flip_x", [False, True])
def test_side_follows_lps_x_not_the_column(flip_x):
    volume = CTVolume(chest(), affine(flip_x=flip_x))
    lungs = LungMap(volume)
    low = lungs.describe(at(volume, LOW_COLUMNS, 30, 30))
    high = lungs.describe(at(volume, HIGH_COLUMNS, 30, 30))
    # Identity direction: low columns have smaller LPS x = the patient's right. Flipped: the reverse.
    assert (low.centre_mm[0] > high.centre_mm[0]) == flip_x
    assert (low.side, high.side) == (("left", "right") if flip_x else ("right", "left"))


@pytest.mark.parametrize("flip_z", [False, True])
def test_zones_are_thirds_of_the_lung_height(flip_z):
    volume = CTVolume(chest(), affine(flip_z=flip_z))
    lungs = LungMap(volume)
    zones = [lungs.describe(at(volume, LOW_COLUMNS, 30, k)).zone for k in (11, 16, 27, 33, 43, 48)]
    expected = ["lower", "lower", "middle", "middle", "upper", "upper"]
    assert zones == (expected[::-1] if flip_z else expected)  # flipped z: slice index runs to the feet
    beyond = lungs.describe(at(volume, LOW_COLUMNS, 30, 0 if not flip_z else 59))
    assert beyond.zone == "lower" and "below the right lung's extent" in beyond.basis


def test_stomach_gas_does_not_stretch_the_lung():
    volume = CTVolume(chest(with_stomach_gas=True), affine())
    bottom = LungMap(volume).extents["left"][0]
    assert bottom == pytest.approx(at(volume, 0, 0, LUNG_SLICES[0])[2], abs=SPACING[2])


def test_slice_numbers_are_one_based_and_rounded():
    volume = CTVolume(chest(), affine(flip_z=True))
    lungs = LungMap(volume)
    assert lungs.describe(at(volume, LOW_COLUMNS, 30, 0)).slice == 1
    assert lungs.describe(at(volume, LOW_COLUMNS, 30, 14.6)).slice == 16
    where = lungs.describe(at(volume, LOW_COLUMNS, 30, 44))
    assert where.slice == 45 and where.text == "right lower zone, slice 45"  # slice 44 is low with flip_z
    assert where.centre_mm == pytest.approx(tuple(at(volume, LOW_COLUMNS, 30, 44)))


def test_without_lungs_the_volume_extent_stands_in():
    volume = CTVolume(np.full((9, 8, 8), 40, np.int16), np.diag([1.0, 1.0, 1.0, 1.0]))
    lungs = LungMap(volume)
    assert not lungs.found and lungs.basis.startswith("no lungs found")
    right = lungs.describe([1.0, 4.0, 0.0])
    left = lungs.describe([6.0, 4.0, 8.0])
    assert (right.side, right.zone, right.slice) == ("right", "lower", 1)
    assert (left.side, left.zone, left.slice) == ("left", "upper", 9)
    assert lungs.describe([6.0, 4.0, 4.0]).zone == "middle"
    assert "volume's own craniocaudal extent" in left.basis
    air = CTVolume(np.full((9, 8, 8), -1000, np.int16), np.eye(4))
    assert describe_location(air, [2.0, 2.0, 2.0]).basis.startswith("no lungs found")


def test_points_outside_the_volume_or_not_points_are_refused():
    lungs = LungMap(CTVolume(chest(), affine()))
    with pytest.raises(ValueError, match="outside the volume"):
        lungs.describe([0.0, 0.0, 10_000.0])
    with pytest.raises(ValueError, match="three finite"):
        lungs.describe([0.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="three finite"):
        lungs.describe([0.0, 0.0])


def test_every_demo_nodule_gets_the_side_of_its_x_and_a_zone():
    from core.imaging.open_study import open_study
    from core.phantom.demo import demo_markers, demo_study

    folder = demo_study()
    volume, _ = open_study(folder / "CT")
    body = volume.array[volume.shape[0] // 2] > -400  # the middle axial image: body (and table)
    columns = np.nonzero(body)[1]
    body_x = float(volume.voxel_to_mm([columns.mean(), 0, 0])[0])
    lungs = LungMap(volume)
    assert lungs.found and abs(lungs.midline_mm - body_x) < 10
    truth = {n["id"]: n for n in json.loads((folder / "ground_truth.json").read_text())["nodules"]}
    markers = demo_markers(folder)
    assert len(markers) >= 5
    for marker in markers:
        where = lungs.describe(marker["centre_mm"])
        x = marker["centre_mm"][0]
        assert abs(x - body_x) > 10, "a demo nodule on the midline would make this test ambiguous"
        assert where.side == ("left" if x > body_x else "right"), marker
        assert where.zone in ZONES
        assert where.slice == truth[marker["name"]]["centre_voxel_zyx"][0] + 1
        assert where.text == f"{where.side} {where.zone} zone, slice {where.slice}"


def test_a_zone_says_it_is_not_a_lobe():
    """Readers name lobes; zones are thirds of a lung's height, and every basis says so."""
    found = LungMap(CTVolume(chest(), affine())).describe(
        at(CTVolume(chest(), affine()), LOW_COLUMNS, 30, 30)
    )
    missing = describe_location(CTVolume(np.full((9, 8, 8), 40, np.int16), np.eye(4)), [1.0, 4.0, 0.0])
    for where in (found, missing):
        assert where.basis.endswith(ZONE_NOTE) and "not a lobe" in ZONE_NOTE
        assert "zone" in where.text and "lobe" not in where.text
