"""Embed a real LIDC nodule into a phantom volume: its consensus mask, its attribute ratings.

Only the mask (real readers' contours) and the eight attribute ratings reach the renderer; the
malignancy rating and the label never do, so a model cannot learn the generator instead of the nodule.
The random texture is seeded from the phantom seed and the nodule id, nothing else; a sub-voxel shift
(a second rendering, for repeatability) moves the same texture, spicules and calcium with the outline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from core.lidc.records import LidcNodule
from core.nodule.ratings import ATTRIBUTES
from core.phantom.appearance import Appearance, appearance_from_ratings
from core.phantom.filters import blur, trilinear

CALCIUM_HU = 750.0


@dataclass(frozen=True)
class NoduleShape:
    """The nodule's occupancy (0..1, partial volume) on the target grid, centred on its centroid."""

    occupancy: np.ndarray  # float32 (z, y, x)
    centre_offset: np.ndarray  # voxel position (z, y, x) of the mask centroid inside ``occupancy``


def nodule_rng(seed: int, nodule_id: str) -> np.random.Generator:
    digest = hashlib.sha256(nodule_id.encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def resample_mask(
    nodule: LidcNodule, spacing_xyz: tuple[float, float, float], shift_zyx=(0.0, 0.0, 0.0)
) -> NoduleShape:
    """Resample the consensus mask onto a grid of ``spacing_xyz``, averaging sub-samples so that a
    thick target slice sees the partial volume of the thin source slices it covers. ``shift_zyx``
    (target voxels, sub-voxel) moves the nodule against the grid: the centroid lies that far from
    ``centre_offset`` (a second rendering of the same nodule, for repeatability)."""
    mask = nodule.mask.astype(np.float32)
    src = np.array(nodule.mask_spacing[::-1], dtype=np.float64)  # (z, y, x) mm
    dst = np.array(spacing_xyz[::-1], dtype=np.float64)
    coords = np.argwhere(nodule.mask)
    centroid = coords.mean(axis=0) * src  # mm from mask voxel (0, 0, 0)
    extent = (np.array(mask.shape) - 1) * src
    half = np.maximum(centroid, extent - centroid) + src  # mm each side of the centroid
    counts = np.ceil(half / dst).astype(int)
    subs = np.maximum(1, np.ceil(dst / src).astype(int))  # sub-samples per target voxel and axis
    axes = []
    for axis in range(3):
        offsets = (np.arange(-counts[axis], counts[axis] + 1) - float(shift_zyx[axis])) * dst[axis]
        fractions = (np.arange(subs[axis]) + 0.5) / subs[axis] - 0.5
        samples = offsets[:, None] + fractions[None, :] * dst[axis]
        axes.append((centroid[axis] + samples) / src[axis])  # source voxel coordinates
    z, y, x = np.meshgrid(axes[0].ravel(), axes[1].ravel(), axes[2].ravel(), indexing="ij")
    fine = trilinear(mask, z, y, x)
    shape = [2 * c + 1 for c in counts]
    fine = fine.reshape(shape[0], subs[0], shape[1], subs[1], shape[2], subs[2])
    occupancy = fine.mean(axis=(1, 3, 5))
    return NoduleShape(occupancy.astype(np.float32), counts.astype(np.float64))


def _depth(occupancy: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """A smooth 'how deep inside' measure: the occupancy blurred at a quarter of the radius."""
    volume_mm3 = float(occupancy.sum() * np.prod(spacing_zyx))
    radius = (3 * volume_mm3 / (4 * np.pi)) ** (1 / 3)
    return blur(occupancy, tuple(max(0.25 * radius / s, 0.3) for s in spacing_zyx))


def _nodule_hu(shape: NoduleShape, look: Appearance, spacing_zyx, rng) -> tuple[np.ndarray, np.ndarray]:
    """HU of the nodule tissue (before contrast) and the calcium occupancy, on the shape's grid."""
    occ = shape.occupancy
    inside = occ > 0.5
    depth = _depth(occ, spacing_zyx)
    hu = np.full(occ.shape, look.ground_glass_hu, dtype=np.float32)
    solid = np.zeros(occ.shape, dtype=np.float32)
    if look.solid_fraction > 0 and inside.any():
        threshold = np.quantile(depth[inside], 1.0 - look.solid_fraction)
        solid = blur((depth >= threshold).astype(np.float32), (0.6, 0.6, 0.6))
        hu += solid * (look.solid_hu - look.ground_glass_hu)
    heterogeneity = blur(rng.standard_normal(occ.shape).astype(np.float32), (0.8, 0.8, 0.8))
    hu += heterogeneity * (15.0 + 45.0 * (1.0 - look.solid_fraction)) / max(heterogeneity.std(), 1e-3)
    if look.internal != "soft tissue" and look.solid_fraction > 0.3 and inside.any():
        core = blur((depth >= np.quantile(depth[inside], 0.85)).astype(np.float32), (0.5, 0.5, 0.5))
        target = {"fluid": 10.0, "fat": -90.0, "air": -950.0}[look.internal]
        hu = hu * (1 - core) + target * core
    calcium = _calcium(depth, inside, look, spacing_zyx, rng)
    return hu, calcium


def _calcium(depth, inside, look: Appearance, spacing_zyx, rng) -> np.ndarray:
    calcium = np.zeros(depth.shape, dtype=np.float32)
    if look.calcification is None or not inside.any():
        return calcium
    inner = depth[inside]
    if look.calcification == "solid":
        calcium = (depth >= np.quantile(inner, 0.1)).astype(np.float32)
    elif look.calcification == "central":
        calcium = (depth >= np.quantile(inner, 0.8)).astype(np.float32)
    elif look.calcification == "laminated":
        for q in (0.35, 0.7, 0.93):
            level = np.quantile(inner, q)
            calcium = np.maximum(calcium, (np.abs(depth - level) < 0.03 * inner.max()).astype(np.float32))
    else:  # popcorn: several clumps; non-central: one clump off the centre
        candidates = np.argwhere(depth >= np.quantile(inner, 0.3))
        count = 1 if look.calcification == "non-central" else int(rng.integers(3, 7))
        grid = np.indices(depth.shape).reshape(3, -1).T * spacing_zyx
        for index in rng.choice(len(candidates), size=min(count, len(candidates)), replace=False):
            centre = candidates[index] * spacing_zyx
            radius = rng.uniform(1.0, 2.0)
            near = (np.linalg.norm(grid - centre, axis=1) < radius).reshape(depth.shape)
            calcium = np.maximum(calcium, near.astype(np.float32))
    return blur(calcium * inside, (0.5, 0.5, 0.5))


def _spicules(shape: NoduleShape, look: Appearance, spacing_zyx: np.ndarray, rng) -> np.ndarray:
    """Thin strands from the surface outward, as extra occupancy (may extend past the mask)."""
    occ = shape.occupancy
    strands = np.zeros(occ.shape, dtype=np.float32)
    if look.spicules == 0:
        return strands
    inside = occ > 0.5
    edge = np.zeros_like(inside)
    for axis in (1, 2):  # in-plane boundary: inside voxels with an outside neighbour
        for step in (1, -1):
            edge |= inside & ~np.roll(inside, step, axis=axis)
    surface = np.argwhere(edge)
    if not len(surface):
        return strands
    centre = shape.centre_offset
    # Strands leave around the nodule's waist, where axial images show them best.
    height = np.abs(surface[:, 0] - centre[0])
    surface = surface[height <= max(0.4 * height.max(), 1)]
    grid = np.indices(occ.shape).reshape(3, -1).T * spacing_zyx  # voxel centres in mm
    for index in rng.choice(len(surface), size=min(look.spicules, len(surface)), replace=False):
        start = surface[index] * spacing_zyx
        direction = start - centre * spacing_zyx
        direction /= max(np.linalg.norm(direction), 1e-6)
        direction += rng.normal(0, 0.25, 3)  # strands are not perfectly radial
        direction[0] *= 0.3  # mostly in-plane: readers judge spiculation on axial images
        direction /= np.linalg.norm(direction)
        length = rng.uniform(0.5, 1.0) * look.spicule_length_mm
        # Distance of every voxel to the segment; a strand is ~1 mm thick, fading towards its tip.
        along = np.clip((grid - start) @ direction, 0.0, length)
        distance = np.linalg.norm(grid - (start + along[:, None] * direction), axis=1)
        profile = np.clip(1.3 - distance / 0.7, 0.0, 1.0) * (1.0 - 0.5 * along / length)
        strands = np.maximum(strands, profile.reshape(occ.shape).astype(np.float32))
    return np.clip(strands, 0.0, 0.9)


def _shifted(field: np.ndarray, shift_zyx) -> np.ndarray:
    """``field`` moved by ``shift_zyx`` voxels (sub-voxel), trilinear, edge values held."""
    grid = np.indices(field.shape, dtype=np.float32)
    coords = [np.clip(grid[a] - float(shift_zyx[a]), 0.0, field.shape[a] - 1) for a in range(3)]
    return trilinear(field, *coords)


def render_nodule(
    volume: np.ndarray,
    nodule: LidcNodule,
    centre_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    seed: int,
    shift_zyx=(0.0, 0.0, 0.0),
) -> tuple[slice, slice, slice]:
    """Blend ``nodule`` into ``volume`` (HU, float or int16, modified in place) at ``centre_zyx``
    (moved by the sub-voxel ``shift_zyx``, see ``resample_mask``).

    Returns the region touched. Reads ``nodule.mask`` and the eight attribute means only.
    """
    means = nodule.mean_ratings
    look = appearance_from_ratings({name: means[name] for name in ATTRIBUTES})
    rng = nodule_rng(seed, nodule.nodule_id)
    spacing_zyx = np.array(spacing_xyz[::-1], dtype=np.float64)
    margin = np.ceil((look.spicule_length_mm + 3 * look.edge_blur_mm) / spacing_zyx).astype(int)
    pad = [(m, m) for m in margin]
    base = resample_mask(nodule, spacing_xyz)
    # Texture, calcium and spicules are drawn once, on the unshifted nodule, then resampled at the
    # shifted position: a second rendering differs from the first in the shift only (a voxel that
    # crosses a quantile or the surface would otherwise redraw the solid core and the spicules).
    shape = NoduleShape(np.pad(base.occupancy, pad), base.centre_offset + margin)
    tissue_hu, calcium = _nodule_hu(shape, look, spacing_zyx, rng)
    strands = _spicules(shape, look, spacing_zyx, rng)
    occ = shape.occupancy
    if any(float(v) != 0.0 for v in shift_zyx):
        occ = np.pad(resample_mask(nodule, spacing_xyz, shift_zyx).occupancy, pad)  # exact outline
        tissue_hu, calcium, strands = (_shifted(field, shift_zyx) for field in (tissue_hu, calcium, strands))
    edge = tuple(look.edge_blur_mm / s for s in spacing_zyx)
    occupancy = np.maximum(blur(occ, edge), strands)
    # Place: the shape's centre voxel goes to centre_zyx; clip to the volume.
    start = np.array(centre_zyx) - shape.centre_offset.astype(int)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + np.array(occ.shape), volume.shape)
    if np.any(hi <= lo):
        raise ValueError(f"nodule {nodule.nodule_id} placed outside the volume at {centre_zyx}")
    region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
    background = volume[region].astype(np.float32)
    weight = occupancy[local] * look.contrast
    blended = background + weight * (tissue_hu[local] - background)
    blended += calcium[local] * (CALCIUM_HU - blended)
    volume[region] = np.rint(blended) if volume.dtype.kind == "i" else blended
    return region


def truth_mask_box(
    nodule: LidcNodule,
    centre_zyx: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    shift_zyx=(0.0, 0.0, 0.0),
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The consensus mask as rendered by ``render_nodule`` (occupancy >= 0.5, no spicules): the box's
    origin in the volume's voxel grid (z, y, x; may reach past the volume's edges) and the bool box."""
    shape = resample_mask(nodule, spacing_xyz, shift_zyx)
    origin = tuple(int(c) - int(o) for c, o in zip(centre_zyx, shape.centre_offset, strict=True))
    return origin, shape.occupancy >= 0.5
