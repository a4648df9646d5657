"""A nodule's 3D mask from a marker (centre + rough diameter), in the CT's own grid.

The method (issue 17; chosen by ``bench/bench_segmentation.py``):

1. A box around the marker, lightly smoothed (more where the series is noisy: sharp kernel, low dose).
2. The local parenchyma level: the median of the lung-density voxels in the box. A marker with too
   little lung around it is refused (outside the lungs, in air outside the body, in the wall).
3. A threshold adapted to the nodule: half-way between the parenchyma and the nodule's own tissue at
   its edge (its outer layer, so the ground-glass rim of a part-solid nodule counts, not its solid
   core), found by iterating from a ground-glass-low start. The half-level is where the edge of a
   blurred object lies: the mask holds the voxels at least half nodule.
4. The dense region connected to the seed, inside the lung field closed over pleural nodules (the
   wall and mediastinum stay out, ``core.measure.lungs``), cut off the vessels that touch it by
   erosion and reconstruction (``core.measure.separate``). A marker drawn much smaller than its
   nodule is tried again at 2x and 4x its diameter.

``partial_volume_mm3`` counts the mask's edge voxels and a band around it by their share of
tissue: a volume that a sub-voxel shift of the nodule against the grid barely moves (the voxel count
moves by a layer), and that keeps the tissue of a blurred edge or a tight mask.
The hybrid (``segment_nodule``, what ships): the classical mask first; where it is suspect, a marker
under ``LEARNED_BELOW_MM`` (small nodules, thin against the slices, often perivascular) or a mask whose
median density is ground glass (below ``GROUND_GLASS_HU``), the learned 3D U-Net's mask
(``core.measure.learned``) instead. Chosen on validation-split phantoms (LIDC-IDRI 0701-0850, seeds
1-3): the learned mask is better there on ground glass and small nodules, the classical one on solid
nodules of 8 mm and more. Where the learned segmenter cannot run (no torch, damaged weights) or
refuses, the classical mask stays, with a warning saying so.
Figures, per subset and beside the baselines: README, "Measuring nodules". Its repeatability (the
95 % limits of the same nodule measured twice, which the follow-up's "within measurement error" uses):
``core.measure.measurement.REPEATABILITY_VOLUME_PERCENT`` and ``REPEATABILITY_DIAMETER_MM`` (and
``REPEATABILITY_PAIRED_VOLUME_PERCENT`` for a follow-up's two volumes measured together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import ndimage

from core.measure.lungs import lung_field
from core.measure.mask import NoduleMask, SegmentationError
from core.measure.separate import separate
from core.util.safetensors_io import SafetensorsFileError
from core.volume import CTVolume

METHOD = "classical/adaptive-separate-v1"
LUNG_HU = (-980.0, -600.0)  # parenchyma, without air and without tissue
START_TISSUE_HU = -650.0  # the faintest ground glass: the first threshold's tissue level
THICK_SLICE_MM = 2.5
MIN_CONTRAST_HU = 80.0  # a nodule's densest voxel stands this far above the parenchyma (smoothed)
MIN_DIAMETER_MM, MAX_DIAMETER_MM = 2.0, 60.0
LEARNED_BELOW_MM = 8.0  # the hybrid: markers under this go to the learned segmenter
GROUND_GLASS_HU = -400.0  # ... and classical masks whose median HU is below this
BAND_MM = 1.5  # partial_volume_mm3: the band around the mask whose voxels count by their share
SHARE_TISSUE_PERCENTILE = 60.0  # partial_volume_mm3: the edge layer's percentile taken as 'tissue'


def segment_nodule(volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> NoduleMask:
    """The nodule at ``centre_mm`` (LPS) of about ``diameter_mm`` by the hybrid (module docstring):
    the classical mask, or the learned one where ``learned_reason`` says why; SegmentationError when
    the classical method refuses the marker (air, outside the lungs or the volume)."""
    classical = segment_nodule_classical(volume, centre_mm, diameter_mm)
    reason = learned_reason(volume, classical, diameter_mm)
    if reason is None:
        return classical
    try:
        from core.measure.learned import segment_nodule_learned

        learned = segment_nodule_learned(volume, centre_mm, diameter_mm)
    except (ImportError, SegmentationError, SafetensorsFileError) as exc:
        note = f"{reason}, but the learned segmenter could not help ({exc}): classical mask kept"
        return replace(classical, warnings=(*classical.warnings, note))
    warnings = classical.warnings + tuple(w for w in learned.warnings if w not in classical.warnings)
    return replace(learned, warnings=warnings)


def learned_reason(volume: CTVolume, classical: NoduleMask, diameter_mm: float) -> str | None:
    """Why the hybrid takes the learned mask instead of ``classical``, or None to keep it."""
    if float(diameter_mm) < LEARNED_BELOW_MM:
        return f"a {float(diameter_mm):.1f} mm marker (< {LEARNED_BELOW_MM:g} mm)"
    inside = classical.clipped(volume.shape)
    hu = float(np.median(volume.array[inside.region][inside.mask])) if inside.voxels else float("nan")
    if hu < GROUND_GLASS_HU:
        return f"ground glass (median {hu:.0f} HU < {GROUND_GLASS_HU:g})"
    return None


def segment_nodule_classical(volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> NoduleMask:
    """The classical method alone (module docstring, steps 1-4); SegmentationError when no nodule."""
    centre = np.asarray(centre_mm, dtype=np.float64)
    if centre.shape != (3,) or not np.all(np.isfinite(centre)):
        raise SegmentationError("the marker's centre is not a finite 3D point")
    where = _mm(centre)
    if not math.isfinite(float(diameter_mm)) or float(diameter_mm) <= 0:
        raise SegmentationError(f"the marker at {where} has no valid diameter ({diameter_mm})")
    diameter = float(np.clip(float(diameter_mm), MIN_DIAMETER_MM, MAX_DIAMETER_MM))
    if not volume.contains_mm(centre):
        raise SegmentationError(f"the marker at {where} lies outside the volume")
    for size in (diameter, min(2 * diameter, MAX_DIAMETER_MM), min(4 * diameter, MAX_DIAMETER_MM)):
        # a marker drawn too small leaves the nodule outside its reach: try it larger
        lo, mask = _segment(volume, centre, size, where)
        if mask is not None:
            break
    else:
        raise SegmentationError(f"the nodule at the marker {where} cannot be told from what touches it")
    warnings = []
    thickness = max(float(volume.spacing[2]), float(volume.metadata.slice_thickness or 0.0))
    if thickness >= THICK_SLICE_MM:
        warnings.append(f"{thickness:g} mm slices: the volume is less reliable than on thin slices")
    return NoduleMask(
        tuple(int(v) for v in lo),
        mask,
        METHOD,
        tuple(float(v) for v in centre),
        float(diameter_mm),
        warnings=tuple(warnings),
    ).cropped()


def _segment(volume: CTVolume, centre: np.ndarray, diameter: float, where: str):
    """(box origin, bool box mask) of the nodule for a marker of ``diameter``; mask None when the
    nodule cannot be cut off what touches it at that size."""
    spacing = np.array(volume.spacing[::-1], dtype=np.float64)  # (z, y, x) mm
    centre_zyx = volume.mm_to_voxel(centre)[::-1]
    half = 0.8 * diameter + 4.0
    lo = np.maximum(np.floor(centre_zyx - half / spacing).astype(int), 0)
    hi = np.minimum(np.ceil(centre_zyx + half / spacing).astype(int) + 1, volume.shape)
    raw = volume.array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].astype(np.float32)
    box = ndimage.gaussian_filter(raw, _sigma(raw, spacing))
    offset = np.indices(box.shape, dtype=np.float32) - (centre_zyx - lo)[:, None, None, None]
    distance = np.sqrt(((offset * spacing[:, None, None, None]) ** 2).sum(axis=0))
    lung = (box > LUNG_HU[0]) & (box < LUNG_HU[1])
    if lung.mean() < 0.15:
        raise SegmentationError(f"the marker at {where} is not in the lungs ({_what(box)} around it)")
    background = float(np.median(box[lung]))
    seed = _seed(box, distance, spacing, diameter)
    peak = float(box[seed])
    if peak < background + MIN_CONTRAST_HU:
        raise SegmentationError(f"no nodule at the marker {where}: only lung parenchyma or air there")
    reach = distance <= 0.75 * diameter + 2.0
    near = distance <= max(0.25 * diameter, float(spacing.max()))
    inside = lung_field(box, background, spacing, 0.6 * diameter + 1.0)
    tissue = START_TISSUE_HU
    mask = None
    for _ in range(3):
        threshold = background + 0.5 * (min(tissue, peak) - background)
        found = separate((box >= threshold) & inside, seed, spacing, near, reach)
        if not found.any():
            break
        mask = found
        tissue = _edge_tissue(box, mask, spacing)
    return lo, mask


def _sigma(raw: np.ndarray, spacing: np.ndarray) -> tuple[float, float, float]:
    """Gaussian sigma (voxels): 0.3 mm, up to 1 mm where the noise is high (sharp kernel, low dose)."""
    lung = (raw > LUNG_HU[0]) & (raw < LUNG_HU[1])
    noise = float(np.std(np.diff(raw, axis=2)[lung[:, :, 1:]])) / math.sqrt(2) if lung.any() else 0.0
    sigma_mm = float(np.interp(noise, [20.0, 80.0], [0.3, 1.0]))
    return tuple(float(sigma_mm / s) for s in spacing)


def _seed(box: np.ndarray, distance: np.ndarray, spacing: np.ndarray, diameter: float):
    """The densest voxel near the marker's centre (a marker a little off the nodule still finds it)."""
    near = distance <= max(0.25 * diameter, float(spacing.max()))
    index = np.argmax(np.where(near, box, -np.inf))
    return tuple(int(v) for v in np.unravel_index(index, box.shape))


