"""Grouping readers' marks into nodules: pylidc's rule (min point distance <= slice thickness, in index
units; shrink the tolerance while a group has more than four marks), on hand-made scans."""

from __future__ import annotations

import math

import numpy as np

from core.lidc.grouping import group_annotations, min_distance
from tests.core.lidc.lidc_factory import cube, scan, z_of


def ids(groups):
    return sorted(sorted(a.id for a in group) for group in groups)


def test_two_readers_same_nodule_different_reader_ids():
    first = cube(100, 100, 8, range(4, 8), z_of, reader_id="Nodule 001")
    second = cube(101, 99, 9, range(5, 9), z_of, reader_id="IL057_127364")
    assert ids(group_annotations(scan([first, second]))) == [sorted([first.id, second.id])]


def test_two_distinct_nodules_nearby_stay_apart_and_touching_ones_merge():
    # 4 pixels between the outlines (> 2.5): two nodules; 2 pixels (<= 2.5): one.
    left, right = cube(100, 100, 6, [5], z_of), cube(110, 100, 6, [5], z_of)
    assert len(group_annotations(scan([left, right]))) == 2
    near = cube(108, 100, 6, [5], z_of)
    assert len(group_annotations(scan([left, near]))) == 1


def test_one_reader_marking_two_nodules_and_others_matching_them():
    a1, a2 = (
        cube(50, 50, 6, [3, 4], z_of, reader_id="r1"),
        cube(200, 220, 10, [10, 11, 12], z_of, reader_id="r1"),
    )
    b1, b2 = cube(51, 50, 6, [3], z_of, reader_id="r2"), cube(201, 221, 9, [11], z_of, reader_id="r2")
    c2 = cube(199, 219, 10, [10, 11], z_of, reader_id="r3")
    groups = group_annotations(scan([a1, b2, a2, c2, b1]))
    assert ids(groups) == [sorted([a1.id, b1.id]), sorted([a2.id, b2.id, c2.id])]
    # pylidc's order: by mean slice index, the lower nodule first.
    assert [a.id for a in groups[0]] == sorted([a1.id, b1.id])


def test_distance_is_in_index_units_not_mm():
    # Same square on adjacent slices: 1 slice index apart, whatever the slice spacing in mm.
    thick = scan([cube(10, 10, 4, [2], z_of), cube(10, 10, 4, [3], z_of)], thickness=2.5)
    assert len(group_annotations(thick)) == 1

    # With a 0.6 mm slice thickness the tolerance (0.6) is below one index step: not linked.
    def z_thin(k):
        return z_of(k, thickness=0.6)

    thin = scan([cube(10, 10, 4, [2], z_thin), cube(10, 10, 4, [3], z_thin)], thickness=0.6)
    assert len(group_annotations(thin)) == 2


def test_tolerance_shrinks_until_no_group_has_more_than_four_marks():
    # Three marks of one nodule and two of another, 2 pixels apart: linked at 2.5, five in a group;
    # 2.5 * 0.9**3 = 1.82 < 2 separates them.
    first = [cube(100 + i, 100, 6, [5], z_of) for i in range(3)]
    second = [cube(110 + i, 100, 6, [5], z_of) for i in range(2)]
    groups = group_annotations(scan(first + second))
    assert ids(groups) == [sorted(a.id for a in first), sorted(a.id for a in second)]


def test_groups_that_cannot_be_split_stay_whole():
    # Five identical marks: distance 0 never exceeds the tolerance, so pylidc gives up (and so do we).
    marks = [cube(100, 100, 6, [5], z_of) for _ in range(5)]
    assert len(group_annotations(scan(marks))) == 1


def test_min_distance_exact_within_limit_and_never_below_it_beyond():
    a = np.array([[0, 0, 0], [0, 5, 0]], dtype=np.int32)
    b = np.array([[3, 4, 1], [40, 40, 9]], dtype=np.int32)
    assert min_distance(a, b, 10.0) == math.sqrt(9 + 1 + 1)  # (0, 5, 0) to (3, 4, 1)
    assert min_distance(a, b, 2.0) == math.inf
    assert min_distance(a, a, 0.0) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(50):
        p, q = rng.integers(0, 30, (40, 3)).astype(np.int32), rng.integers(10, 40, (30, 3)).astype(np.int32)
        exact = float(np.sqrt(((p[:, None] - q[None]) ** 2).sum(-1).min()))
        limit = float(rng.uniform(0, 6))
        found = min_distance(p, q, limit)
        assert found == exact if exact <= limit else found >= limit


def test_empty_and_single_annotation_scans():
    assert group_annotations(scan([])) == []
    only = cube(10, 10, 4, [2], z_of)
    assert ids(group_annotations(scan([only]))) == [[only.id]]
