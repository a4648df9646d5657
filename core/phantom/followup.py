"""A phantom follow-up: one patient scanned twice, ``interval_days`` apart, with known changes.

The prior is an ordinary phantom study (``core.phantom.study``). The current one is the same chest
(one anatomy per seed) with its nodules changed and the patient repositioned:

* each nodule present in both is grown or shrunk by a known volume factor: its LIDC mask is scaled
  isotropically about its centroid (the mask's voxel size times the cube root of the factor), so it
  keeps its readers' shape; one prior nodule is gone ("resolved") and one new nodule appears;
* the patient lies differently: a rigid motion ``prior -> current`` in LPS mm (a shift of up to
  ``max_shift_mm``, less along the body axis, and a rotation of a few degrees, mostly about the body
  axis), applied by resampling the noise-free current chest onto the current scan's own grid
  (SimpleITK, linear; a thicker current slice is blurred along z first); the noise is added last;
* the studies share PatientID, name and birth date; StudyInstanceUID, FrameOfReferenceUID and
  StudyDate differ (the current on 2026-01-01, the prior ``interval_days`` earlier).

Which nodules are new, resolved, growing, stable or shrinking is drawn from the seed (never from the
labels); everything is deterministic per seed and options.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from core.lidc.records import LidcNodule
from core.phantom.anatomy import add_noise, build_chest
from core.phantom.nodules import render_nodule
from core.phantom.study import (
    SCAN_LENGTH_MM,
    PhantomOptions,
    PlacedNodule,
    as_volume,
    chest_config,
    identity_for,
    place_nodules,
)
from core.volume import CTVolume

SCHEMA = "mtmr-reader/phantom-follow-up-truth/1"
CURRENT_DATE = dt.date(2026, 1, 1)
# Volume factors by trend: "stable" is exactly 1, the others drawn uniformly in their range.
TRENDS = {"growing": (1.3, 2.5), "stable": (1.0, 1.0), "shrinking": (0.45, 0.8)}


@dataclass(frozen=True)
class FollowUpOptions:
    """How the current study differs from the prior (``PhantomOptions`` describes the prior)."""

    interval_days: int = 365
    current_slice_thickness: float | None = None  # mm; None: the prior's
    max_shift_mm: float = 15.0  # per axis at 512 px (scaled with the field of view); half along z
    max_rotation_deg: float = 4.0  # about the body axis; half about the others

    def __post_init__(self) -> None:
        if not isinstance(self.interval_days, (int, np.integer)) or not 1 <= self.interval_days <= 3650:
            raise ValueError(f"interval days must be 1..3650, not {self.interval_days}")
        thickness = self.current_slice_thickness
        if thickness is not None and not 0.625 <= thickness <= 3.0:
            raise ValueError(f"current slice thickness must be 0.625-3 mm, not {thickness}")
        if not 0 <= self.max_shift_mm <= 30 or not 0 <= self.max_rotation_deg <= 10:
            raise ValueError("shift must be 0-30 mm and rotation 0-10 degrees")


@dataclass(frozen=True)
class FollowUp:
    """Both studies in memory, where each nodule went, and the truth (``truth["pairs"]`` etc.)."""

    prior: CTVolume
    current: CTVolume
    prior_nodules: list[PlacedNodule]
    current_nodules: list[PlacedNodule]
    current_options: PhantomOptions
    prior_to_current: np.ndarray  # 4x4, LPS mm
    truth: dict


def scaled_nodule(nodule: LidcNodule, volume_factor: float) -> LidcNodule:
    """``nodule`` with its mask scaled isotropically about its centroid to ``volume_factor`` times the
    volume: the same voxels on a grid ``volume_factor ** (1/3)`` times as large."""
    k = float(volume_factor) ** (1 / 3)
    centroid = np.asarray(nodule.centroid_mm)

    def about(point) -> tuple[float, float, float]:
        return tuple(float(v) for v in centroid + (np.asarray(point) - centroid) * k)

    low, high = about([b[0] for b in nodule.bbox_mm]), about([b[1] for b in nodule.bbox_mm])
    return replace(
        nodule,
        diameter_mm=nodule.diameter_mm * k,
        mask_spacing=tuple(s * k for s in nodule.mask_spacing),
        mask_origin_mm=about(nodule.mask_origin_mm),
        bbox_mm=tuple(zip(low, high, strict=True)),
    )


def rigid_motion(seed: int, options: PhantomOptions, follow: FollowUpOptions) -> tuple[np.ndarray, dict]:
    """The patient's repositioning ``prior -> current`` (4x4, LPS mm, about the scan centre) and its
    description (rotation in degrees about x, y, z; translation in mm)."""
    rng = np.random.default_rng([seed, 5])
    scale = options.size / 512  # a smaller field of view holds a smaller patient (core.phantom.anatomy)
    shift = rng.uniform(-1, 1, 3) * follow.max_shift_mm * scale * np.array([1.0, 1.0, 0.5])
    angles = rng.uniform(-1, 1, 3) * follow.max_rotation_deg * np.array([0.5, 0.5, 1.0])
    rx, ry, rz = np.radians(angles)
    about_x = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    about_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    about_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = about_z @ about_y @ about_x
    matrix[:3, 3] = shift
    described = {
        "rotation_deg_xyz": [round(float(a), 4) for a in angles],
        "translation_mm": [round(float(t), 4) for t in shift],
    }
    return matrix, described


def _plan(nodules: Sequence[LidcNodule], seed: int) -> tuple[int, int, list[float], list[str]]:
    """Which nodule is new, which resolved, and each nodule's volume factor and trend."""
    rng = np.random.default_rng([seed, 4])
    new, resolved = (int(i) for i in rng.choice(len(nodules), size=2, replace=False))
    cycle = list(TRENDS)
    start = int(rng.integers(len(cycle)))
    trends = [cycle[(start + i) % len(cycle)] for i in range(len(nodules))]
    factors = [float(rng.uniform(*TRENDS[t])) for t in trends]
    return new, resolved, factors, trends


