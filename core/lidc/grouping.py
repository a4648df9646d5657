"""Group the readers' annotations of a scan into nodules, and measure each nodule from its contours.

Grouping follows pylidc 0.2.3's ``Scan.cluster_annotations`` (its defaults), re-implemented here:

* every contour point becomes a voxel index (row, column, k), k the scan slice nearest its z;
* the distance between two annotations is the smallest Euclidean distance between their points, in
  those index units (pylidc's metric "min"); two annotations are linked when it is <= the tolerance,
  which starts at the scan's slice thickness in mm (pylidc compares index units with mm: we keep it);
* nodules are the connected components of the links; while any has more than four annotations (LIDC
  had four readers), the tolerance is multiplied by 0.9 and the components recomputed, giving up below
  0.1 (the few places where two readers' marks touch stay merged, as in pylidc).

Masks are rasterised on the scan's own grid: pixel (row r, column c) is the point x = c, y = r of the
XML's coordinates, i.e. contour points are pixel centres. A reader's region on a slice is the set of
pixels whose centres lie strictly inside one of their inclusion outlines (LIDC readers drew the
outline just outside the nodule; pylidc also drops the outline pixels by default), minus every pixel
inside or on an exclusion outline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.lidc.annotations import Annotation, Scan

MAX_READERS = 4
SHRINK_FACTOR = 0.9
MIN_TOLERANCE = 0.1


def index_points(annotation: Annotation, slice_z: np.ndarray) -> np.ndarray:
    """All contour points of an annotation as an ``(n, 3)`` int array of (row, column, k)."""
    blocks = []
    for contour in annotation.contours:
        k = nearest_slice(slice_z, contour.z)
        points = contour.points
        blocks.append(np.column_stack([points[:, 1], points[:, 0], np.full(len(points), k)]))
    return np.concatenate(blocks).astype(np.int32)


def nearest_slice(slice_z: np.ndarray, z: float) -> int:
    """Index of the slice whose z is nearest ``z`` (the first one on a tie, as ``argmin`` picks)."""
    return int(np.abs(slice_z - z).argmin())


def min_distance(a: np.ndarray, b: np.ndarray, limit: float) -> float:
    """The smallest distance between two point sets, exact when it is <= ``limit``, else >= limit.

    The tolerance only ever shrinks from its first value, so points further than ``limit`` along any
    axis from the other set's bounding box can be left out, and pairs of sets with nothing left are
    answered ``inf``: that keeps the whole database to seconds.
    """
    reach = math.floor(limit)  # coordinates are integers: |difference| <= limit iff <= floor(limit)
    a = a[np.all((a >= b.min(0) - reach) & (a <= b.max(0) + reach), axis=1)]
    if not len(a):
        return math.inf
    b = b[np.all((b >= a.min(0) - reach) & (b <= a.max(0) + reach), axis=1)]
    if not len(b):
        return math.inf
    best = None
    step = max(1, 1_000_000 // len(b))
    for start in range(0, len(a), step):
        part = a[start : start + step]
        # One (n, m) plane per axis: much faster than reducing an (n, m, 3) array over its last axis.
        squared = (part[:, None, 0] - b[None, :, 0]) ** 2
        squared += (part[:, None, 1] - b[None, :, 1]) ** 2
        squared += (part[:, None, 2] - b[None, :, 2]) ** 2
        smallest = int(squared.min())
        best = smallest if best is None else min(best, smallest)
    return math.sqrt(best)


def distance_matrix(points: list[np.ndarray], limit: float) -> np.ndarray:
    """pylidc's "min" distance between every pair of annotations (``inf`` for pairs beyond ``limit``)."""
    count = len(points)
    low = np.array([p.min(0) for p in points])
    high = np.array([p.max(0) for p in points])
    # Bounding-box gaps first: most pairs are different nodules far apart and need no point at all.
    gap = np.maximum(0, np.maximum(low[:, None] - high[None], low[None] - high[:, None]))
    near = np.sqrt((gap.astype(np.float64) ** 2).sum(-1)) <= limit
    distance = np.full((count, count), math.inf)
    np.fill_diagonal(distance, 0.0)
    for i, j in zip(*np.nonzero(np.triu(near, 1)), strict=True):
        distance[i, j] = distance[j, i] = min_distance(points[i], points[j], limit)
    return distance


def _components(adjacent: np.ndarray) -> list[list[int]]:
    """Connected components of a symmetric bool matrix, each sorted, ordered by their first node."""
    seen = np.zeros(len(adjacent), dtype=bool)
    groups = []
    for start in range(len(adjacent)):
        if seen[start]:
            continue
        stack, members = [start], []
        seen[start] = True
        while stack:
            node = stack.pop()
            members.append(node)
            for other in np.flatnonzero(adjacent[node] & ~seen):
                seen[other] = True
                stack.append(int(other))
        groups.append(sorted(members))
    return groups