def _edge_tissue(box: np.ndarray, mask: np.ndarray, spacing: np.ndarray, percentile: float = 75.0) -> float:
    """The nodule's tissue level at its edge: a percentile (the upper quartile unless said) of its
    layer 1-2.5 mm deep."""
    depth = ndimage.distance_transform_edt(mask, sampling=spacing)
    layer = (depth > 1.0) & (depth <= 2.5)
    if layer.sum() < 5:
        layer = depth >= 0.5 * depth.max()
    return float(np.percentile(box[layer], percentile))


def _what(box: np.ndarray) -> str:
    level = float(np.median(box))
    return "air" if level < LUNG_HU[0] else ("soft tissue or bone" if level > -300 else "mixed density")


def _mm(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in point) + ") mm"


def partial_volume_mm3(
    volume: CTVolume, mask: NoduleMask, levels: tuple[float, float] | None = None
) -> float:
    """The nodule's volume (mm^3): its tissue counted by share, on and around the mask's surface.

    A voxel count moves by a whole layer when the nodule moves by a fraction of a voxel against the
    grid (thick slices above all), and the half-level edge of a blurred or thin nodule misses the
    tissue spread into the voxels around it. Here, as in the partial-volume analysis of Kuhnigk et
    al. (IEEE Trans Med Imaging 2006;25:417-434, volumetry of solid pulmonary nodules), each voxel
    counts by its share of nodule tissue ``(HU - parenchyma) / (tissue - parenchyma)``, at most 1: the
    mask's interior (eroded by a voxel) whole, its surface voxels and the *band* around it (the
    voxels within ``BAND_MM`` of the mask, and at least its 6-neighbours) by their share. The band
    holds the edge's spread and what a mask drawn a little tight left out; its shares are not
    clipped at 0, so that its noise averages out instead of adding volume (its sum is: a band
    darker than the parenchyma takes nothing from the mask). It leaves out another
    structure: the tissue at least half dense that reaches beyond the band (the chest wall, a
    vessel the segmenter cut off, a spicule) and the band voxels nearer to it than to the mask.
    Levels: the parenchyma is the median of the lung voxels 2-4 mm beyond the band, the tissue the
    ``SHARE_TISSUE_PERCENTILE`` of the nodule's layer 1-2.5 mm deep (``_edge_tissue``; the upper
    quartile the segmenter's threshold uses read the heterogeneous edge too dense, and measured the
    volumes small: 60 chosen on validation-split phantoms, seeds 1-3, against 50 and 75), both
    from the lightly smoothed box (noise-robust); each voxel's share from its own HU (smoothing
    would spread a small nodule into its neighbours and count it twice). Where the surroundings
    hold no contrast to read a share from, the voxel count.
    A reader-edited mask (``mask.edited``) keeps the edge the reader drew: its band is only the
    faint (less than half tissue) voxels touching it, so that a shrink or an erase shrinks the volume.
    Measured on phantoms (``bench/bench_segmentation.py``, README "Measuring nodules").
    ``levels``: (parenchyma, tissue) to use instead of those read here (``partial_volume_levels``):
    ``bench/bench_volume_repeatability.py`` measures what levels shared by two scans would give.
    """
    around = _around(volume, mask)
    if around is None:
        return 0.0
    spacing, inside, raw, box, away = around
    band = ~inside & ((away <= BAND_MM) | ndimage.binary_dilation(inside))
    background, tissue = levels or _levels(box, inside, away, spacing)
    if tissue <= background + 1.0:
        return float(inside.sum() * np.prod(spacing))
    half = box >= 0.5 * (background + tissue)
    if mask.edited:  # the reader drew this edge: only the faint voxels just outside it count
        band = ndimage.binary_dilation(inside) & ~inside & ~half
    band &= ~_other_structures(half, inside, band, spacing, away)
    share = np.minimum((raw - background) / (tissue - background), 1.0)
    core = ndimage.binary_erosion(inside)
    edge = np.clip(share[inside & ~core], 0.0, None).sum()
    return float((core.sum() + edge + max(float(share[band].sum()), 0.0)) * np.prod(spacing))