def build_follow_up(
    options: PhantomOptions,
    follow: FollowUpOptions,
    nodules: Sequence[LidcNodule],
    progress: Callable[[str], None] | None = None,
) -> FollowUp:
    """Render both studies in memory. ``nodules``: those of both studies (``options.nodules + 1``:
    one is only in the current study, one only in the prior)."""
    say = progress or (lambda text: None)
    if len(nodules) < 3:
        raise ValueError("a follow-up needs at least 2 prior nodules (one resolves) and one new")
    new, resolved, factors, trends = _plan(nodules, options.seed)
    later = [
        scaled_nodule(n, f) if i != new else n for i, (n, f) in enumerate(zip(nodules, factors, strict=True))
    ]
    say(f"rendering a {options.size}x{options.size}x{options.slices} chest")
    chest = build_chest(chest_config(options))
    # Room for the larger of each nodule's two sizes, so neither touches a neighbour.
    biggest = [b if b.diameter_mm > a.diameter_mm else a for a, b in zip(nodules, later, strict=True)]
    sites = place_nodules(chest, biggest, np.random.default_rng([options.seed, 2]))

    def render(members: Sequence[int], versions: Sequence[LidcNodule]) -> np.ndarray:
        hu = np.array(chest.hu, dtype=np.int16, copy=True)
        for i in members:
            render_nodule(hu, versions[i], sites[i][0], chest.spacing, options.seed)
        return hu

    in_prior = [i for i in range(len(nodules)) if i != new]
    in_current = [i for i in range(len(nodules)) if i != resolved]
    say("rendering the prior study")
    hu = add_noise(
        render(in_prior, nodules), options.noise, chest.spacing, np.random.default_rng([options.seed, 3])
    )
    prior = as_volume(hu, chest.spacing, options)
    placed_prior = [_placed(k, nodules[i], sites[i], prior) for k, i in enumerate(in_prior)]

    thickness = follow.current_slice_thickness or options.slice_thickness
    current_options = replace(options, slice_thickness=thickness)
    motion, described = rigid_motion(options.seed, options, follow)
    say("rendering the current study, the patient repositioned")
    moved = _resample(render(in_current, later), prior, current_options, motion)
    current_spacing = (options.pixel_spacing, options.pixel_spacing, thickness)
    hu = add_noise(moved, options.noise, current_spacing, np.random.default_rng([options.seed, 6]))
    current = as_volume(hu, current_spacing, current_options)
    # The current study lists its nodules in another order, so ids never pair them by themselves.
    order = [in_current[j] for j in np.random.default_rng([options.seed, 7]).permutation(len(in_current))]
    placed_current = [_placed(k, later[i], sites[i], prior, current, motion) for k, i in enumerate(order)]
    outside = [p.nodule.nodule_id for p in placed_current if not current.contains_mm(np.array(p.centre_mm))]
    if outside:  # a nodule near the scan's end moved out of it
        raise ValueError(f"nodule {outside[0]} moved out of the current scan; choose another seed")

    ids_prior = {i: p.truth()["id"] for i, p in zip(in_prior, placed_prior, strict=True)}
    ids_current = {i: p.truth()["id"] for i, p in zip(order, placed_current, strict=True)}
    pairs = [
        {
            "prior_id": ids_prior[i],
            "current_id": ids_current[i],
            "trend": trends[i],
            "volume_factor": round(factors[i], 6),
            "prior_volume_mm3": round(_volume_mm3(nodules[i]), 3),
            "current_volume_mm3": round(_volume_mm3(nodules[i]) * factors[i], 3),
            "prior_diameter_mm": round(nodules[i].diameter_mm, 3),
            "current_diameter_mm": round(later[i].diameter_mm, 3),
            "lidc_nodule_id": nodules[i].nodule_id,
        }
        for i in in_prior
        if i != resolved
    ]
    truth = {
        "schema": SCHEMA,
        "interval_days": int(follow.interval_days),
        "prior_to_current": {"matrix": [[round(float(v), 9) for v in row] for row in motion], **described},
        "pairs": pairs,
        "new": [ids_current[new]],
        "resolved": [ids_prior[resolved]],
    }
    return FollowUp(prior, current, placed_prior, placed_current, current_options, motion, truth)