def group_annotations(scan: Scan) -> list[tuple[Annotation, ...]]:
    """The scan's annotations grouped into nodules, ordered as pylidc orders its clusters.

    Order: by the mean over the group of each annotation's mean contour-point slice index, ties by
    the smallest annotation id (pylidc sorts by the first key, stable in component order).
    """
    annotations = sorted(scan.annotations, key=lambda a: a.id)
    if not annotations:
        return []
    points = [index_points(a, scan.slice_z) for a in annotations]
    tolerance = scan.slice_thickness
    distance = distance_matrix(points, tolerance)
    groups = _components(distance <= tolerance)
    while any(len(group) > MAX_READERS for group in groups):
        tolerance *= SHRINK_FACTOR
        if tolerance < MIN_TOLERANCE:
            break  # cannot be split by distance alone: keep the last grouping, as pylidc does
        groups = _components(distance <= tolerance)

    def order(group: list[int]) -> tuple[float, int]:
        mean_k = sum(float(points[i][:, 2].mean()) for i in group) / len(group)
        return mean_k, annotations[group[0]].id

    return [tuple(annotations[i] for i in group) for group in sorted(groups, key=order)]


def consensus_threshold(n_readers: int) -> int:
    """Readers needed for a voxel to be in the consensus: at least half, so 1 of 1, 1 of 2, 2 of 3,
    2 of 4 (pylidc's ``consensus(clevel=0.5)`` keeps a voxel when the fraction is >= 0.5)."""
    return (n_readers + 1) // 2


def polygon_interior(points: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside the closed polygon (even-odd rule), a ``(rows, cols)`` mask.

    Args:
        points: ``(n, 2)`` vertices (x, y) = (column, row); the last one joins the first.
        shape: the output's (rows, columns).
        offset: (x, y) of output pixel [0, 0], so pixel [r, c] is the point (x0 + c, y0 + r).

    Centres exactly on an edge follow the half-open rule (counted on the left and top edges, not on
    the right and bottom ones, so an axis-aligned integer square of side s fills s * s pixels);
    :func:`region` removes them whenever a strict interior is wanted.
    """
    rows, cols = shape
    x = points[:, 0].astype(np.float64) - offset[0]
    y = points[:, 1].astype(np.int64) - offset[1]
    x_next, y_next = np.roll(x, -1), np.roll(y, -1)
    # Scanline at row r crosses an edge when low <= r < high: a vertex shared by two edges that go
    # on the same way counts once, a peak or a valley twice, so parity stays right.
    low = np.clip(np.minimum(y, y_next), 0, rows)
    high = np.clip(np.maximum(y, y_next), 0, rows)
    spans = np.maximum(high - low, 0)
    edge = np.repeat(np.arange(len(x)), spans)
    row = low[edge] + (np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans))
    t = (row - y[edge]) / (y_next[edge] - y[edge])
    crossing = x[edge] + t * (x_next[edge] - x[edge])
    # A pixel is inside when an odd number of crossings lie strictly left of its centre: toggle at
    # the first column right of each crossing, then a running sum along the row gives the parity.
    column = np.clip(np.floor(crossing).astype(np.int64) + 1, 0, cols)
    toggles = np.bincount(row * (cols + 1) + column, minlength=rows * (cols + 1))
    return (np.cumsum(toggles.reshape(rows, cols + 1), axis=1)[:, :cols] % 2).astype(bool)


def polygon_outline(points: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie on the closed polyline (every lattice point of every edge)."""
    start = points.astype(np.int64)
    delta = np.roll(start, -1, axis=0) - start
    steps = np.maximum(np.gcd(np.abs(delta[:, 0]), np.abs(delta[:, 1])), 1)
    edge = np.repeat(np.arange(len(start)), steps)
    t = np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)
    xy = start[edge] + (delta[edge] // steps[edge, None]) * t[:, None] - np.asarray(offset)
    mask = np.zeros(shape, dtype=bool)
    keep = (xy[:, 0] >= 0) & (xy[:, 0] < shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < shape[0])
    mask[xy[keep, 1], xy[keep, 0]] = True
    return mask


def region(points: np.ndarray, shape: tuple[int, int], offset: tuple[int, int], strict: bool) -> np.ndarray:
    """Strict interior (``strict``) or closed region (interior plus outline) of a polygon."""
    outline = polygon_outline(points, shape, offset)
    interior = polygon_interior(points, shape, offset)
    return interior & ~outline if strict else interior | outline


def annotation_diameter(annotation: Annotation, pixel_spacing: float) -> float:
    """pylidc's ``Annotation.diameter``: the largest distance between two points of one contour, in mm.

    Every contour counts (pylidc does not skip exclusion outlines); 0.0 if no contour has two points.
    """
    best = 0
    for contour in annotation.contours:
        p = contour.points.astype(np.int64)
        if len(p) > 1:
            best = max(best, int(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1).max()))
    return math.sqrt(best) * pixel_spacing


@dataclass(frozen=True, eq=False)
class NoduleGeometry:
    """A nodule's consensus mask and measures, in the frames of ``core.lidc.records.LidcNodule``."""

    annotations: tuple[Annotation, ...]
    mask: np.ndarray = field(repr=False)  # (z, y, x) bool, cropped to the consensus
    mask_origin_mm: tuple[float, float, float]
    mask_spacing: tuple[float, float, float]
    slice_z_mm: tuple[float, ...]  # the real z of each mask slice (mask_spacing z is their median step)
    centroid_mm: tuple[float, float, float]
    diameter_mm: float
    bbox_mm: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


