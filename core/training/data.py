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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from core.lidc.records import LidcNodule
from core.model.patches import Jitter, PatchConfig, extract_patches
from core.nodule.ratings import ATTRIBUTES, to_unit_scale
from core.phantom.anatomy import Chest, ChestConfig, build_chest
from core.phantom.nodules import render_nodule
from core.phantom.protocol import NOMINAL, ScanProtocol, random_protocol, randomisation_fingerprint
from core.phantom.scan import adjust_lungs, chest_grid, needs_reslice, reconstruct, reslice
from core.util.paths import user_dir
from core.volume import CTVolume

DATASET_VERSION = 1
LABELS = {"benign": 0, "malignant": 1, "indeterminate": -1}
SITES = ("parenchymal", "juxtapleural", "perivascular")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is rendered from. The scan protocol is ``protocol``, else the nominal one with
    ``pixel_spacing``, ``slice_thickness`` (contiguous) and ``noise``; ``randomise`` draws a fresh
    protocol (``random_protocol``) for every rendering instead."""

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
    protocol: ScanProtocol | None = None
    randomise: bool = False
    chest_size: int = 512  # rows and columns of the phantom chests (small ones for tests)

    def __post_init__(self) -> None:
        legacy = (self.pixel_spacing, self.slice_thickness, self.noise)
        if (self.protocol is not None or self.randomise) and legacy != (0.7, 1.25, 20.0):
            raise ValueError(
                "give a scan protocol (or randomise), or pixel spacing/thickness/noise, not both"
            )
        if self.protocol is not None and self.randomise:
            raise ValueError("a dataset has a fixed scan protocol or randomised ones, not both")

    def scan_protocol(self) -> ScanProtocol:
        """The fixed protocol of every rendering (the nominal one for a randomised spec's key only)."""
        if self.protocol is not None:
            return self.protocol
        return replace(
            NOMINAL,
            slice_thickness_mm=self.slice_thickness,
            slice_interval_mm=self.slice_thickness,
            pixel_spacing_mm=self.pixel_spacing,
            noise_hu=self.noise,
        )

    def key(self) -> str:
        data = asdict(self)
        for name, default in (("protocol", None), ("randomise", False), ("chest_size", 512)):
            if data[name] == default:  # the keys of datasets cached before these existed stay
                del data[name]
        if self.randomise:  # the distribution drawn from, so a changed one renders afresh
            data["randomise"] = randomisation_fingerprint()
        text = json.dumps({"version": DATASET_VERSION, **data}, sort_keys=True, allow_nan=False)
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
    # the scan protocol of each slice's rendering: protocols[protocol_index[i]], as to_dict() JSON
    protocols: np.ndarray = field(default_factory=lambda: np.array([""]))  # str; "": not recorded
    protocol_index: np.ndarray | None = None  # int16 (slices,); None: all slices protocols[0]

    def __post_init__(self) -> None:
        if self.protocol_index is None:
            self.protocol_index = np.zeros(len(self.nodule_index), np.int16)

    def slice_protocols(self) -> list[ScanProtocol | None]:
        """Each slice's scan protocol (``None`` where the dataset did not record it)."""
        table = [ScanProtocol.from_dict(json.loads(text)) if text else None for text in self.protocols]
        return [table[i] for i in self.protocol_index]

    @property
    def slice_labels(self) -> np.ndarray:
        return self.labels[self.nodule_index]

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{name: getattr(self, name) for name in self.__dataclass_fields__})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> NoduleDataset:
        """A saved dataset; one saved before protocols were recorded has them unrecorded."""
        with np.load(path, allow_pickle=False) as data:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def label_of(nodule: LidcNodule) -> int:
    return LABELS[nodule.label]


def build_dataset(
    spec: DatasetSpec,
    nodules: Sequence[LidcNodule],
    progress: Callable[[int, int], None] | None = None,
    chest_store: dict | None = None,
) -> NoduleDataset:
    """Render every nodule ``max(variants, 1)`` times and cut its patches.

    The renderings are made grid by grid (``chest_grid`` of their protocols): each grid's chests are
    built once, used by every rendering that needs them, then dropped, unless ``chest_store`` (a dict
    the caller keeps across datasets) holds them: it keeps the last grid's chests for the next call.
    """
    per_nodule = max(spec.variants, 1)
    samples = [(n, v) for n in range(len(nodules)) for v in range(per_nodule)]
    if spec.randomise:
        draw = np.random.default_rng([spec.seed, 12])
        protocols = [random_protocol(draw) for _ in samples]
    else:
        protocols = [spec.scan_protocol()] * len(samples)
    grids: dict[tuple[float, float], list[int]] = {}
    for i, protocol in enumerate(protocols):
        grids.setdefault(chest_grid(protocol), []).append(i)
    rng = np.random.default_rng([spec.seed, 11])
    stacks: list[np.ndarray | None] = [None] * len(samples)
    done = 0
    for (pixel, dz), members in sorted(grids.items()):
        chests = _grid_chests(spec, pixel, dz, chest_store)
        for i in members:
            nodule = nodules[samples[i][0]]
            first = int(rng.integers(len(chests)))
            jitter = Jitter.random(rng) if spec.variants else None
            for attempt in range(len(chests)):  # a large nodule may fit only one phantom's lungs
                try:
                    chest = chests[(first + attempt) % len(chests)]
                    stacks[i] = render_patches(chest, nodule, spec.patch, protocols[i], rng, jitter)
                    break
                except ValueError:
                    if attempt == len(chests) - 1:
                        raise
            done += 1
            if progress is not None:
                progress(done, len(samples))
        del chests
    table = sorted({json.dumps(p.to_dict(), sort_keys=True, allow_nan=False) for p in protocols})
    position = {text: k for k, text in enumerate(table)}
    sample_protocol = [position[json.dumps(p.to_dict(), sort_keys=True, allow_nan=False)] for p in protocols]
    counts = [len(s) for s in stacks]

    def per_slice(values, dtype) -> np.ndarray:
        return np.repeat(np.array(values, dtype), counts)

    return NoduleDataset(
        patches=np.concatenate([s.astype(np.float16) for s in stacks]),
        nodule_index=per_slice([n for n, _ in samples], np.int32),
        variant=per_slice([v + (1 if spec.variants else 0) for _, v in samples], np.int16),
        labels=np.array([label_of(n) for n in nodules], np.int8),
        attributes=to_unit_scale(np.array([[n.mean_ratings[a] for a in ATTRIBUTES] for n in nodules])).astype(
            np.float32
        ),
        diameters=np.array([n.diameter_mm for n in nodules], np.float32),
        nodule_ids=np.array([n.nodule_id for n in nodules]),
        patient_ids=np.array([n.patient_id for n in nodules]),
        protocols=np.array(table),
        protocol_index=per_slice(sample_protocol, np.int16),
    )


