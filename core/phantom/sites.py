"""Where a nodule of a given radius can go in a phantom chest.

With ``r`` the nodule radius, ``t`` a touching tolerance of one voxel along the coarsest axis, ``d_out``
the distance from the centre to the nearest voxel outside ``lung_mask`` and ``d_tube`` the distance from
the centre to the surface of the nearest wide tube (a pulmonary vessel of radius >= 1.5 mm, or a bronchus
with its wall), the kinds are:

* ``parenchymal``: ``d_out > r + t`` and ``d_tube > r + t``: in the lung, touching neither the pleura nor a
  wide vessel or bronchus (thin vessels may cross it, as they cross real nodules);
* ``juxtapleural``: ``r < d_out <= r + t`` and ``d_tube >= r - t``: the lung boundary (costal, mediastinal
  or diaphragmatic pleura) is within reach of the surface; no wide tube inside;
* ``perivascular``: ``d_out > r + t`` and ``|d_vessel - r| <= t``, ``d_tube >= r - t``: off the pleura, its
  surface on a wide vessel.

Distances are between voxel centres, in mm. Candidates come from coarse maps (blocks of about 4 mm) of
each block's distance to the lung boundary and to the wide tubes, so impossible radii fail at once;
each candidate is checked exactly at full resolution. Juxtapleural candidates are first moved to
``r + t/2`` from the nearest boundary voxel, perivascular ones to ``r + t/2`` from the nearest wide
vessel's surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("parenchymal", "juxtapleural", "perivascular")
BLOCK_MM = 4.0
TRIES = 400


@dataclass(frozen=True)
class Tubes:
    """Wide tubes a nodule must not swallow: segments ``p0 -> p1`` in (z, y, x) mm, radii ``r0 -> r1``."""

    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    is_vessel: np.ndarray  # False for bronchi (radius includes the wall)

    @classmethod
    def empty(cls) -> Tubes:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))

    @property
    def length(self) -> np.ndarray:
        return np.linalg.norm(self.p1 - self.p0, axis=1)

    def surface_distance(self, point: np.ndarray) -> np.ndarray:
        """Signed distance (mm) from ``point`` (z, y, x mm) to each tube's surface."""
        axis = self.p1 - self.p0
        t = np.clip(np.einsum("ij,ij->i", point - self.p0, axis) / np.maximum(self.length**2, 1e-12), 0, 1)
        closest = self.p0 + axis * t[:, None]
        return np.linalg.norm(point - closest, axis=1) - (self.r0 + (self.r1 - self.r0) * t)