def reader_masks(group: tuple[Annotation, ...], scan: Scan) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Each reader's region on the group's common grid: ``(readers, z, y, x)`` bool, and (k0, y0, x0)."""
    ks = [[nearest_slice(scan.slice_z, c.z) for c in a.contours] for a in group]
    all_points = np.concatenate([c.points for a in group for c in a.contours])
    (x0, y0), (x1, y1) = all_points.min(0), all_points.max(0)
    k0 = min(min(k) for k in ks)
    depth = max(max(k) for k in ks) - k0 + 1
    shape, offset = (int(y1 - y0 + 1), int(x1 - x0 + 1)), (int(x0), int(y0))
    masks = np.zeros((len(group), depth, *shape), dtype=bool)
    for reader, (annotation, slices) in enumerate(zip(group, ks, strict=True)):
        pairs = list(zip(annotation.contours, slices, strict=True))
        for contour, k in pairs:
            if contour.inclusion:
                masks[reader, k - k0] |= region(contour.points, shape, offset, strict=True)
        for contour, k in pairs:  # holes last, so an exclusion wins over any inclusion
            if not contour.inclusion:
                masks[reader, k - k0] &= ~region(contour.points, shape, offset, strict=False)
    return masks, (k0, int(y0), int(x0))


def nodule_geometry(group: tuple[Annotation, ...], scan: Scan) -> NoduleGeometry:
    """Consensus mask, centroid, diameter and bounding box of one group of annotations.

    * mask: voxels inside the regions of at least :func:`consensus_threshold` readers, cropped to its
      own extent (if no voxel reaches it, e.g. outlines too thin to enclose a pixel centre, the union
      of all readers' regions, and failing that the outline pixels themselves, keep the record usable);
    * centroid: mean position of the mask voxels (x = column * spacing, y = row * spacing, real z);
    * diameter: mean over readers of pylidc's annotation diameter (largest in-plane point distance);
    * bbox: the first and last mask voxel centres along each axis.
    """
    masks, (k0, y0, x0) = reader_masks(group, scan)
    counts = masks.sum(0, dtype=np.int16)
    mask = counts >= consensus_threshold(len(group))
    if not mask.any():
        mask = counts > 0
    if not mask.any():
        mask = _outline_voxels(group, scan, masks.shape[1:], (k0, y0, x0))
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    (kz, ky, kx) = [(int(n[0]), int(n[-1]) + 1) for n in nz]
    mask = np.ascontiguousarray(mask[kz[0] : kz[1], ky[0] : ky[1], kx[0] : kx[1]])
    spacing = scan.pixel_spacing
    slice_z = scan.slice_z[k0 + kz[0] : k0 + kz[1]]
    # One-slice nodules take the scan's usual step; no nodule in LIDC spans an uneven step.
    steps = np.diff(slice_z) if len(slice_z) > 1 else np.diff(scan.slice_z)
    z_spacing = float(np.median(steps)) if len(steps) else scan.slice_thickness
    origin = ((x0 + kx[0]) * spacing, (y0 + ky[0]) * spacing, float(slice_z[0]))
    # Exact sums of integers, then one division: the same bytes on every platform and numpy.
    zz, yy, xx = np.nonzero(mask)
    n = len(zz)
    centroid = (
        (x0 + kx[0] + int(xx.sum()) / n) * spacing,
        (y0 + ky[0] + int(yy.sum()) / n) * spacing,
        math.fsum(float(slice_z[k]) * int(c) for k, c in enumerate(np.bincount(zz))) / n,
    )
    shape = mask.shape
    bbox = (
        (origin[0], origin[0] + (shape[2] - 1) * spacing),
        (origin[1], origin[1] + (shape[1] - 1) * spacing),
        (float(slice_z[0]), float(slice_z[-1])),
    )
    diameters = [annotation_diameter(a, spacing) for a in group]
    return NoduleGeometry(
        annotations=group,
        mask=mask,
        mask_origin_mm=origin,
        mask_spacing=(spacing, spacing, z_spacing),
        slice_z_mm=tuple(float(z) for z in slice_z),
        centroid_mm=centroid,
        diameter_mm=math.fsum(diameters) / len(diameters),
        bbox_mm=bbox,
    )


def _outline_voxels(
    group: tuple[Annotation, ...], scan: Scan, shape: tuple[int, int, int], start: tuple[int, int, int]
) -> np.ndarray:
    """Every outline's pixels: the last resort for marks that enclose no pixel centre (never empty)."""
    k0, y0, x0 = start
    mask = np.zeros(shape, dtype=bool)
    for annotation in group:
        for contour in annotation.contours:
            k = nearest_slice(scan.slice_z, contour.z) - k0
            mask[k] |= polygon_outline(contour.points, shape[1:], (x0, y0))
    return mask