def _volume_mm3(nodule: LidcNodule) -> float:
    return float(nodule.mask.sum() * np.prod(nodule.mask_spacing))


def _placed(
    index, nodule, site, prior: CTVolume, current: CTVolume | None = None, motion=None
) -> PlacedNodule:
    centre_zyx, kind = site
    centre = prior.voxel_to_mm(np.array(centre_zyx[::-1], dtype=np.float64))
    if current is not None:
        centre = motion[:3, :3] @ centre + motion[:3, 3]
        centre_zyx = tuple(int(v) for v in np.rint(current.mm_to_voxel(centre)[::-1]))
    return PlacedNodule(index, nodule, centre_zyx, tuple(float(v) for v in centre), kind)


def _resample(hu: np.ndarray, prior: CTVolume, options: PhantomOptions, motion: np.ndarray) -> np.ndarray:
    """The chest ``hu`` (on the prior's grid) seen on the current scan's grid after ``motion``."""
    import SimpleITK as sitk
    from scipy.ndimage import gaussian_filter1d

    thickness, prior_thickness = options.slice_thickness, prior.spacing[2]
    if thickness > prior_thickness:  # a thick slice averages what thin slices resolve
        sigma = np.sqrt(thickness**2 - prior_thickness**2) / 2.355 / prior_thickness
        hu = gaussian_filter1d(hu, sigma, axis=0, output=np.int16, mode="nearest")
    source = sitk.GetImageFromArray(hu)
    source.SetSpacing(prior.spacing)
    source.SetOrigin(prior.origin)
    shape = (options.size, options.size, round(SCAN_LENGTH_MM * options.size / 512 / thickness))
    spacing = (options.pixel_spacing, options.pixel_spacing, thickness)
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(shape, spacing, strict=True))  # as as_volume
    back = np.linalg.inv(motion)  # ITK maps output (current) points to input (prior) points
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in back[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in back[:3, 3]))
    moved = sitk.Resample(
        source, shape, transform, sitk.sitkLinear, origin, spacing, (1, 0, 0, 0, 1, 0, 0, 0, 1),
        -1000.0, sitk.sitkFloat32, True,  # beyond the prior's ends: its edge slices, not air
    )  # fmt: skip
    return np.rint(sitk.GetArrayFromImage(moved)).astype(np.int16)