def partial_volume_levels(volume: CTVolume, mask: NoduleMask) -> tuple[float, float]:
    """The (parenchyma, tissue) levels ``partial_volume_mm3`` reads around ``mask`` (HU)."""
    around = _around(volume, mask)
    if around is None:
        return float("nan"), float("nan")
    spacing, inside, _, box, away = around
    return _levels(box, inside, away, spacing)


def _around(volume: CTVolume, mask: NoduleMask):
    """(spacing zyx, the mask, raw HU, lightly smoothed HU, mm from the mask) in a box around the
    mask and its band; None for a mask outside the volume."""
    spacing = np.array(volume.spacing[::-1], dtype=np.float64)
    pad = np.ceil((BAND_MM + 4.0) / spacing).astype(int) + 1
    lo = np.maximum(np.subtract(mask.origin_zyx, pad), 0)
    hi = np.minimum(np.add(mask.origin_zyx, mask.mask.shape) + pad, volume.shape)
    region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    inside = mask.in_volume(volume.shape)[region]
    if not inside.any():
        return None
    raw = volume.array[region].astype(np.float32)
    box = ndimage.gaussian_filter(raw, _sigma(raw, spacing))
    return spacing, inside, raw, box, ndimage.distance_transform_edt(~inside, sampling=spacing)


def _levels(box, inside, away, spacing) -> tuple[float, float]:
    shell = (away > BAND_MM + 2.0) & (away <= BAND_MM + 4.0) & (box > LUNG_HU[0]) & (box < LUNG_HU[1])
    background = float(np.median(box[shell])) if shell.sum() >= 5 else float(np.median(box[~inside]))
    return background, _edge_tissue(box, inside, spacing, SHARE_TISSUE_PERCENTILE)


def _other_structures(dense, inside, band, spacing, away) -> np.ndarray:
    """The voxels that belong to something else than the nodule: dense tissue outside the mask
    connected to dense tissue beyond the band (wall, vessel, spicule), and the voxels nearer to it
    than to the mask."""
    dense = dense & ~inside
    labels, _ = ndimage.label(dense)
    reaching = np.unique(labels[dense & ~band])
    other = np.isin(labels, reaching[reaching > 0])
    if not other.any():
        return other
    return other | (ndimage.distance_transform_edt(~other, sampling=spacing) <= away)
