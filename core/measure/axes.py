"""The numbers read from one nodule's mask: ``measure_nodule(volume, mask) -> NoduleMeasurement``.

Definitions (the mask is the nodule; HU are the CT's own, unsmoothed unless said):

* **volume**: partial-volume corrected (``core.measure.segment.partial_volume_mm3``; the partial-
  volume analysis of Kuhnigk et al., IEEE Trans Med Imaging 2006): the mask's interior counts whole
  voxels; its surface voxels and a band of ``BAND_MM`` = 1.5 mm around it count by their share of
  nodule tissue, ``(HU - parenchyma) / (tissue - parenchyma)`` at most 1, so the tissue of a blurred
  edge and what a tight mask left out are counted, and a sub-voxel shift of the nodule against the
  grid barely moves it (a voxel count moves by a whole layer; QIBA's repeatability concern). Dense
  tissue the band meets that reaches beyond it (the wall, a vessel, a reader's cut deeper than the
  band) is left out. Measured on phantoms (``bench/bench_segmentation.py``, README "Measuring
  nodules"). The plain voxel count is ``mask.voxels`` x the voxel volume (and is what is used where
  the mask's surroundings hold no contrast to read a share from).
* **effective diameter**: the diameter of the sphere of that volume, ``(6 V / pi) ** (1/3)``.
* **long axis** (Lung-RADS v2022, ACR "Lung-RADS v2022" summary, measurement notes): the longest
  diameter on the axial, coronal or sagittal image where it is greatest; **short axis**: the longest
  diameter perpendicular to it on the same image; **mean diameter**: (long + short) / 2 rounded to
  0.1 mm (half up). Diameters run between voxel *edges*, not centres: the distance between the two
  end voxels' centres plus one voxel's width along that line (the voxel taken as the ellipse inscribed
  in it: its side along an axis, no corner-to-corner bonus on a diagonal), so a 1-voxel object is one
  voxel wide. The short axis: on lines perpendicular to the long axis (every half pixel), the span of
  the voxels each line passes through plus one voxel's width. Long axes within half a voxel of each
  other on two planes are a tie (raster noise): the plane with the longer short axis wins (where the
  nodule looks largest), then axial before coronal before sagittal.
* **solid component**: mask voxels whose HU, averaged over their 3 x 3 in-plane neighbours within the
  mask (the noise of a low-dose scan would otherwise speckle ground glass; the lung outside is left out
  so that it does not darken a thin nodule), are >= ``SOLID_HU`` = -300 HU. Pure
  ground glass sits at about -750 to -350 HU and soft tissue at about -100 to +60 HU; semi-automatic
  solid-part measurement in the subsolid-nodule literature commonly cuts near -300 HU, which keeps
  both clear of the cut with room for noise and partial volume. Its **mean diameter** is measured by
  the same long/short rule on its own largest image.
* **texture** from the solid share of the mask's *interior*: the voxels more than ``RIM_MM`` = 1.5 mm
  in-plane from its edge (half the deepest voxel's depth in a smaller nodule), since partial volume
  and a blurred margin make even a solid nodule's edge read as ground glass for about a millimetre:
  share < ``GROUND_GLASS_SHARE`` (2 %) ground glass, >= ``SOLID_SHARE`` (90 %) solid, part-solid
  between. ``solid_diameter_mm`` is given for part-solid nodules only.
* **mean / max HU** over the mask; **calcification fraction**: the share of mask voxels >=
  ``CALCIUM_HU`` = 200 HU (calcium; benign calcified nodules measure above about 160-200 HU on CT
  densitometry, and no soft tissue does without contrast).
* **touches pleura**: the mask's 1-voxel shell (6-connected) meets chest wall or mediastinum. Locally,
  in a box around the mask, "wall" is tissue (>= -300 HU, the nodule itself left out) that a ball of
  radius ``WALL_RADIUS_MM`` = 4 mm fits into: its morphological opening, done with two distance
  transforms. Vessels and bronchial walls (thinner than 8 mm) and the lung's air fall out of it, so
  what is left is outside the lungs: the local lung mask is the box less this wall.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.measure.mask import NoduleMask
from core.measure.measurement import PLANES, NoduleMeasurement
from core.measure.segment import partial_volume_mm3
from core.volume import CTVolume

SOLID_HU = -300.0
CALCIUM_HU = 200.0
TISSUE_HU = -300.0  # chest wall, mediastinum (fat at about -100 HU included)
WALL_RADIUS_MM = 4.0
GROUND_GLASS_SHARE = 0.02
DIRECTIONS = 45  # caliper directions per 180 degrees: 4 degree steps pick the pair; its own distance counts
SOLID_SHARE = 0.90
RIM_MM = 1.5

AXIAL_SERIES = {"axial": 0, "coronal": 1, "sagittal": 2}  # each plane's normal (z, y, x) array axis


def measure_nodule(volume: CTVolume, mask: NoduleMask) -> NoduleMeasurement:
    """The measurements of the nodule ``mask`` in ``volume`` (definitions in the module docstring).

    Raises ValueError when the mask holds no voxel inside the volume.
    """
    shape = volume.shape
    clipped = mask.clipped(shape)
    warnings = list(mask.warnings)
    if clipped.voxels == 0:
        raise ValueError("the nodule mask holds no voxel inside the volume")
    if clipped.voxels < mask.voxels:
        warnings.append("the mask reaches past the volume's edge: its measurements are cut there")
    clipped = clipped.cropped()
    box = clipped.mask
    hu = volume.array[clipped.region]
    sx, sy, sz = volume.spacing
    spacing = np.array([sz, sy, sx])
    voxel_mm3 = float(np.prod(spacing))

    volume_mm3 = partial_volume_mm3(volume, clipped)
    normals = plane_normals(volume)
    long_axis, short_axis, plane, index, long_ends, short_ends = lung_rads_axes(box, spacing, normals)
    origin = np.array(clipped.origin_zyx, dtype=np.float64)

    def to_mm(zyx: np.ndarray) -> tuple[float, float, float]:
        return tuple(float(v) for v in volume.voxel_to_mm((zyx + origin)[::-1]))

    smooth = _mean_within(hu, box)
    solid = box & (smooth >= SOLID_HU)
    core = _interior(box, spacing)
    share = float(solid[core].sum()) / float(core.sum())
    texture = "part-solid"
    if share < GROUND_GLASS_SHARE or share >= SOLID_SHARE:
        texture = "ground glass" if share < GROUND_GLASS_SHARE else "solid"
    solid_diameter = None
    if texture == "part-solid" and solid.any():
        solid_long, solid_short, *_ = lung_rads_axes(solid, spacing, normals)
        solid_diameter = _mean_diameter(solid_long, solid_short)

    values = hu[box].astype(np.float64)
    return NoduleMeasurement(
        volume_mm3=volume_mm3,
        effective_diameter_mm=(6.0 * volume_mm3 / math.pi) ** (1.0 / 3.0),
        long_axis_mm=long_axis,
        short_axis_mm=short_axis,
        mean_diameter_mm=_mean_diameter(long_axis, short_axis),
        plane=plane,
        slice_index=int(index + clipped.origin_zyx[normals[plane]]),
        long_axis_ends_mm=(to_mm(long_ends[0]), to_mm(long_ends[1])),
        short_axis_ends_mm=(to_mm(short_ends[0]), to_mm(short_ends[1])),
        texture=texture,
        solid_diameter_mm=solid_diameter,
        solid_volume_mm3=float(solid.sum()) * voxel_mm3,
        mean_hu=float(values.mean()),
        max_hu=float(values.max()),
        calcification_fraction=float((values >= CALCIUM_HU).mean()),
        touches_pleura=touches_wall(volume, clipped),
        method=mask.method,
        edited=mask.edited,
        warnings=tuple(warnings),
    )


def plane_normals(volume: CTVolume) -> dict[str, int]:
    """Each anatomical plane's normal array axis (z, y, x), found as the viewer finds its views
    (``core.imaging.mpr.plane``): a series acquired coronally has its coronal images along z."""
    from core.imaging.mpr import plane

    normals = {name: 2 - plane(volume, name).normal for name in PLANES}
    return normals if sorted(normals.values()) == [0, 1, 2] else dict(AXIAL_SERIES)


def lung_rads_axes(box: np.ndarray, spacing_zyx: np.ndarray, normals: dict[str, int] | None = None):
    """Long and short axis (mm) of a bool (z, y, x) mask by the Lung-RADS rule, the plane and slice
    (index in ``box``) where measured, and the axes' end points as fractional (z, y, x) box indices.
    ``normals``: each plane's normal array axis (``plane_normals``; default an axial series).

    Long axes within half the smallest voxel side of the longest are a tie (raster noise): of those
    planes the one with the longer short axis wins, the image where the nodule looks largest."""
    tolerance = float(min(spacing_zyx)) / 2
    normals = normals or AXIAL_SERIES
    candidates = [_plane_longest(box, spacing_zyx, plane, normals[plane]) for plane in PLANES]
    longest = max(c[0] for c in candidates)
    best = None
    for length, plane, k, p, q in candidates:
        if length < longest - tolerance:
            continue
        normal, (ia, ib) = _in_plane(normals[plane])
        sa, sb = float(spacing_zyx[ia]), float(spacing_zyx[ib])
        short, r, s = _perpendicular(np.moveaxis(box, normal, 0)[k], sa, sb, p, q)
        short = min(short, length)
        if best is None or short > best[1]:
            best = (length, short, plane, k, (p, q), (r, s))
    length, short, plane, k, long_ends, short_ends = best
    normal, (ia, ib) = _in_plane(normals[plane])

    def to_zyx(point_mm: np.ndarray) -> np.ndarray:
        zyx = np.zeros(3)
        zyx[normal], zyx[ia], zyx[ib] = k, point_mm[0] / spacing_zyx[ia], point_mm[1] / spacing_zyx[ib]
        return zyx

    return length, short, plane, k, tuple(map(to_zyx, long_ends)), tuple(map(to_zyx, short_ends))


def _in_plane(normal: int) -> tuple[int, tuple[int, int]]:
    """The normal array axis and the two in-plane ones, in (z, y, x) order."""
    first, second = (a for a in range(3) if a != normal)
    return normal, (first, second)


def _plane_longest(box: np.ndarray, spacing_zyx: np.ndarray, plane: str, normal_axis: int):
    """The longest diameter over the slices of one plane: (length, plane, slice, end, end), ends in
    in-plane mm. All slices at once: each row's and column's end voxels (they hold the outline's
    convex hull) projected on ``DIRECTIONS`` directions; the widest caliper gives the slice and the
    pair of voxels, whose own edge-to-edge distance is the diameter."""
    normal, (ia, ib) = _in_plane(normal_axis)
    stack = np.moveaxis(box, normal, 0)  # (slice, a, b)
    count, height, width = stack.shape
    sa, sb = float(spacing_zyx[ia]), float(spacing_zyx[ib])
    rows, cols = np.arange(height), np.arange(width)
    first_b, last_b = stack.argmax(axis=2), width - 1 - stack[:, :, ::-1].argmax(axis=2)
    first_a, last_a = stack.argmax(axis=1), height - 1 - stack[:, ::-1, :].argmax(axis=1)
    has_row, has_col = stack.any(axis=2), stack.any(axis=1)
    along_rows = np.broadcast_to(rows, (count, height))
    along_cols = np.broadcast_to(cols, (count, width))
    pa = np.concatenate([along_rows, along_rows, first_a, last_a], axis=1).astype(np.float32) * sa
    pb = np.concatenate([first_b, last_b, along_cols, along_cols], axis=1).astype(np.float32) * sb
    valid = np.concatenate([has_row, has_row, has_col, has_col], axis=1)
    # an empty row or column stands in as a copy of one of its slice's real points (no effect on width)
    ref = valid.argmax(axis=1)[:, None]
    pa = np.where(valid, pa, np.take_along_axis(pa, ref, 1))
    pb = np.where(valid, pb, np.take_along_axis(pb, ref, 1))
    angles = np.arange(DIRECTIONS) * (np.pi / DIRECTIONS)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cos, sin = directions.astype(np.float32).T
    projection = pa[..., None] * cos + pb[..., None] * sin  # (slice, point, direction)
    top, bottom = projection.argmax(axis=1), projection.argmin(axis=1)
    caliper = (
        np.take_along_axis(projection, top[:, None], 1)[:, 0]
        - np.take_along_axis(projection, bottom[:, None], 1)[:, 0]
    )
    caliper = np.where(has_row.any(axis=1)[:, None], caliper + _width(directions, sa, sb), -np.inf)
    # slices within half a voxel of the longest are a tie: the one with the largest area wins
    per_slice = caliper.max(axis=1)
    tied = per_slice >= per_slice.max() - min(sa, sb) / 2
    k = int(np.argmax(np.where(tied, stack.sum(axis=(1, 2)), -1)))
    d = int(np.argmax(caliper[k]))
    p = np.array([pa[k, bottom[k, d]], pb[k, bottom[k, d]]], dtype=np.float64)
    q = np.array([pa[k, top[k, d]], pb[k, top[k, d]]], dtype=np.float64)
    gap = float(np.hypot(*(q - p)))
    unit = (q - p) / gap if gap > 0 else directions[d]
    half = float(_width(unit, sa, sb)) / 2 * unit
    return gap + 2 * float(np.hypot(*half)), plane, int(k), p - half, q + half


def touches_wall(volume: CTVolume, mask: NoduleMask) -> bool:
    """Whether the mask's 6-connected shell meets chest wall or mediastinum (module docstring)."""
    sx, sy, sz = volume.spacing
    spacing = np.array([sz, sy, sx])
    margin = np.ceil(2 * WALL_RADIUS_MM / spacing).astype(int) + 1
    lo = np.maximum(np.array(mask.origin_zyx) - margin, 0)
    hi = np.minimum(np.add(mask.origin_zyx, mask.mask.shape) + margin, volume.shape)
    region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = np.zeros(tuple(hi - lo), dtype=bool)
    at = tuple(slice(o - a, o - a + n) for o, a, n in zip(mask.origin_zyx, lo, mask.mask.shape, strict=True))
    local[at] = mask.mask
    shell = _shell(local)
    tissue = (volume.array[region] >= TISSUE_HU) & ~local
    if not (shell & tissue).any():
        return False
    # opening by a ball: the tissue deeper than the radius, grown back by the radius
    depth = ndimage.distance_transform_edt(np.pad(tissue, 1, mode="edge"), sampling=spacing)[1:-1, 1:-1, 1:-1]
    deep = depth > WALL_RADIUS_MM
    if not deep.any():
        return False
    reach = ndimage.distance_transform_edt(~deep, sampling=spacing)
    return bool((shell & tissue & (reach <= WALL_RADIUS_MM)).any())


