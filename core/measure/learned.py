"""A nodule's 3D mask from a marker by a learned 3D U-Net (``models.seg3d``) trained on phantoms.

The patch: ``PATCH``^3 voxels, isotropic, along the CT's own voxel axes, centred on the marker, its
field of view ``FOV_PER_DIAMETER`` times the marker's diameter. Scaling the patch to the marker
(rather than a fixed mm spacing) gives a 4 mm nodule 0.3 mm voxels and a 25 mm one 2 mm voxels, so
small nodules are not a handful of voxels and large ones still fit: 2.5x covers a nodule up to 1.4x
the marker's diameter with its centre a quarter diameter off, as a reader places it (what training
jitters). The probability is resampled back (trilinear) onto the CT's grid and cut at the card's
threshold (chosen on the validation split by the training script); the part that holds the marker's
centre (or the nearest part within the marker) is the nodule.

Trained on phantoms (``scripts/train_segmenter.py``) with 0.625-3 mm slices, 0.5-1.0 mm pixels and
markers of 3-30 mm: a series or marker outside that gets a warning on the mask, not a refusal.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.measure.mask import NoduleMask, SegmentationError
from core.util.safetensors_io import DocumentFormat, SafetensorsFileError, read_document_file
from core.volume import CTVolume

METHOD = "learned/seg3d-v1"
PATCH = 32
FOV_PER_DIAMETER = 2.5
HU_RANGE = (-1000.0, 400.0)  # clipped, then mapped to -1..1
WEIGHTS = Path(__file__).resolve().parents[2] / "resources" / "segmenter" / "seg3d.safetensors"
LUNG_HU, MIN_LUNG_SHARE = -500.0, 0.05  # a nodule's patch is mostly lung (even at the pleura)
TRAINED_SLICE_MM = 3.0
TRAINED_PIXEL_MM = (0.5, 1.0)
TRAINED_DIAMETER_MM = (3.0, 30.0)


class SegmenterFileError(SafetensorsFileError):
    """The segmenter's weights file refused: its path and the reason."""


CARD = DocumentFormat(
    key="segmenter_card",
    schema="mtmr-reader/seg3d-card-v1",
    hash_key="weights_sha256",
    no_file="no such segmenter weights file",
    no_document="no segmenter card in the file: not an MTMR Reader segmenter",
    not_json="the segmenter card is not valid JSON",
    schema_name="segmenter card schema",
    unreadable="weights cannot be read",
    damaged="weights do not match the hash in the segmenter card (damaged or edited file)",
    error=SegmenterFileError,
)