def identities(options: PhantomOptions, follow: FollowUpOptions, current: PhantomOptions):
    """The prior's and the current study's DICOM identities: one patient, two studies."""
    base = identity_for(options)
    birth = f"{1940 + options.seed % 40}0{1 + options.seed % 9}15"
    prior_date = CURRENT_DATE - dt.timedelta(days=int(follow.interval_days))
    prior = replace(
        base, key=base.key + "/prior", patient_birth_date=birth, study_date=f"{prior_date:%Y%m%d}"
    )
    later = identity_for(current)
    return prior, replace(
        base,
        key=base.key + f"/current/{follow.interval_days}/{current.slice_thickness}",
        patient_birth_date=birth,
        study_date=f"{CURRENT_DATE:%Y%m%d}",
        series_description=later.series_description,
    )


def write_follow_up(
    out_dir: str | Path,
    options: PhantomOptions,
    follow: FollowUpOptions,
    nodules: Sequence[LidcNodule],
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``out_dir/prior/`` and ``out_dir/current/`` (each a study as ``write_phantom`` writes
    one) and ``out_dir/ground_truth.json`` (the pairs, new, resolved, the motion and the interval;
    each study's own truth carries it too, as ``follow_up``). Nothing is left half-written."""
    import json
    import shutil

    from core.phantom.study import write_study
    from core.util.atomic import atomic_write_text

    say = progress or (lambda text: None)
    wrong = [n.nodule_id for n in nodules if n.split != options.split]
    if wrong:
        raise ValueError(f"nodules from outside the {options.split} split: {', '.join(wrong[:3])}")
    out_dir = Path(out_dir)
    if any((out_dir / name).exists() for name in ("prior", "current", "ground_truth.json")):
        raise FileExistsError(f"{out_dir}: already holds a phantom follow-up; choose an empty folder")
    pair = build_follow_up(options, follow, nodules, say)
    prior_id, current_id = identities(options, follow, pair.current_options)
    truth = {
        "notice": "Phantom follow-up pair: research demo, not for clinical use.",
        "options": asdict(options),
        "follow_up_options": asdict(follow),
        **pair.truth,
        "prior": {"folder": "prior", "study_uid": prior_id.study_uid, "study_date": prior_id.study_date},
        "current": {
            "folder": "current",
            "study_uid": current_id.study_uid,
            "study_date": current_id.study_date,
        },
    }
    written = []
    try:
        for role, volume, identity, placed, opts in (
            ("prior", pair.prior, prior_id, pair.prior_nodules, options),
            ("current", pair.current, current_id, pair.current_nodules, pair.current_options),
        ):
            say(f"writing {volume.shape[0]} DICOM slices into {out_dir / role / 'CT'}")
            written.append(out_dir / role)
            own = {"options": asdict(opts), "nodules": [p.truth() for p in placed]}
            write_study(out_dir / role, volume, identity, own | {"follow_up": {"role": role} | truth})
        atomic_write_text(out_dir / "ground_truth.json", json.dumps(truth, indent=2, allow_nan=False))
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return out_dir