def _mean_diameter(long_axis: float, short_axis: float) -> float:
    # half up, as Lung-RADS rounds; round(..., 6) first so 5.95 held as 5.94999.. still gives 6.0
    return math.floor(round((long_axis + short_axis) / 2.0 * 10.0, 6) + 0.5) / 10.0


def _mean_within(hu: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Each voxel's HU averaged over its 3 x 3 in-plane neighbours inside the mask (the lung around a
    thin nodule must not pull it below the solid cut)."""
    weight = ndimage.uniform_filter(box.astype(np.float32), size=(1, 3, 3), mode="constant")
    total = ndimage.uniform_filter(np.where(box, hu, 0).astype(np.float32), size=(1, 3, 3), mode="constant")
    return total / np.maximum(weight, 1e-6)


def _interior(box: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """The mask's voxels deeper than ``RIM_MM`` in-plane (half the deepest's depth if none is)."""
    # the slices side by side in one 2D image, an empty row and column between them: one 2D distance
    # transform gives each voxel's depth within its own image (a 3D one with a huge slice gap is slower)
    padded = np.pad(box, ((0, 0), (1, 1), (1, 1)))
    count, height, width = padded.shape
    flat = ndimage.distance_transform_edt(padded.reshape(count * height, width), sampling=spacing_zyx[1:])
    depth = flat.reshape(count, height, width)[:, 1:-1, 1:-1]
    return depth > min(RIM_MM, float(depth.max()) / 2)


def _shell(mask: np.ndarray) -> np.ndarray:
    """The voxels 6-adjacent to the mask, outside it."""
    grown = mask.copy()
    for axis in range(3):
        lead = [slice(None)] * 3
        lag = [slice(None)] * 3
        lead[axis], lag[axis] = slice(1, None), slice(None, -1)
        grown[tuple(lead)] |= mask[tuple(lag)]
        grown[tuple(lag)] |= mask[tuple(lead)]
    return grown & ~mask


def _width(direction: np.ndarray, sa: float, sb: float) -> np.ndarray:
    """One voxel's width along unit ``direction`` (..., 2): the chord through the centre of the
    ellipse inscribed in the voxel (its side along an axis; a diagonal is not lengthened by corners)."""
    with np.errstate(divide="ignore"):  # a zero direction (a point paired with itself) is masked out
        return 1.0 / np.hypot(direction[..., 0] / sa, direction[..., 1] / sb)


def _perpendicular(image: np.ndarray, sa: float, sb: float, p: np.ndarray, q: np.ndarray):
    """The longest edge-to-edge diameter perpendicular to the segment p-q, and its end points: on
    lines across p-q every half of the smaller pixel side, the span of the voxels each line passes
    through, plus one voxel's width."""
    u = (q - p) / max(float(np.hypot(*(q - p))), 1e-12)
    v = np.array([-u[1], u[0]])
    centres = np.argwhere(image) * np.array([sa, sb])
    along, across = centres @ u, centres @ v
    reach = (sa * abs(u[0]) + sb * abs(u[1])) / 2  # a line at t passes through voxels |along - t| <= reach
    lines = np.arange(along.min(), along.max() + 1e-9, min(sa, sb) / 2)
    hit = np.abs(along[None, :] - lines[:, None]) <= reach + 1e-9
    low = np.where(hit, across[None, :], np.inf).min(axis=1)
    high = np.where(hit, across[None, :], -np.inf).max(axis=1)
    widest = int(np.argmax(high - low))
    width = float(_width(v, sa, sb))
    at = lines[widest]
    start = at * u + (low[widest] - width / 2) * v
    end = at * u + (high[widest] + width / 2) * v
    return float(high[widest] - low[widest] + width), start, end
