"""Synthetic chest CT: the phantom anatomy that real LIDC nodule shapes are embedded into.

``build_chest`` renders a noise-free chest CT volume (int16 HU) with masks of the lung parenchyma and of
the pulmonary vessels inside it; ``add_noise`` (from ``core.phantom.noise``) adds CT-like noise last.

Conventions (those of ``core.volume``): arrays are ``(z, y, x)``; z index 0 is the most inferior slice,
rows run anterior to posterior, columns run from the patient's right to left (radiological display);
``spacing`` is ``(x, y, z)`` mm. All geometry is computed in mm in a canonical adult frame and scaled
to fit the field of view and the scan length (``_Frame``), so any spacing or size gives a chest, smaller
fields of view a smaller patient. Everything random comes from ``ChestConfig.seed``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from core.phantom import vessels
from core.phantom.noise import add_noise, worker_count
from core.phantom.patient import ROOTS, Patient, fissure_distances, make_patient
from core.phantom.shapes import F32, paint
from core.phantom.sites import Tubes, pick_site
from core.phantom.torso import AIR_HU, BLOOD_HU, WALL_HU, SliceRenderer

__all__ = ["Chest", "ChestConfig", "add_noise", "build_chest"]

CANONICAL_CENTRE = np.array([0.0, 12.0, 145.0])  # canonical (x, y, z) put at the centre of the volume
CHUNK = 8  # slices rendered together (vessel rasterisation works on chunks)
WIDE_VESSEL_MM = 1.5  # vessels at least this wide are drawn as capsules and kept clear by pick_site


@dataclass(frozen=True)
class ChestConfig:
    """What to render: grid size, voxel size, noise level (applied by ``add_noise``) and seed."""

    rows: int = 512
    columns: int = 512
    slices: int = 300
    pixel_spacing: float = 0.7  # mm, 0.5-1.0
    slice_spacing: float = 1.0  # mm, 0.625-3
    slice_thickness: float | None = None  # mm, defaults to slice_spacing
    noise_sigma: float = 20.0  # HU, standard deviation of the final noise
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low, high in (("rows", 64, 2048), ("columns", 64, 2048), ("slices", 16, 2000)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        if not 0.5 <= self.pixel_spacing <= 1.0:
            raise ValueError(f"pixel_spacing must be 0.5-1.0 mm, not {self.pixel_spacing}")
        if not 0.625 <= self.slice_spacing <= 3.0:
            raise ValueError(f"slice_spacing must be 0.625-3 mm, not {self.slice_spacing}")
        if self.slice_thickness is not None and not 0.5 <= self.slice_thickness <= 5.0:
            raise ValueError(f"slice_thickness must be 0.5-5 mm (or None), not {self.slice_thickness}")
        if not self.noise_sigma >= 0:
            raise ValueError(f"noise_sigma must be >= 0 HU, not {self.noise_sigma}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")

    @property
    def thickness(self) -> float:
        """Reconstructed slice thickness (mm): ``slice_thickness``, else the slice spacing."""
        return float(self.slice_thickness or self.slice_spacing)


@dataclass(frozen=True, eq=False)
class Chest:
    """A rendered phantom chest, without noise.

    Attributes:
        hu: int16 ``(z, y, x)`` Hounsfield units.
        lung_mask: bool, the lung fields (parenchyma with the vessels and small airways inside it):
            where a voxel is at least half lung. Nodules go here.
        vessel_mask: bool, voxels at least half pulmonary vessel, inside ``lung_mask``.
        spacing: ``(x, y, z)`` mm.
        tubes: the wide vessels and the bronchi as segments, which ``pick_site`` keeps nodules off.
        site_maps: the coarse maps ``core.phantom.sites`` computes once per chest and keeps here.
    """

    hu: np.ndarray
    lung_mask: np.ndarray
    vessel_mask: np.ndarray
    spacing: tuple[float, float, float]
    tubes: Tubes = field(default_factory=Tubes.empty, repr=False)
    site_maps: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        mib = (self.hu.nbytes + self.lung_mask.nbytes + self.vessel_mask.nbytes) / 2**20
        return f"Chest(shape={self.hu.shape}, spacing={self.spacing} mm, {mib:.0f} MiB)"

    def pick_site(self, kind: str, radius_mm: float, rng: np.random.Generator) -> tuple[int, int, int]:
        """A ``(z, y, x)`` voxel centre for a nodule of ``radius_mm`` (exact rules: ``core.phantom.sites``).

        Kinds: ``"parenchymal"`` (the sphere lies in the lung, touching neither the pleura nor a wide
        vessel or bronchus), ``"juxtapleural"`` (in the lung, touching its boundary) and
        ``"perivascular"`` (in the lung, off the pleura, touching a vessel of radius >= 1.5 mm).

        Raises:
            ValueError: for an unknown kind or when no such site exists for that radius.
        """
        return pick_site(self, kind, radius_mm, rng)


@dataclass(frozen=True)
class _Frame:
    """Maps voxels to the canonical anatomy frame: ``canonical = (world - w0) / scale + c0``.

    World mm put voxel ``(k, i, j)`` at ``(j * px, i * px, k * dz)``.
    """

    scale: float
    w0: np.ndarray

    @classmethod
    def fit(cls, config: ChestConfig, patient: Patient) -> _Frame:
        width = config.columns * config.pixel_spacing
        height = config.rows * config.pixel_spacing
        length = config.slices * config.slice_spacing
        half_width, front, back = patient.body
        above = front * 1.06 + CANONICAL_CENTRE[1]  # canonical mm from the centre row to the skin in front
        below = back + 8.0 - CANONICAL_CENTRE[1]  # ... and to the table top behind
        scale = min(
            1.0,  # an adult: a wider field of view shows more air, not a bigger patient
            0.94 * width / (2 * half_width),
            0.47 * height / max(above, below),
            length / 290.0,  # the lungs (canonical z 12-272) stay inside the scan
        )
        w0 = np.array(
            [
                (config.columns - 1) / 2 * config.pixel_spacing,
                (config.rows - 1) / 2 * config.pixel_spacing,
                (config.slices - 1) / 2 * config.slice_spacing,
            ]
        )
        return cls(scale, w0)

    def to_canonical(self, axis: int, world: np.ndarray) -> np.ndarray:
        """Canonical coordinates along ``axis`` (0 x, 1 y, 2 z) of world positions (mm)."""
        return (world - self.w0[axis]) / self.scale + CANONICAL_CENTRE[axis]

    def tree_to_world(self, tree: vessels.Tree) -> vessels.Tree:
        """A canonical tree in world mm."""
        return tree.map(self.scale, self.w0 - CANONICAL_CENTRE * self.scale)


def _lung_points(patient: Patient, step: float, rng: np.random.Generator):
    """Jittered points filling each lung (canonical mm), and a lookup telling lung from not-lung."""
    xs = np.arange(-180.0, 180.0 + step, step)
    ys = np.arange(-130.0, 120.0 + step, step)
    zs = np.arange(0.0, 300.0 + step, step)
    coarse = SliceRenderer(patient, xs, ys, step, step)
    lung = np.zeros((len(zs), len(ys), len(xs)), dtype=bool)
    rows, cols = coarse.crop
    for k, z in enumerate(zs):
        lung[k, rows, cols] = coarse.render(float(z), lungs_only=True)[1] > 0.5
    kk, ii, jj = np.nonzero(lung)
    pts = np.column_stack([xs[jj], ys[ii], zs[kk]])
    # Vessels do not cross fissures and thin out near them: no vessel targets within 5 mm of one.
    near = np.min(np.abs(np.stack(fissure_distances(pts[:, 0], pts[:, 1], pts[:, 2]))), axis=0)
    pts = pts[near > 5.0]

    def inside(p: np.ndarray) -> np.ndarray:
        idx = np.rint((p - [xs[0], ys[0], zs[0]]) / step).astype(np.intp)
        ok = np.all((idx >= 0) & (idx < [len(xs), len(ys), len(zs)]), axis=1)
        out = np.zeros(len(p), dtype=bool)
        out[ok] = lung[idx[ok, 2], idx[ok, 1], idx[ok, 0]]
        return out

    def jittered() -> np.ndarray:
        return pts + rng.uniform(-step / 2, step / 2, size=pts.shape)

    return jittered, inside


def _grow_trees(patient: Patient, rng: np.random.Generator):
    """Artery and vein trees of both lungs, and the bronchi beside the arteries (canonical mm)."""
    jittered, inside = _lung_points(patient, 6.0, rng)
    vessel_trees, bronchus_trees = [], []
    for side in (0, 1):  # right lung (x < 0), left lung
        for kind, radius, twist in (("artery", 9.0, 0.25), ("vein", 8.0, 1.2)):
            pts = jittered()
            pts = pts[(pts[:, 0] < 0) if side == 0 else (pts[:, 0] > 0)]
            tree = vessels.grow_tree(pts, np.array(ROOTS[kind][side], float), radius, rng, 10, twist=twist)
            vessel_trees.append(vessels.sprout(tree, rng, inside, levels=1))
            if kind == "artery":
                bronchus_trees.append(vessels.bronchi_along(tree, np.array(ROOTS["bronchus"][side]), 1.6))
    return vessels.concat(vessel_trees), vessels.concat(bronchus_trees)


def build_chest(config: ChestConfig) -> Chest:
    """Render the phantom chest described by ``config`` (no noise; see ``add_noise``)."""
    rng = np.random.default_rng(config.seed)
    patient = make_patient(rng)
    frame = _Frame.fit(config, patient)
    px, dz, th = config.pixel_spacing, config.slice_spacing, config.thickness
    xs = frame.to_canonical(0, np.arange(config.columns) * px)
    ys = frame.to_canonical(1, np.arange(config.rows) * px)
    zs = frame.to_canonical(2, np.arange(config.slices) * dz)
    renderer = SliceRenderer(patient, xs, ys, px / frame.scale, th / frame.scale, rng)
    vessel_tree, bronchus_tree = _grow_trees(patient, rng)
    vessel_tree, bronchus_tree = frame.tree_to_world(vessel_tree), frame.tree_to_world(bronchus_tree)
    trees = vessels.Rasteriser(vessel_tree, px, dz, th, splat_below=WIDE_VESSEL_MM)
    bronchi = vessels.Rasteriser(bronchus_tree, px, dz, th, splat_below=0.0)
    wall = np.maximum(0.45, 0.25 * bronchus_tree.r0)  # bronchial walls: about a fifth of the diameter

    shape = (config.slices, config.rows, config.columns)
    hu = np.empty(shape, dtype=np.int16)
    lung_mask = np.zeros(shape, dtype=bool)
    vessel_mask = np.zeros(shape, dtype=bool)
    background = np.rint(renderer.background).astype(np.int16)
    rows, cols = renderer.crop
    crop_shape = (rows.stop - rows.start, cols.stop - cols.start)
    margin = int(np.ceil(15.0 / px))  # hilar vessels run on into the mediastinum

    def run(k0: int) -> None:
        k1 = min(k0 + CHUNK, config.slices)
        chunk = np.empty((k1 - k0, *crop_shape), dtype=F32)
        lung, cav = np.empty_like(chunk), np.empty_like(chunk)
        for k in range(k0, k1):
            chunk[k - k0], lung[k - k0], cav[k - k0] = renderer.render(float(zs[k]))
        lung_mask[k0:k1, rows, cols] = lung >= 0.5
        hu[k0:k1] = background
        found = [np.flatnonzero(lung.any(axis=axes)) for axes in ((0, 2), (0, 1))]
        if found[0].size:  # vessels and bronchi only where there is lung
            r0, r1 = max(found[0][0] - margin, 0), min(found[0][-1] + margin + 1, crop_shape[0])
            c0, c1 = max(found[1][0] - margin, 0), min(found[1][-1] + margin + 1, crop_shape[1])
            box = (slice(None), slice(r0, r1), slice(c0, c1))
            i0, j0 = rows.start + r0, cols.start + c0
            # Thin vessels stop at the pleura; the wide hilar ones run on into the mediastinum.
            occ = trees.splat(k0, (k1 - k0, r1 - r0, c1 - c0), i0, j0)
            occ *= lung[box]
            wide = np.zeros_like(occ)
            trees.capsules([(wide, 0.0)], k0, i0, j0)
            wide *= cav[box]
            np.maximum(occ, wide, out=occ)
            np.minimum(occ, 1.0, out=occ)
            paint(chunk[box], occ, BLOOD_HU)
            vessel_mask[k0:k1, i0 : i0 + r1 - r0, j0 : j0 + c1 - c0] = (occ >= 0.5) & (lung[box] >= 0.5)
            lumen = np.zeros_like(occ)
            wide.fill(0.0)
            bronchi.capsules([(wide, wall), (lumen, 0.0)], k0, i0, j0)
            paint(chunk[box], wide, WALL_HU)
            paint(chunk[box], lumen, AIR_HU)
        np.rint(chunk, out=chunk)
        hu[k0:k1, rows, cols] = chunk

    with ThreadPoolExecutor(worker_count()) as pool:
        list(pool.map(run, range(0, config.slices, CHUNK)))
    tubes = Tubes(
        np.concatenate([trees.caps.p0, bronchi.caps.p0])[:, ::-1],
        np.concatenate([trees.caps.p1, bronchi.caps.p1])[:, ::-1],
        np.concatenate([trees.caps.r0, bronchi.caps.r0 + wall]),
        np.concatenate([trees.caps.r1, bronchi.caps.r1 + wall]),
        np.arange(len(trees.caps) + len(bronchi.caps)) < len(trees.caps),
    )
    return Chest(hu, lung_mask, vessel_mask, (float(px), float(px), float(dz)), tubes)
