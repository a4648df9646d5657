"""Per-nodule consensus mask, centroid, diameter and bounding box; the label rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.lidc.grouping import annotation_diameter, consensus_threshold, nodule_geometry
from core.lidc.records import LidcNodule
from core.nodule.ratings import label_for
from tests.core.lidc.lidc_factory import annotation, contour, cube, scan, z_of


def test_at_least_half_the_readers():
    assert [consensus_threshold(n) for n in (1, 2, 3, 4)] == [1, 1, 2, 2]


def test_three_of_four_readers_in_two_of_four_in_one_of_four_out():
    # Nested squares: the smallest is inside all four readers' regions, the largest in one only.
    marks = [cube(100 - i, 100 - i, 4 + 2 * i, [5], z_of) for i in range(4)]
    geometry = nodule_geometry(tuple(marks), scan(marks))
    # Reader i's interior is pixels 101-i .. 103+i; two readers (i = 2, 3) reach 99 .. 105.
    assert geometry.mask.shape == (1, 7, 7) and geometry.mask.all()
    assert geometry.mask_origin_mm == pytest.approx((99 * 0.7, 99 * 0.7, z_of(5)))


def test_one_of_two_readers_is_enough():
    first, second = cube(0, 0, 4, [3], z_of), cube(2, 0, 4, [3], z_of)
    geometry = nodule_geometry((first, second), scan([first, second]))
    # Union of pixels 1..3 and 3..5 along x, rows 1..3.
    assert geometry.mask.shape == (1, 3, 5) and geometry.mask.sum() == 15


def test_two_of_three_readers():
    marks = [cube(0, 0, 4, [3], z_of), cube(2, 0, 4, [3], z_of), cube(40, 40, 4, [3], z_of)]
    geometry = nodule_geometry(tuple(marks), scan(marks))
    assert geometry.mask.shape == (1, 3, 1) and geometry.mask.sum() == 3  # only column 3 is shared


def test_geometry_uses_real_slice_positions_and_pixel_spacing():
    marks = [cube(20, 30, 6, [4, 5, 6], z_of), cube(20, 30, 6, [5, 6, 7], z_of)]
    geometry = nodule_geometry(tuple(marks), scan(marks, spacing=0.5))
    assert geometry.mask.shape == (4, 5, 5)  # union of slices 4..7, interior pixels 21..25
    assert geometry.mask_spacing == (0.5, 0.5, 2.5)
    assert geometry.slice_z_mm == tuple(z_of(k) for k in range(4, 8))
    assert geometry.centroid_mm == pytest.approx((23 * 0.5, 33 * 0.5, (z_of(5) + z_of(6)) / 2))
    assert geometry.bbox_mm == ((10.5, 12.5), (15.5, 17.5), (z_of(4), z_of(7)))
    # Diameter: pylidc's per-annotation largest in-plane point distance (the square's diagonal).
    assert geometry.diameter_mm == pytest.approx(6 * math.sqrt(2) * 0.5)


def test_diameter_is_the_mean_of_the_readers():
    small, large = cube(0, 0, 3, [2], z_of), cube(0, 0, 5, [2], z_of)
    geometry = nodule_geometry((small, large), scan([small, large]))
    assert geometry.diameter_mm == pytest.approx((3 + 5) * math.sqrt(2) * 0.7 / 2)
    assert annotation_diameter(small, 1.0) == pytest.approx(3 * math.sqrt(2))


def test_outlines_enclosing_no_pixel_centre_still_give_a_mask():
    line = annotation([contour(z_of(1), [(5, 5), (6, 6), (7, 7), (6, 6)])])
    geometry = nodule_geometry((line,), scan([line]))
    np.testing.assert_array_equal(geometry.mask[0], np.eye(3, dtype=bool))


def test_label_rule():
    assert [label_for(m) for m in (1, 2.99, 3, 3.01, 5)] == [
        "benign", "benign", "indeterminate", "malignant", "malignant",
    ]  # fmt: skip

    def nodule(malignancy):
        ratings = {"malignancy": malignancy} | {name: (1,) * len(malignancy) for name in ("texture",)}
        return LidcNodule(
            "x", "LIDC-IDRI-0001", 1, "1.2", tuple(range(len(malignancy))), ratings,
            (0.0, 0.0, 0.0), 5.0, ((0, 1), (0, 1), (0, 1)), np.ones((1, 1, 1), bool),
        )  # fmt: skip

    assert nodule((3, 4)).label == "malignant"
    assert nodule((2, 3, 4)).label == "indeterminate"
    assert nodule((2, 3, 3, 3)).label == "benign"
    assert nodule((3,)).label == "indeterminate"
