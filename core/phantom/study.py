"""A whole phantom chest CT study: anatomy, real LIDC nodules of one split, noise, DICOM + truth.

Which nodules a phantom holds is chosen at random from its split (the fixed patient splits), never by
label; how each looks comes from its mask and attribute ratings only (``core.phantom.nodules``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.lidc.records import LidcNodule
from core.lidc.splits import SPLITS
from core.nodule.markers import TRUTH_SCHEMA
from core.nodule.ratings import RATINGS
from core.phantom.anatomy import Chest, ChestConfig, add_noise, build_chest
from core.phantom.appearance import appearance_from_ratings
from core.phantom.dicom_writer import SeriesIdentity, write_ct_series
from core.phantom.nodules import render_nodule
from core.util.atomic import atomic_write_text
from core.volume import CTVolume, VolumeMetadata

NOTICE = "Phantom CT with real LIDC-IDRI nodule shapes and ratings: research demo, not for clinical use."
SITES = ("parenchymal", "juxtapleural", "perivascular")
SCAN_LENGTH_MM = 300.0


@dataclass(frozen=True)
class PhantomOptions:
    seed: int = 0
    split: str = "train"
    nodules: int = 5
    pixel_spacing: float = 0.7
    slice_thickness: float = 1.0
    noise: float = 20.0
    size: int = 512
    min_diameter_mm: float = 3.0
    max_diameter_mm: float = 30.0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if not 0 <= self.nodules <= 20:
            raise ValueError(f"nodules must be 0..20, not {self.nodules}")
        # the scanner's ranges (core.phantom.anatomy), checked here, before ``slices`` divides by the
        # thickness (0 was a ZeroDivisionError traceback) and before any rendering is announced
        if not 0.625 <= self.slice_thickness <= 3.0:  # NaN fails every comparison: refused too
            raise ValueError(f"slice thickness must be 0.625-3 mm, not {self.slice_thickness}")
        if not 0.5 <= self.pixel_spacing <= 1.0:
            raise ValueError(f"pixel spacing must be 0.5-1.0 mm, not {self.pixel_spacing}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0 HU, not {self.noise}")
        if not 64 <= self.size <= 2048:
            raise ValueError(f"size must be 64..2048 pixels, not {self.size}")

    @property
    def slices(self) -> int:
        return round(SCAN_LENGTH_MM * self.size / 512 / self.slice_thickness)


@dataclass(frozen=True)
class PlacedNodule:
    index: int
    nodule: LidcNodule
    centre_zyx: tuple[int, int, int]
    centre_mm: tuple[float, float, float]
    site: str
    shift_zyx: tuple[float, float, float] = (0.0, 0.0, 0.0)  # sub-voxel, see ``build_phantom``

    def truth(self) -> dict:
        n = self.nodule
        means = n.mean_ratings
        return {
            "id": f"n{self.index + 1}",
            "centre_mm": [round(v, 2) for v in self.centre_mm],
            "centre_voxel_zyx": list(self.centre_zyx),
            "diameter_mm": round(n.diameter_mm, 2),
            "mean_ratings": {name: round(means[name], 3) for name in RATINGS},
            "label": n.label,
            "texture_class": appearance_from_ratings(means).texture_class,
            "site": self.site,
            "split": n.split,
            "lidc": {
                "nodule_id": n.nodule_id,
                "patient_id": n.patient_id,
                "scan_id": n.scan_id,
                "annotation_ids": list(n.annotation_ids),
                "n_readers": n.n_readers,
            },
        }


def choose_nodules(pool: Sequence[LidcNodule], options: PhantomOptions) -> list[LidcNodule]:
    """A random choice of the split's nodules in the diameter range (never looks at labels)."""
    eligible = sorted(
        (
            n
            for n in pool
            if n.split == options.split
            and options.min_diameter_mm <= n.diameter_mm <= options.max_diameter_mm
        ),
        key=lambda n: n.nodule_id,
    )
    if len(eligible) < options.nodules:
        raise ValueError(f"only {len(eligible)} eligible nodules in the {options.split} split")
    rng = np.random.default_rng([options.seed, 1])
    picks = rng.choice(len(eligible), size=options.nodules, replace=False)
    return [eligible[i] for i in sorted(picks)]


