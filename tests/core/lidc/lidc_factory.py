"""Hand-made LIDC scans and annotations for the tests: squares and outlines drawn like the XML's."""

from __future__ import annotations

import itertools

import numpy as np

from core.lidc.annotations import Annotation, Contour, Scan

_ids = itertools.count(1)


def square_outline(x0: int, y0: int, size: int) -> list[tuple[int, int]]:
    """The pixel chain around a square, one point per pixel, as LIDC readers' outlines are stored."""
    x1, y1 = x0 + size, y0 + size
    top = [(x, y0) for x in range(x0, x1)]
    right = [(x1, y) for y in range(y0, y1)]
    bottom = [(x, y1) for x in range(x1, x0, -1)]
    left = [(x0, y) for y in range(y1, y0, -1)]
    return top + right + bottom + left


def contour(z: float, points, inclusion: bool = True) -> Contour:
    return Contour(float(z), inclusion, np.asarray(points, dtype=np.int32).reshape(-1, 2))


def annotation(
    contours, malignancy: int = 3, reader_id: str = "IL057_1", scan_id: int = 1, annotation_id=None
):
    """An annotation with all ratings 1 but malignancy (ids count up across the session)."""
    ratings = (1, 1, 1, 1, 1, 1, 1, 1, malignancy)
    return Annotation(annotation_id or next(_ids), scan_id, reader_id, ratings, tuple(contours))


def cube(x0: int, y0: int, size: int, slices, z_of, **kwargs) -> Annotation:
    """A reader's mark drawn as the same square on several slices."""
    return annotation([contour(z_of(k), square_outline(x0, y0, size)) for k in slices], **kwargs)


def scan(annotations, slices: int = 20, thickness: float = 2.5, spacing: float = 0.7, z0: float = -100.0):
    """A scan with evenly spaced slices (z = z0 + k * thickness) holding ``annotations``."""
    z = z0 + thickness * np.arange(slices, dtype=np.float64)
    return Scan(7, "LIDC-IDRI-0042", "1.2.3.4", thickness, spacing, z, tuple(annotations))


def z_of(k: int, thickness: float = 2.5, z0: float = -100.0) -> float:
    return z0 + thickness * k