def pick_site(chest, kind: str, radius_mm: float, rng: np.random.Generator) -> tuple[int, int, int]:
    """See ``Chest.pick_site``."""
    if kind not in KINDS:
        raise ValueError(f"site kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not 0 < radius_mm < 100:
        raise ValueError(f"nodule radius must be in (0, 100) mm, not {radius_mm}")
    spacing = np.array(chest.spacing[::-1], dtype=np.float64)  # (z, y, x)
    r, tol = float(radius_mm), float(spacing.max())
    depth, clear, block = _coarse(chest)
    slack = float(np.linalg.norm(block))  # two half-diagonals of a block: the coarse maps' worst error
    if kind == "parenchymal":
        good = (depth >= r + tol - slack) & (clear >= r + tol - slack)
    elif kind == "juxtapleural":
        good = (depth >= r - slack) & (depth <= r + tol + slack) & (clear >= r - tol - slack)
    else:
        good = (depth >= r + tol - slack) & (np.abs(clear - r) <= tol + slack)
    candidates = np.flatnonzero(good)
    if candidates.size == 0:
        raise ValueError(f"no {kind} site for a {2 * r:.1f} mm nodule in this chest")
    vessels = chest.tubes.is_vessel
    for _ in range(TRIES):
        cell = np.array(np.unravel_index(rng.choice(candidates), depth.shape))
        centre = np.minimum((cell + rng.random(3)) * block / spacing, np.array(chest.hu.shape) - 1)
        centre = np.rint(centre).astype(int)
        if kind == "parenchymal":
            centre = _clear_of(chest, centre, r + tol, spacing)
        elif kind == "juxtapleural":
            centre = _onto_boundary(chest.lung_mask, centre, r, tol, slack, spacing)
        else:
            centre = _onto_vessel(chest, centre, r + tol / 2, spacing)
        if centre is None or not chest.lung_mask[tuple(centre)]:
            continue
        d_out, _ = _nearest_out(chest.lung_mask, centre, r + tol + max(spacing), spacing)
        d_tube = chest.tubes.surface_distance(centre * spacing)
        nearest = d_tube.min(initial=np.inf)
        if kind == "parenchymal":
            ok = d_out > r + tol and nearest > r + tol
        elif kind == "juxtapleural":
            ok = r < d_out <= r + tol and nearest >= r - tol
        else:
            touching = abs(d_tube[vessels].min(initial=np.inf) - r) <= tol
            ok = d_out > r + tol and nearest >= r - tol and touching
        if ok:
            return int(centre[0]), int(centre[1]), int(centre[2])
    raise ValueError(f"no {kind} site found for a {2 * r:.1f} mm nodule after {TRIES} tries")


def _coarse(chest):
    """Maps on blocks of about 4 mm: distance (mm) from each all-lung block to the nearest block that is
    not all lung (-1 outside), and to the nearest block a wide tube may cross."""
    if "coarse" not in chest.site_maps:
        import SimpleITK as sitk

        spacing = np.array(chest.spacing[::-1], dtype=np.float64)
        b = np.maximum(1, np.rint(BLOCK_MM / spacing).astype(int))
        cells = tuple(int(n) // int(k) for n, k in zip(chest.lung_mask.shape, b, strict=True))
        lung = chest.lung_mask[: cells[0] * b[0], : cells[1] * b[1], : cells[2] * b[2]]
        lung = lung.reshape(cells[0], b[0], cells[1] * b[1], cells[2] * b[2]).all(axis=1)
        lung = lung.reshape(cells[0], cells[1], b[1], cells[2] * b[2]).all(axis=2)
        lung = lung.reshape(cells[0], cells[1], cells[2], b[2]).all(axis=3)
        block = b * spacing

        def distance_to(mask: np.ndarray) -> np.ndarray:
            if not mask.any():
                return np.full(mask.shape, np.inf, dtype=np.float32)
            image = sitk.GetImageFromArray(mask.astype(np.uint8))
            image.SetSpacing(tuple(float(v) for v in block[::-1]))
            distance = sitk.SignedMaurerDistanceMap(
                image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
            )
            return sitk.GetArrayFromImage(distance)

        depth = distance_to(~lung)
        depth[~lung] = -1.0
        near_tube = _tube_blocks(chest.tubes, block, cells)
        chest.site_maps["coarse"] = (depth, distance_to(near_tube), block)
    return chest.site_maps["coarse"]


def _tube_blocks(tubes: Tubes, block: np.ndarray, cells: tuple[int, int, int]) -> np.ndarray:
    """Blocks a wide tube may cross: centre within the radius plus half a block diagonal of its axis.

    Then a block's distance to the nearest such block is within one block diagonal of the true clearance
    of any point in it, so the coarse map errs by no more than ``slack`` either way.
    """
    inside = np.zeros(cells, dtype=bool)
    grow = float(np.linalg.norm(block)) / 2
    for a, b, r0, r1 in zip(tubes.p0, tubes.p1, tubes.r0 + grow, tubes.r1 + grow, strict=True):
        rmax = max(r0, r1)
        lo = np.maximum(np.floor((np.minimum(a, b) - rmax) / block - 0.5).astype(int), 0)
        hi = np.minimum(np.ceil((np.maximum(a, b) + rmax) / block - 0.5).astype(int) + 1, cells)
        if np.any(hi <= lo):
            continue
        axes = [(np.arange(low, high) + 0.5) * size for low, high, size in zip(lo, hi, block, strict=True)]
        p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        axis = b - a
        t = np.clip(((p - a) @ axis) / max(float(axis @ axis), 1e-12), 0, 1)
        d = np.linalg.norm(p - a - t[..., None] * axis, axis=-1)
        inside[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] |= d <= r0 + (r1 - r0) * t
    return inside


def _box(mask: np.ndarray, centre: np.ndarray, reach: float, spacing: np.ndarray):
    """The mask in a box of ``reach`` mm round ``centre`` and each voxel's squared distance (mm^2)."""
    half = np.ceil(reach / spacing).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, mask.shape)
    axes = [((np.arange(a, b) - c) * s) ** 2 for a, b, c, s in zip(lo, hi, centre, spacing, strict=True)]
    d2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    return mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], d2, lo