def place_nodules(chest: Chest, nodules: Sequence[LidcNodule], rng) -> list[tuple[tuple[int, int, int], str]]:
    spacing = np.array(chest.spacing[::-1])  # (z, y, x) mm
    placed: list[tuple[np.ndarray, float]] = []
    sites = []
    for nodule in nodules:
        radius = nodule.diameter_mm / 2
        for attempt in range(40):
            kind = SITES[int(rng.integers(len(SITES)))] if attempt < 30 else "parenchymal"
            try:
                centre = np.array(chest.pick_site(kind, radius, rng))
            except ValueError:
                continue
            clear = all(np.linalg.norm((centre - c) * spacing) > radius + r + 5 for c, r in placed)
            if clear:
                placed.append((centre, radius))
                sites.append((tuple(int(v) for v in centre), kind))
                break
        else:
            raise ValueError(
                f"no room in the lungs for nodule {nodule.nodule_id} ({nodule.diameter_mm:.1f} mm)"
            )
    return sites


def chest_config(options: PhantomOptions) -> ChestConfig:
    """The anatomy ``options`` asks for (one patient per seed)."""
    return ChestConfig(
        rows=options.size,
        columns=options.size,
        slices=options.slices,
        pixel_spacing=options.pixel_spacing,
        slice_spacing=options.slice_thickness,
        noise_sigma=options.noise,
        seed=options.seed,
    )