@dataclass(frozen=True)
class PatchGrid:
    """Where a patch's voxels sit in the CT: patch voxel ``p`` (z, y, x) is CT voxel
    ``centre_zyx + (p - (size - 1) / 2) * step_zyx`` (fractional)."""

    centre_zyx: np.ndarray
    step_zyx: np.ndarray  # CT voxels per patch voxel along z, y, x
    size: int = PATCH

    @classmethod
    def around(cls, volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> PatchGrid:
        spacing_zyx = np.array(volume.spacing[::-1])
        centre_zyx = volume.mm_to_voxel(np.asarray(centre_mm, dtype=np.float64))[::-1]
        step_mm = FOV_PER_DIAMETER * float(diameter_mm) / PATCH
        return cls(centre_zyx, step_mm / spacing_zyx)

    def ct_coords(self) -> np.ndarray:
        """(3, size, size, size) CT voxel coordinates of the patch's voxels."""
        axis = np.arange(self.size) - (self.size - 1) / 2
        lines = [c + axis * s for c, s in zip(self.centre_zyx, self.step_zyx, strict=True)]
        return np.stack(np.meshgrid(*lines, indexing="ij"))

    def ct_box(self, shape_zyx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The CT voxels (lo, hi) the patch covers, inside a volume of ``shape_zyx``."""
        half = (self.size - 1) / 2 * self.step_zyx
        lo = np.maximum(np.ceil(self.centre_zyx - half).astype(int), 0)
        hi = np.minimum(np.floor(self.centre_zyx + half).astype(int) + 1, shape_zyx)
        return lo, np.maximum(hi, lo)


def sample(array: np.ndarray, grid: PatchGrid, outside: float, origin_zyx=(0, 0, 0)) -> np.ndarray:
    """``array`` (CT-grid voxels from ``origin_zyx`` on: the whole CT, or a mask's box) trilinearly
    sampled at the patch's voxels (float32); beyond its edge ``outside``. Only the covered part is read."""
    coords = grid.ct_coords() - np.asarray(origin_zyx, dtype=np.float64)[:, None, None, None]
    lo = np.maximum(np.floor(coords.reshape(3, -1).min(axis=1)).astype(int), 0)
    hi = np.minimum(np.ceil(coords.reshape(3, -1).max(axis=1)).astype(int) + 1, array.shape)
    if np.any(hi <= lo):
        return np.full((grid.size,) * 3, outside, dtype=np.float32)
    box = array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].astype(np.float32)
    local = coords - lo[:, None, None, None]
    return ndimage.map_coordinates(box, local, order=1, mode="constant", cval=outside)


def scale_hu(patch: np.ndarray) -> np.ndarray:
    low, high = HU_RANGE
    return ((np.clip(patch, low, high) - low) / (high - low) * 2 - 1).astype(np.float32)


def to_ct_grid(prob: np.ndarray, grid: PatchGrid, shape_zyx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The patch's probability resampled onto the CT voxels it covers: (origin_zyx, float box)."""
    lo, hi = grid.ct_box(shape_zyx)
    half = (grid.size - 1) / 2
    lines = [
        (np.arange(a, b) - c) / s + half
        for a, b, c, s in zip(lo, hi, grid.centre_zyx, grid.step_zyx, strict=True)
    ]
    coords = np.stack(np.meshgrid(*lines, indexing="ij"))
    return lo, ndimage.map_coordinates(prob, coords, order=1, mode="nearest")


def patch_geometry() -> dict:
    """How patches are cut, as the card records it: weights only work with the cut they learned."""
    return {"size": PATCH, "fov_per_diameter": FOV_PER_DIAMETER, "hu_range": list(HU_RANGE)}


@functools.lru_cache(maxsize=2)
def load_segmenter(path: str = str(WEIGHTS), device: str = "cpu"):
    """The model (eval mode) and its card, read once per path and device (SegmenterFileError)."""
    from models.seg3d import Seg3DConfig, Seg3DNet

    card, tensors = read_document_file(path, CARD)
    if card.get("patch") != patch_geometry():
        raise SegmenterFileError(path, f"made for patches {card.get('patch')}, not {patch_geometry()}")
    try:
        model = Seg3DNet(Seg3DConfig.from_dict(card["config"]))
        model.load_state_dict(tensors, strict=True)
        if not 0 < float(card["threshold"]) < 1:
            raise ValueError("threshold")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise SegmenterFileError(
            path, f"weights do not fit the segmenter ({exc.__class__.__name__})"
        ) from exc
    return model.to(device).eval(), card


def segment_nodule_learned(
    volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float, device: str = "cpu"
) -> NoduleMask:
    """The nodule at ``centre_mm`` (LPS) of about ``diameter_mm``; SegmentationError when none
    (SegmenterFileError when the shipped weights cannot be read)."""
    _check_marker(volume, centre_mm, diameter_mm)
    model, card = load_segmenter(device=device)
    found = Probability.of(model, volume, centre_mm, diameter_mm)
    return found.mask(card["threshold"], volume)


@dataclass(frozen=True)
class Probability:
    """The model's nodule probability for one marker, on the CT voxels its patch covers."""

    origin_zyx: np.ndarray
    box: np.ndarray  # float (z, y, x)
    grid: PatchGrid
    centre_mm: np.ndarray
    diameter_mm: float

    @classmethod
    def of(cls, model, volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> Probability:
        """Through a given ``Seg3DNet`` in eval mode (the shipped one, or one in training)."""
        import torch

        centre = _check_marker(volume, centre_mm, diameter_mm)
        grid = PatchGrid.around(volume, centre, diameter_mm)
        hu = sample(volume.array, grid, outside=HU_RANGE[0])
        if np.mean(hu < LUNG_HU) < MIN_LUNG_SHARE:
            raise SegmentationError(f"the marker at {_mm(centre)} is in solid tissue, not in the lungs")
        patch = scale_hu(hu)
        device = next(model.parameters()).device
        x = torch.from_numpy(patch)[None, None].to(device)
        with torch.no_grad():
            # a batch of two copies: torch takes its slow reference 3D convolution for a batch of one
            # patch this small and oneDNN's for two, which is several times faster on the CPU
            # (bench/bench_segmentation.py --quick: ~3x); the second copy's output is dropped
            logits = model(x.expand(2, -1, -1, -1, -1))["logits"][:1]
        origin, box = to_ct_grid(torch.sigmoid(logits)[0, 0].cpu().numpy(), grid, volume.shape)
        return cls(origin, box, grid, centre, float(diameter_mm))

    def mask(self, threshold: float, volume: CTVolume) -> NoduleMask:
        """The nodule cut at ``threshold`` (the card's, chosen on the validation split)."""
        seed = self.grid.centre_zyx - self.origin_zyx
        mask = _the_nodule(self.box >= threshold, seed, self.diameter_mm, volume)
        if mask is None:
            raise SegmentationError(f"no nodule found within the marker at {_mm(self.centre_mm)} (air?)")
        warnings = _warnings(volume, self.diameter_mm)
        centre = tuple(float(v) for v in self.centre_mm)
        return NoduleMask(
            self.origin_zyx, mask, METHOD, centre, self.diameter_mm, warnings=warnings
        ).cropped()


def _check_marker(volume: CTVolume, centre_mm: Sequence[float], diameter_mm: float) -> np.ndarray:
    centre = np.asarray(centre_mm, dtype=np.float64)
    if centre.shape != (3,) or not (np.all(np.isfinite(centre)) and np.isfinite(diameter_mm)):
        raise SegmentationError("the marker's centre or diameter is not a finite number")
    if not diameter_mm > 0:
        raise SegmentationError(f"the marker's diameter is {diameter_mm:g} mm: nothing to segment")
    if not volume.contains_mm(centre):
        raise SegmentationError(f"the marker at {_mm(centre)} lies outside the volume")
    return centre


def _the_nodule(dense: np.ndarray, seed_zyx: np.ndarray, diameter_mm: float, volume: CTVolume):
    """The connected part holding the marker's centre, else the nearest within the marker's radius."""
    labels, count = ndimage.label(dense)
    if count == 0:
        return None
    seed = tuple(np.clip(np.rint(seed_zyx).astype(int), 0, np.array(dense.shape) - 1))
    keep = labels[seed]
    if keep == 0:
        spacing_zyx = np.array(volume.spacing[::-1])
        distance, nearest = ndimage.distance_transform_edt(
            labels == 0, sampling=spacing_zyx, return_indices=True
        )
        if distance[seed] > diameter_mm / 2:
            return None
        keep = labels[tuple(index[seed] for index in nearest)]
    return labels == keep


def _warnings(volume: CTVolume, diameter_mm: float) -> tuple[str, ...]:
    x, y, z = volume.spacing
    out = []
    if z > TRAINED_SLICE_MM:
        out.append(f"slices of {z:.2g} mm: the learned segmenter was trained on <= {TRAINED_SLICE_MM:g} mm")
    low, high = TRAINED_PIXEL_MM
    if not (low <= x <= high and low <= y <= high):
        out.append(
            f"pixels of {x:.2g} x {y:.2g} mm: the learned segmenter was trained on {low:g}-{high:g} mm"
        )
    low, high = TRAINED_DIAMETER_MM
    if not low <= diameter_mm <= high:
        out.append(f"a {diameter_mm:.1f} mm marker: the learned segmenter was trained on {low:g}-{high:g} mm")
    return tuple(out)


def _mm(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in point) + ") mm"
