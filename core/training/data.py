"""Training data: LIDC nodules rendered into phantom chests, cut into model-input patches.

Rather than writing whole DICOM studies, each nodule is rendered into a crop of a full phantom chest
(the same anatomy, renderer and noise as ``python main.py phantom``) at a site picked like a study's,
and the patches are cut from that crop. Several jittered variants per nodule (new site, new noise,
shift / scale / flips) make up the augmentation. The result is cached under the user cache folder,
keyed by everything that shapes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.lidc.records import LidcNodule
from core.model.patches import Jitter, PatchConfig, extract_patches
from core.nodule.ratings import ATTRIBUTES, to_unit_scale
from core.phantom.anatomy import Chest, ChestConfig, add_noise, build_chest
from core.phantom.nodules import render_nodule
from core.util.paths import user_dir
from core.volume import CTVolume

DATASET_VERSION = 1
LABELS = {"benign": 0, "malignant": 1, "indeterminate": -1}
SITES = ("parenchymal", "juxtapleural", "perivascular")


@dataclass(frozen=True)
class DatasetSpec:
    split: str
    seed: int = 0
    variants: int = 1  # 0: one clean rendering per nodule; n: n jittered renderings
    patch: PatchConfig = field(default_factory=PatchConfig)
    min_diameter_mm: float = 3.0
    max_diameter_mm: float = 30.0
    min_readers: int = 1  # all LIDC nodules: 309 in the reserved split, 92 malignant
    chests: int = 2
    pixel_spacing: float = 0.7
    slice_thickness: float = 1.25
    noise: float = 20.0

    def key(self) -> str:
        text = json.dumps({"version": DATASET_VERSION, **asdict(self)}, sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def select(self, pool: Sequence[LidcNodule]) -> list[LidcNodule]:
        return sorted(
            (
                n
                for n in pool
                if n.split == self.split
                and n.n_readers >= self.min_readers
                and self.min_diameter_mm <= n.diameter_mm <= self.max_diameter_mm
            ),
            key=lambda n: n.nodule_id,
        )


@dataclass
class NoduleDataset:
    """Slices of nodules: ``patches[i]`` belongs to nodule ``nodule_index[i]``."""

    patches: np.ndarray  # float16 (slices, channels, size, size)
    nodule_index: np.ndarray  # int32 (slices,)
    variant: np.ndarray  # int16 (slices,): 0 clean, 1.. jittered
    labels: np.ndarray  # int8 (nodules,): 1 malignant, 0 benign, -1 indeterminate
    attributes: np.ndarray  # float32 (nodules, 8): mean ratings on the 0..1 scale
    diameters: np.ndarray  # float32 (nodules,)
    nodule_ids: np.ndarray  # str (nodules,)
    patient_ids: np.ndarray  # str (nodules,)

    @property
    def slice_labels(self) -> np.ndarray:
        return self.labels[self.nodule_index]

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{name: getattr(self, name) for name in self.__dataclass_fields__})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> NoduleDataset:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def label_of(nodule: LidcNodule) -> int:
    return LABELS[nodule.label]


def build_dataset(
    spec: DatasetSpec,
    nodules: Sequence[LidcNodule],
    progress: Callable[[int, int], None] | None = None,
) -> NoduleDataset:
    """Render every nodule ``max(variants, 1)`` times and cut its patches."""
    chests = [
        build_chest(
            ChestConfig(
                slices=round(300 / spec.slice_thickness),
                pixel_spacing=spec.pixel_spacing,
                slice_spacing=spec.slice_thickness,
                seed=spec.seed * 100 + i,
            )
        )
        for i in range(spec.chests)
    ]
    rng = np.random.default_rng([spec.seed, 11])
    patches, index, variant = [], [], []
    for n, nodule in enumerate(nodules):
        for v in range(max(spec.variants, 1)):
            first = int(rng.integers(len(chests)))
            jitter = Jitter.random(rng) if spec.variants else None
            for attempt in range(len(chests)):  # a large nodule may fit only one phantom's lungs
                try:
                    stack = render_patches(chests[(first + attempt) % len(chests)], nodule, spec, rng, jitter)
                    break
                except ValueError:
                    if attempt == len(chests) - 1:
                        raise
            patches.append(stack.astype(np.float16))
            index += [n] * len(stack)
            variant += [v + (1 if spec.variants else 0)] * len(stack)
        if progress is not None:
            progress(n + 1, len(nodules))
    return NoduleDataset(
        patches=np.concatenate(patches),
        nodule_index=np.array(index, np.int32),
        variant=np.array(variant, np.int16),
        labels=np.array([label_of(n) for n in nodules], np.int8),
        attributes=to_unit_scale(np.array([[n.mean_ratings[a] for a in ATTRIBUTES] for n in nodules])).astype(
            np.float32
        ),
        diameters=np.array([n.diameter_mm for n in nodules], np.float32),
        nodule_ids=np.array([n.nodule_id for n in nodules]),
        patient_ids=np.array([n.patient_id for n in nodules]),
    )


def render_patches(
    chest: Chest, nodule: LidcNodule, spec: DatasetSpec, rng, jitter: Jitter | None
) -> np.ndarray:
    """One nodule at a fresh site of ``chest``, with fresh noise, cut into patches."""
    volume, centre_mm = render_crop(chest, nodule, spec.patch.fov_mm * 0.7 + 4.0, spec.noise, rng)
    return extract_patches(volume, centre_mm, nodule.diameter_mm, spec.patch, jitter)


def render_crop(chest: Chest, nodule: LidcNodule, half_width_mm: float, noise: float, rng):
    """``nodule`` at a fresh site of ``chest`` (random kind), in a crop with fresh noise.

    Returns the crop as a ``CTVolume`` and the nodule centre in its mm frame.
    """
    radius = nodule.diameter_mm / 2
    centre = None
    for kind in (SITES[int(rng.integers(len(SITES)))], *SITES):  # the drawn kind first, then any
        try:
            centre = np.array(chest.pick_site(kind, radius, rng))
            break
        except ValueError:
            continue
    if centre is None:
        raise ValueError(f"no site in the phantom lungs for {nodule.nodule_id}")
    sx, sy, sz = chest.spacing
    half = np.ceil(np.array([radius + 4.0, half_width_mm, half_width_mm]) / np.array([sz, sy, sx])).astype(
        int
    )
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, chest.hu.shape)
    crop = np.array(chest.hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.int16)
    local = tuple(int(v) for v in centre - lo)
    render_nodule(crop, nodule, local, chest.spacing, seed=int(rng.integers(2**31)))
    crop = add_noise(crop, noise, chest.spacing, rng)
    volume = CTVolume(crop, np.diag([sx, sy, sz, 1.0]))
    centre_mm = tuple(float(v) for v in volume.voxel_to_mm(np.array(local[::-1], dtype=float)))
    return volume, centre_mm


def cached_dataset(
    spec: DatasetSpec,
    pool: Sequence[LidcNodule] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NoduleDataset:
    """Load the dataset for ``spec`` from the cache, or build and cache it."""
    path = user_dir("cache") / "datasets" / f"{spec.split}-{spec.key()}.npz"
    if path.is_file():
        return NoduleDataset.load(path)
    if pool is None:
        from core.lidc.table import load_nodules

        pool = load_nodules()
    dataset = build_dataset(spec, spec.select(pool), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save(path)
    return dataset


def subset(data: NoduleDataset, keep: np.ndarray) -> NoduleDataset:
    """The nodules where ``keep`` (a boolean per nodule) is true, with their slices."""
    keep = np.asarray(keep, bool)
    new_index = np.cumsum(keep) - 1
    rows = keep[data.nodule_index]
    return NoduleDataset(
        patches=data.patches[rows],
        nodule_index=new_index[data.nodule_index[rows]].astype(np.int32),
        variant=data.variant[rows],
        labels=data.labels[keep],
        attributes=data.attributes[keep],
        diameters=data.diameters[keep],
        nodule_ids=data.nodule_ids[keep],
        patient_ids=data.patient_ids[keep],
    )