def build_phantom(
    options: PhantomOptions,
    nodules: Sequence[LidcNodule],
    *,
    noise_seed: int | None = None,
    shift_zyx: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[CTVolume, list[PlacedNodule]]:
    """Render the study in memory: the volume (int16 HU) and where each nodule went.

    For repeatability (a second rendering of the same study): ``noise_seed`` draws other noise and
    ``shift_zyx`` (voxels, each within +-0.5) moves every nodule that far against the grid; anatomy,
    placement and the nodules' own texture stay the same."""
    if len(shift_zyx) != 3 or not all(abs(float(v)) <= 0.5 for v in shift_zyx):
        raise ValueError(f"the nodules' shift must be 3 values within +-0.5 voxel, not {shift_zyx}")
    if noise_seed is not None and int(noise_seed) < 0:
        raise ValueError(f"the noise seed must be a non-negative integer, not {noise_seed}")
    shift = tuple(float(v) for v in shift_zyx)
    chest = build_chest(chest_config(options))
    rng = np.random.default_rng([options.seed, 2])
    sites = place_nodules(chest, nodules, rng)
    hu = np.array(chest.hu, dtype=np.int16, copy=True)
    for nodule, (centre, _) in zip(nodules, sites, strict=True):
        render_nodule(hu, nodule, centre, chest.spacing, options.seed, shift)
    # [seed, 3, 0] would draw the same noise as [seed, 3] (SeedSequence pads with zeros): hence 1 +
    noise_key = [options.seed, 3] if noise_seed is None else [options.seed, 3, 1 + int(noise_seed)]
    hu = add_noise(hu, options.noise, chest.spacing, np.random.default_rng(noise_key))
    volume = as_volume(hu, chest.spacing, options)
    placed = [
        PlacedNodule(i, n, centre, tuple(float(v) for v in volume.voxel_to_mm(centre[::-1])), site, shift)
        for i, (n, (centre, site)) in enumerate(zip(nodules, sites, strict=True))
    ]
    return volume, placed


def as_volume(hu: np.ndarray, spacing_xyz, options: PhantomOptions) -> CTVolume:
    """``hu`` on an axis-aligned grid of ``spacing_xyz`` mm, the patient centred in the scan."""
    affine = np.diag([*spacing_xyz, 1.0])
    shape_xyz = np.array(hu.shape[::-1])
    affine[:3, 3] = -(shape_xyz - 1) / 2 * np.array(spacing_xyz)  # patient centred in the scan
    meta = VolumeMetadata(modality="CT", series_description=f"phantom {options.split} seed {options.seed}")
    return CTVolume(hu, affine, meta)


def identity_for(options: PhantomOptions) -> SeriesIdentity:
    key = json.dumps(asdict(options), sort_keys=True, allow_nan=False)
    return SeriesIdentity(
        key=key,
        patient_name=f"PHANTOM^{options.split.upper()}^{options.seed}",
        patient_id=f"PHANTOM-{options.split}-{options.seed:04d}",
        study_description="Phantom chest CT with LIDC nodules (research demo)",
        series_description=f"Phantom {options.pixel_spacing:g} mm x {options.slice_thickness:g} mm",
    )


def write_phantom(
    out_dir: str | Path,
    options: PhantomOptions,
    nodules: Sequence[LidcNodule],
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``out_dir/CT/*.dcm``, ``out_dir/ground_truth.json`` and ``out_dir/markers.json`` (the
    nodules as markers, for ``predict``, ``report`` and ``batch``). ``out_dir`` must not hold a study.

    ``nodules``: usually ``choose_nodules(load_nodules(), options)``; ``progress`` is told each stage.
    """
    say = progress or (lambda text: None)
    wrong = [n.nodule_id for n in nodules if n.split != options.split]
    if wrong:
        raise ValueError(f"nodules from outside the {options.split} split: {', '.join(wrong[:3])}")
    out_dir = Path(out_dir)
    if any((out_dir / name).exists() for name in ("CT", "ground_truth.json", "markers.json")):
        raise FileExistsError(f"{out_dir}: already holds a phantom study; choose an empty folder")
    say(f"rendering a {options.size}x{options.size}x{options.slices} chest with {len(nodules)} nodule(s)")
    volume, placed = build_phantom(options, nodules)
    identity = identity_for(options)
    say(f"writing {options.slices} DICOM slices into {out_dir / 'CT'}")
    write_study(
        out_dir, volume, identity, {"options": asdict(options), "nodules": [p.truth() for p in placed]}
    )
    return out_dir


def write_study(out_dir: Path, volume: CTVolume, identity: SeriesIdentity, truth: dict) -> None:
    """``out_dir/CT/*.dcm``, then ``markers.json`` (``truth["nodules"]`` as markers) and last
    ``ground_truth.json`` (``truth`` with the schema, notice and UIDs), each file written atomically."""
    from core.nodule.markers import NoduleMarker, markers_entry, write_markers

    out_dir.mkdir(parents=True, exist_ok=True)
    write_ct_series(volume, out_dir / "CT", identity)
    truth = {
        "schema": TRUTH_SCHEMA,
        "notice": NOTICE,
        "study_uid": identity.study_uid,
        "series_uid": identity.series_uid,
        **truth,
    }
    write_markers(
        out_dir / "markers.json", [NoduleMarker.from_dict(markers_entry(n)) for n in truth["nodules"]]
    )
    atomic_write_text(out_dir / "ground_truth.json", json.dumps(truth, indent=2, allow_nan=False))


def truth_masks(volume: CTVolume, placed: Sequence[PlacedNodule]):
    """Each placed nodule's consensus mask in the volume's grid, as ``NoduleMask`` (method "truth"),
    keyed by the nodule's truth id (``n1``, ``n2``...): the reference for measuring segmentation."""
    from core.measure.mask import NoduleMask
    from core.phantom.nodules import truth_mask_box

    masks = {}
    for p in placed:
        origin, box = truth_mask_box(p.nodule, p.centre_zyx, volume.spacing, p.shift_zyx)
        mask = NoduleMask(origin, box, "truth", p.centre_mm, p.nodule.diameter_mm)
        masks[f"n{p.index + 1}"] = mask.clipped(volume.shape).cropped()  # a nodule at the edge
    return masks
