"""The polygon rasteriser: pixel centres strictly inside an outline, exclusion holes cut out."""

from __future__ import annotations

import numpy as np

from core.lidc.grouping import polygon_interior, polygon_outline, reader_masks, region
from tests.core.lidc.lidc_factory import annotation, contour, scan, square_outline, z_of


def test_square_corners_only_fill_its_area_with_the_half_open_rule():
    corners = np.array([(0, 0), (4, 0), (4, 4), (0, 4)])
    inside = polygon_interior(corners, (5, 5), (0, 0))
    assert inside.sum() == 16  # side 4: area 16, centres on the edges counted on one side only
    strict = region(corners, (5, 5), (0, 0), strict=True)
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:4, 1:4] = True
    np.testing.assert_array_equal(strict, expected)
    closed = region(corners, (5, 5), (0, 0), strict=False)
    assert closed.all()


def test_square_drawn_as_a_pixel_chain_with_an_offset():
    outline = np.array(square_outline(100, 200, 5))  # pixels x 100..105, y 200..205
    strict = region(outline, (8, 8), (99, 199), strict=True)
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:6, 2:6] = True  # rows 201..204, columns 101..104
    np.testing.assert_array_equal(strict, expected)
    on_outline = polygon_outline(outline, (8, 8), (99, 199))
    assert on_outline.sum() == 20 and not (on_outline & strict).any()


def test_triangle_strict_interior():
    triangle = np.array([(0, 0), (6, 0), (0, 6)])
    strict = region(triangle, (7, 7), (0, 0), strict=True)
    rows, cols = np.nonzero(strict)
    assert sorted(zip(cols.tolist(), rows.tolist(), strict=True)) == sorted(
        (x, y) for x in range(1, 6) for y in range(1, 6) if x + y < 6
    )
    # The hypotenuse runs through lattice points between its vertices: they are outline, not inside.
    assert polygon_outline(triangle, (7, 7), (0, 0))[3, 3]


def _brute_force_inside(poly: np.ndarray, x: float, y: float) -> bool:
    inside = False
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def test_random_polygons_agree_with_a_brute_force_test_off_the_outline():
    rng = np.random.default_rng(11)
    for _ in range(40):
        # A star-shaped polygon around (10, 10) with integer vertices, possibly concave.
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 12)))
        radii = rng.uniform(2, 9, len(angles))
        poly = np.round(np.c_[10 + radii * np.cos(angles), 10 + radii * np.sin(angles)]).astype(int)
        strict = region(poly, (21, 21), (0, 0), strict=True)
        outline = polygon_outline(poly, (21, 21), (0, 0))
        for y in range(21):
            for x in range(21):
                if not outline[y, x]:
                    assert strict[y, x] == _brute_force_inside(poly, x, y), (poly.tolist(), x, y)


def test_exclusion_contour_cuts_a_hole_including_its_outline():
    outer, hole = square_outline(10, 10, 10), square_outline(13, 13, 4)
    mark = annotation([contour(z_of(2), outer), contour(z_of(2), hole, inclusion=False)])
    masks, (k0, y0, x0) = reader_masks((mark,), scan([mark]))
    assert (k0, y0, x0) == (2, 10, 10)
    ring = masks[0, 0]
    expected = np.zeros((11, 11), dtype=bool)
    expected[1:10, 1:10] = True  # strictly inside the outer outline
    expected[3:8, 3:8] = False  # inside or on the hole's outline (pixels 13..17)
    np.testing.assert_array_equal(ring, expected)


def test_two_inclusion_outlines_on_one_slice_are_united():
    mark = annotation([contour(z_of(4), square_outline(0, 0, 4)), contour(z_of(4), square_outline(10, 0, 4))])
    masks, _ = reader_masks((mark,), scan([mark]))
    assert masks.shape == (1, 1, 5, 15) and masks.sum() == 18  # 3 x 3 twice