def _nearest_out(mask: np.ndarray, centre: np.ndarray, reach: float, spacing: np.ndarray):
    """Distance (mm) from ``centre`` to the nearest voxel outside ``mask`` within ``reach`` mm, and that
    voxel (``(inf, None)`` when there is none; the volume's edge counts as outside)."""
    sub, d2, lo = _box(mask, centre, reach, spacing)
    outside = np.flatnonzero(~sub)
    edge = float((np.minimum(centre + 1, np.array(mask.shape) - centre) * spacing).min())
    if outside.size == 0:
        return edge, None
    best = outside[np.argmin(d2.ravel()[outside])]
    return min(float(np.sqrt(d2.ravel()[best])), edge), np.array(np.unravel_index(best, sub.shape)) + lo


def _onto_boundary(mask, centre, r: float, tol: float, slack: float, spacing):
    """Move ``centre`` along the line from the nearest non-lung voxel to ``r + tol/2`` from it."""
    _, nearest = _nearest_out(mask, centre, r + tol + 2 * slack, spacing)
    if nearest is None:
        return None
    return _place(nearest * spacing, centre * spacing, r + tol / 2, spacing, mask.shape)


def _place(origin, towards, distance: float, spacing, shape):
    """The voxel ``distance`` mm from ``origin`` in the direction of ``towards`` (mm), if in the volume."""
    away = towards - origin
    length = float(np.linalg.norm(away))
    if length == 0:
        return None
    moved = np.rint((origin + away / length * distance) / spacing).astype(int)
    return None if np.any(moved < 0) or np.any(moved >= shape) else moved


def _clear_of(chest, centre, need: float, spacing, steps: int = 6):
    """Push ``centre`` away from the nearest lung boundary and wide tube until both are ``need`` mm off.

    The coarse maps only say a block might be clear enough; a few steps of this relaxation find the
    clear spot inside it when there is one.
    """
    for _ in range(steps):
        point = centre * spacing
        d_out, nearest = _nearest_out(chest.lung_mask, centre, need + max(spacing), spacing)
        d_tube = chest.tubes.surface_distance(point)
        move = np.zeros(3)
        if d_out <= need and nearest is not None:
            away = point - nearest * spacing
            move += away / max(float(np.linalg.norm(away)), 1e-9) * (need - d_out + 0.5 * spacing.min())
        if d_tube.size and d_tube.min() <= need:
            s = int(np.argmin(d_tube))
            axis = chest.tubes.p1[s] - chest.tubes.p0[s]
            t = float(np.clip((point - chest.tubes.p0[s]) @ axis / max(float(axis @ axis), 1e-12), 0, 1))
            away = point - (chest.tubes.p0[s] + t * axis)
            push = need - d_tube.min() + 0.5 * spacing.min()
            move += away / max(float(np.linalg.norm(away)), 1e-9) * push
        if not move.any():
            return centre
        centre = np.rint((point + move) / spacing).astype(int)
        if np.any(centre < 0) or np.any(centre >= chest.hu.shape) or not chest.lung_mask[tuple(centre)]:
            return None
    return centre


def _onto_vessel(chest, centre: np.ndarray, offset: float, spacing: np.ndarray):
    """Move ``centre`` to ``offset`` mm outside the surface of the nearest wide vessel."""
    tubes = chest.tubes
    vessels = np.flatnonzero(tubes.is_vessel)
    if vessels.size == 0:
        return None
    point = centre * spacing
    s = vessels[np.argmin(tubes.surface_distance(point)[vessels])]
    axis = tubes.p1[s] - tubes.p0[s]
    t = float(np.clip((point - tubes.p0[s]) @ axis / max(float(axis @ axis), 1e-12), 0, 1))
    radius = tubes.r0[s] + t * (tubes.r1[s] - tubes.r0[s])
    return _place(tubes.p0[s] + t * axis, point, radius + offset, spacing, chest.hu.shape)
