"""Pulmonary vessel and bronchial trees: grown to fill each lung, then rasterised chunk by chunk.

Trees grow by recursive volume partition (Kitaoka et al., J Appl Physiol 1999): each branch serves a set
of points sampled in the lung; it runs part of the way towards their centroid, then the set is split in
two by a plane containing the branch, and each half is served by a daughter. Radii follow Murray's law
(radius^3 proportional to the volume served), so vessels taper from the hilum out to sub-millimetre
twigs near the pleura, in every direction, as on real CT. Arteries and veins are separate trees with
different roots and split planes, so they interleave; bronchi run beside the larger arteries.

Rasterisation: segments wider than about a voxel are drawn as tapered capsules inside their bounding
boxes; thinner ones are splatted along their axis with trilinear weights proportional to their
cross-section, which is exactly their partial volume. Both give occupancy fractions (0..1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.phantom.shapes import F32


@dataclass(frozen=True)
class Tree:
    """Segments ``p0 -> p1`` with radius ``r0`` at the start and ``r1`` at the end (mm)."""

    p0: np.ndarray  # (n, 3)
    p1: np.ndarray  # (n, 3)
    r0: np.ndarray  # (n,)
    r1: np.ndarray  # (n,)
    parent: np.ndarray  # (n,) index of the parent segment, -1 for a root

    def __len__(self) -> int:
        return len(self.r0)

    def map(self, scale: float, offset: np.ndarray) -> Tree:
        """The tree under ``p -> scale * p + offset`` (radii scale too)."""
        return Tree(
            self.p0 * scale + offset, self.p1 * scale + offset, self.r0 * scale, self.r1 * scale, self.parent
        )


def concat(trees: list[Tree]) -> Tree:
    offsets = np.cumsum([0] + [len(t) for t in trees[:-1]])
    parents = [np.where(t.parent >= 0, t.parent + o, -1) for t, o in zip(trees, offsets, strict=True)]
    return Tree(
        *(np.concatenate([getattr(t, f) for t in trees]) for f in ("p0", "p1", "r0", "r1")),
        np.concatenate(parents),
    )


def grow_tree(
    points: np.ndarray,
    root: np.ndarray,
    root_radius: float,
    rng: np.random.Generator,
    min_points: int = 6,
    reach: tuple[float, float] = (0.3, 0.8),
    twist: float = 0.0,
    split: tuple[float, float] = (0.15, 0.5),
) -> Tree:
    """Grow one tree from ``root`` to serve ``points`` (n, 3), all nodes of a generation at once.

    Args:
        min_points: a branch serving fewer points ends at their centroid (a terminal).
        reach: least and most of the way to its points' centroid a non-terminal branch runs.
        twist: up to this angle (rad) the split plane turns away from the points' widest spread, so two
            trees grown in the same lung divide it differently.
        split: range of the smaller daughter's share of the points.
    """
    total = len(points)
    pts = points
    label = np.zeros(total, dtype=np.intp)
    starts = np.asarray(root, dtype=np.float64)[None]
    parent = np.array([-1])
    p0s, p1s, radii, parents = [], [], [], []
    count = 0
    while len(starts):
        n = len(starts)
        cnt = np.bincount(label, minlength=n).astype(np.float64)
        centroid = np.stack([np.bincount(label, pts[:, a], n) for a in range(3)], axis=1) / cnt[:, None]
        vec = centroid - starts
        dist = np.linalg.norm(vec, axis=1) + 1e-9
        terminal = cnt < min_points
        radius = root_radius * np.cbrt(cnt / total)
        # A branch runs about three diameters (Kitaoka) but stays well short of its points' centroid,
        # so its daughters still have room to spread; terminals end at the centroid.
        frac = np.clip(6.0 * radius / dist, reach[0], reach[1])
        ends = starts + vec * np.where(terminal, 1.0, frac)[:, None]
        p0s.append(starts)
        p1s.append(ends)
        radii.append(radius)
        parents.append(parent)
        ids = count + np.arange(n)
        count += n
        keep = ~terminal[label]
        if not keep.any():
            break
        pts, label = pts[keep], label[keep]
        rel = pts - centroid[label]
        cov = np.empty((n, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                cov[:, a, b] = cov[:, b, a] = np.bincount(label, rel[:, a] * rel[:, b], n)
        # The dividing plane contains the branch (Kitaoka): take the widest spread across it.
        d = vec / dist[:, None]
        proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
        _, vecs = np.linalg.eigh(proj @ cov @ proj)
        angle = rng.uniform(-twist, twist, size=n)[:, None]
        normal = np.cos(angle) * vecs[:, :, 2] + np.sin(angle) * vecs[:, :, 1]
        # Uneven splits (the smaller daughter gets 15-50 % of the points): a vessel runs on with side
        # branches leaving it, as pulmonary vessels do, rather than forking into equal halves.
        along = np.einsum("ij,ij->i", rel, normal[label])
        order = np.lexsort((along, label))
        sizes = np.bincount(label, minlength=n)
        first = np.cumsum(sizes) - sizes
        rank = np.empty(len(order), dtype=np.intp)
        rank[order] = np.arange(len(order)) - first[label[order]]
        share = rng.uniform(*split, size=n)
        side = rank >= share[label] * sizes[label]
        uniq, label = np.unique(2 * label + side, return_inverse=True)
        starts = ends[uniq // 2]
        parent = ids[uniq // 2]
    r0 = np.concatenate(radii)
    tree_parent = np.concatenate(parents)
    # A branch tapers to the size of its larger daughter; terminals taper by a third.
    r1 = 0.67 * r0
    has_parent = tree_parent >= 0
    np.maximum.at(r1, tree_parent[has_parent], r0[has_parent])
    r1 = np.minimum(r1, r0)
    return Tree(np.concatenate(p0s), np.concatenate(p1s), r0, r1, tree_parent)


def sprout(tree: Tree, rng: np.random.Generator, inside, levels: int = 1) -> Tree:
    """Fork every terminal into two twigs per level, finer than the lung sampling can resolve.

    ``inside(points) -> bool array`` says which points lie in the lung; twigs ending outside are dropped.
    """
    has_child = np.zeros(len(tree), dtype=bool)
    has_child[tree.parent[tree.parent >= 0]] = True
    tips = np.flatnonzero(~has_child)
    axis = tree.p1[tips] - tree.p0[tips]
    length = np.linalg.norm(axis, axis=1) + 1e-9
    start, direction, radius, parent = tree.p1[tips], axis / length[:, None], tree.r1[tips], tips
    added, next_id = [], len(tree)
    for _ in range(levels):
        # Two daughters per tip, splayed 25-45 degrees either side of it in a random plane.
        e1, e2 = _across(direction)
        phase = rng.uniform(0, 2 * np.pi, size=(len(start), 1))
        side = np.cos(phase) * e1 + np.sin(phase) * e2
        halves = []
        for sign in (1.0, -1.0):
            a = sign * rng.uniform(0.45, 0.8, size=(len(start), 1))
            shorter = length * rng.uniform(0.55, 0.9, len(start))
            halves.append((np.cos(a) * direction + np.sin(a) * side, shorter))
        new_dir = np.concatenate([h[0] for h in halves])
        new_len = np.maximum(np.concatenate([h[1] for h in halves]), 2.0)
        p0 = np.tile(start, (2, 1))
        p1 = p0 + new_dir * new_len[:, None]
        r = np.tile(radius, 2)
        ok = inside(p1)
        twig = Tree(p0[ok], p1[ok], 0.8 * r[ok], 0.6 * r[ok], np.tile(parent, 2)[ok])
        added.append(twig)
        start, direction, length, radius = twig.p1, new_dir[ok], new_len[ok], twig.r1
        parent = next_id + np.arange(len(twig))
        next_id += len(twig)
    return concat([tree, *added])


def bronchi_along(arteries: Tree, start: np.ndarray, min_radius: float) -> Tree:
    """Bronchi beside the arteries wider than ``min_radius``: lumen radii 0.7 x the artery's.

    Each bronchus segment ends beside its artery's end, offset across it, and starts where its parent
    bronchus ended, so the airway stays continuous through every fork.
    """
    big = arteries.r0 >= min_radius
    index = np.full(len(arteries), -1)
    index[big] = np.arange(big.sum())
    across, _ = _across(arteries.p1[big] - arteries.p0[big])
    r_artery = arteries.r1[big]
    lumen = 0.7 * r_artery
    ends = arteries.p1[big] + across * (r_artery + 1.4 * lumen + 0.6)[:, None]  # side by side, walls apart
    parent = index[arteries.parent[big]]
    parent[arteries.parent[big] < 0] = -1
    starts = np.where((parent >= 0)[:, None], ends[np.maximum(parent, 0)], np.asarray(start)[None])
    r0 = np.where(parent >= 0, lumen[np.maximum(parent, 0)], lumen)
    return Tree(starts, ends, r0, lumen, parent)


class Rasteriser:
    """Draws a tree into blocks of slices of a voxel grid, as occupancy fractions.

    World mm put voxel ``(k, i, j)`` at ``(j * px, i * px, k * dz)`` (x, y, z).

    Args:
        tree: segments in world mm.
        pixel, slice_spacing: voxel size; thickness: reconstructed slice thickness (blurs along z).
        splat_below: segments with both radii under this (mm) are splatted, the rest drawn as capsules.
    """

    def __init__(self, tree: Tree, pixel: float, slice_spacing: float, thickness: float, splat_below: float):
        self.px, self.dz, self.th = pixel, slice_spacing, thickness
        wide = np.maximum(tree.r0, tree.r1) >= splat_below
        self.caps = Tree(tree.p0[wide], tree.p1[wide], tree.r0[wide], tree.r1[wide], tree.parent[wide])
        reach = np.maximum(self.caps.r0, self.caps.r1) + 2 * thickness + 3.0  # + room for a bronchial wall
        self._z_lo = np.minimum(self.caps.p0[:, 2], self.caps.p1[:, 2]) - reach
        self._z_hi = np.maximum(self.caps.p0[:, 2], self.caps.p1[:, 2]) + reach
        self._sample(tree.p0[~wide], tree.p1[~wide], tree.r0[~wide], tree.r1[~wide])

    def _sample(self, p0, p1, r0, r1) -> None:
        """Sample the thin segments about every half voxel; each sample carries its slab of vessel volume
        (in voxels), so splatting it is the vessel's exact partial volume, smoothed by a trilinear kernel.

        Samples of vessels wider than about a voxel are spread over four points across the vessel, so
        the footprint grows with the radius instead of staying one kernel wide.
        """
        step = 0.6 * min(self.px, self.dz)
        axis = p1 - p0
        length = np.linalg.norm(axis, axis=1)
        count = np.maximum(1, np.ceil(length / step).astype(np.intp))
        seg = np.repeat(np.arange(len(count)), count)
        t = (np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count) + 0.5) / count[seg]
        pos = p0[seg] + axis[seg] * t[:, None]
        radius = r0[seg] + (r1[seg] - r0[seg]) * t
        weight = np.pi * radius**2 * (length / count)[seg] / (self.px * self.px * self.dz)
        spread = radius > 0.6 * self.px
        if spread.any():
            e1, e2 = _across(axis)
            off = 0.6 * radius[spread, None]
            centre, s = pos[spread], seg[spread]
            offsets = [k * off * e[s] for e in (e1, e2) for k in (1, -1)]
            pos = np.concatenate([pos[~spread], *(centre + o for o in offsets)])
            weight = np.concatenate([weight[~spread], np.tile(weight[spread] / 4, 4)])
        k = pos[:, 2] / self.dz
        order = np.argsort(k, kind="stable")
        self._k = k[order]
        self._ij = np.column_stack([pos[order, 1], pos[order, 0]]) / self.px
        self._w = weight[order]

    def splat(self, k0: int, shape: tuple[int, int, int], i0: int, j0: int) -> np.ndarray:
        """Occupancy of the thin segments in the block ``shape`` whose first voxel is ``(k0, i0, j0)``."""
        lo, hi = np.searchsorted(self._k, [k0 - 1.0, k0 + shape[0]])
        pos = np.column_stack([self._k[lo:hi] - k0, self._ij[lo:hi] - (i0, j0)])
        base = np.floor(pos).astype(np.intp)
        frac = pos - base
        weight = self._w[lo:hi]
        flat, weights = [], []
        for corner in np.ndindex(2, 2, 2):
            idx = base + corner
            w = weight * np.prod(np.where(corner, frac, 1 - frac), axis=1)
            ok = np.all((idx >= 0) & (idx < shape), axis=1)
            flat.append(np.ravel_multi_index(idx[ok].T, shape))
            weights.append(w[ok])
        acc = np.bincount(np.concatenate(flat), np.concatenate(weights), minlength=int(np.prod(shape)))
        return acc.astype(F32).reshape(shape)

    def capsules(self, shells, k0: int, i0: int, j0: int) -> None:
        """Max-composite the wide segments as tapered capsules into blocks whose first voxel is
        ``(k0, i0, j0)``.

        ``shells`` is a list of ``(occupancy, grow)``: each block gets capsules whose radii are grown by
        ``grow`` mm (a scalar or one value per segment), e.g. a bronchial wall and its lumen in one pass.
        """
        first = shells[0][0]
        k1, i1, j1 = k0 + first.shape[0], i0 + first.shape[1], j0 + first.shape[2]
        px, dz = self.px, self.dz
        active = np.nonzero((self._z_hi >= k0 * dz) & (self._z_lo <= (k1 - 1) * dz))[0]
        grows = [np.broadcast_to(np.asarray(g, dtype=np.float64), (len(self.caps),)) for _, g in shells]
        scale = np.array([px, px, dz])
        for s in active:
            a, b = self.caps.p0[s], self.caps.p1[s]
            pad = max(self.caps.r0[s], self.caps.r1[s]) + max(g[s] for g in grows) + px + self.th
            lo = np.floor((np.minimum(a, b) - pad) / scale).astype(int)
            hi = np.ceil((np.maximum(a, b) + pad) / scale).astype(int) + 1
            ks, ke = max(lo[2], k0), min(hi[2], k1)
            is_, ie = max(lo[1], i0), min(hi[1], i1)
            js, je = max(lo[0], j0), min(hi[0], j1)
            if ks >= ke or is_ >= ie or js >= je:
                continue
            dist, t, tilt = _segment_distance(a, b, (ks, ke), (is_, ie), (js, je), px, dz)
            # Blur: about a pixel across the vessel, plus the slice thickness where the wall faces along z.
            width = float(np.hypot(px, 0.6 * self.th * tilt))
            r0, r1 = float(self.caps.r0[s]), float(self.caps.r1[s])
            for (occ, _), grow in zip(shells, grows, strict=True):
                cov = np.clip(0.5 - (dist - (r0 + float(grow[s]) + t * (r1 - r0))) / width, 0.0, 1.0)
                view = occ[ks - k0 : ke - k0, is_ - i0 : ie - i0, js - j0 : je - j0]
                np.maximum(view, cov, out=view)


def _across(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each row of ``axis`` and to each other."""
    u = axis / (np.linalg.norm(axis, axis=1, keepdims=True) + 1e-12)
    helper = np.where(np.abs(u[:, 2:3]) < 0.8, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(u, e1)


def _segment_distance(a, b, ks, is_, js, px: float, dz: float):
    """Distance (mm) from the voxels of a box to segment ``a``-``b``, the position ``t`` (0..1) of the
    closest point, and the segment's tilt from the z axis (sine)."""
    dzv = (np.arange(*ks) * dz - a[2]).astype(F32)[:, None, None]
    dyv = (np.arange(*is_) * px - a[1]).astype(F32)[None, :, None]
    dxv = (np.arange(*js) * px - a[0]).astype(F32)[None, None, :]
    vx, vy, vz = (float(c) for c in (b - a))
    length2 = max(vx * vx + vy * vy + vz * vz, 1e-9)
    t = np.clip(dxv * (vx / length2) + dyv * (vy / length2) + dzv * (vz / length2), 0.0, 1.0)
    ex, ey, ez = dxv - t * vx, dyv - t * vy, dzv - t * vz
    return np.sqrt(ex * ex + ey * ey + ez * ez), t, float(np.sqrt(max(0.0, 1 - vz * vz / length2)))