def _grid_chests(spec: DatasetSpec, pixel: float, dz: float, store: dict | None) -> list[Chest]:
    key = (spec.chest_size, pixel, dz, spec.seed, spec.chests)
    if store is not None and key in store:
        return store[key]
    if store is not None:
        store.clear()  # one grid's chests at a time: a chest is 0.25-0.5 GiB
    chests = [
        build_chest(
            ChestConfig(
                rows=spec.chest_size,
                columns=spec.chest_size,
                slices=round(300 / dz),
                pixel_spacing=pixel,
                slice_spacing=dz,
                seed=spec.seed * 100 + i,
            )
        )
        for i in range(spec.chests)
    ]
    if store is not None:
        store[key] = chests
    return chests


def render_patches(
    chest: Chest, nodule: LidcNodule, patch: PatchConfig, protocol: ScanProtocol, rng, jitter: Jitter | None
) -> np.ndarray:
    """One nodule at a fresh site of ``chest``, scanned with ``protocol``, cut into patches."""
    volume, centre_mm = render_crop(chest, nodule, patch.fov_mm * 0.7 + 4.0, protocol, rng)
    return extract_patches(volume, centre_mm, nodule.diameter_mm, patch, jitter)


def render_crop(chest: Chest, nodule: LidcNodule, half_width_mm: float, protocol: ScanProtocol, rng):
    """``nodule`` at a fresh site of ``chest`` (random kind), in a crop scanned with ``protocol``
    (``core.phantom.scan``; the chest's grid must be ``chest_grid(protocol)``'s).

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
    fine = needs_reslice(protocol, sz)
    depth = radius + 4.0 + (protocol.slice_thickness_mm + protocol.slice_interval_mm if fine else 0.0)
    half = np.ceil(np.array([depth, half_width_mm, half_width_mm]) / np.array([sz, sy, sx])).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, chest.hu.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    crop = np.array(chest.hu[box], dtype=np.int16)
    local = tuple(int(v) for v in centre - lo)
    if fine or protocol.lung_density_hu or protocol.lung_texture_hu or protocol.vessel_contrast != 1:
        crop = adjust_lungs(crop.astype(np.float32), chest.lung_mask[box], protocol, chest.spacing, rng)
    render_nodule(crop, nodule, local, chest.spacing, seed=int(rng.integers(2**31)))
    z0 = 0.0
    if fine:
        phase = local[0] * sz + float(rng.uniform(-0.5, 0.5)) * protocol.slice_interval_mm
        crop, z0 = reslice(crop, sz, protocol, phase)
        sz = protocol.slice_interval_mm
    crop = reconstruct(crop, (sx, sy, sz), protocol, rng)
    affine = np.diag([sx, sy, sz, 1.0])
    affine[2, 3] = z0
    volume = CTVolume(crop, affine)
    centre_mm = tuple(float(v) for v in np.array([local[2] * sx, local[1] * sy, local[0] * chest.spacing[2]]))
    return volume, centre_mm


def cached_dataset(
    spec: DatasetSpec,
    pool: Sequence[LidcNodule] | None = None,
    progress: Callable[[int, int], None] | None = None,
    chest_store: dict | None = None,
) -> NoduleDataset:
    """Load the dataset for ``spec`` from the cache, or build and cache it (``build_dataset``)."""
    path = user_dir("cache") / "datasets" / f"{spec.split}-{spec.key()}.npz"
    if path.is_file():
        dataset = NoduleDataset.load(path)
        if not dataset.protocols[0] and not spec.randomise:  # cached before protocols were recorded
            dataset.protocols = np.array(
                [json.dumps(spec.scan_protocol().to_dict(), sort_keys=True, allow_nan=False)]
            )
        return dataset
    if pool is None:
        from core.lidc.table import load_nodules

        pool = load_nodules()
    dataset = build_dataset(spec, spec.select(pool), progress, chest_store)
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
        protocols=data.protocols,
        protocol_index=data.protocol_index[rows],
    )
