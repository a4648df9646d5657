"""From a nodule marker to model input: the axial slices that span the nodule, as square patches.

Two modes:

* ``fixed-fov`` (default): a fixed field of view in mm resampled to a fixed pixel size, so a 20 mm
  nodule looks twice as big as a 10 mm one; size, a strong malignancy cue, is kept.
* ``paper``: a square of 1.25x the nodule's diameter resized to the same pixel size, as the authors
  did; every nodule fills the patch and its absolute size is lost.

HU are clipped to ``hu_range`` and scaled to -1..1; this and everything else here is stored in the
checkpoint's model card, so inference always matches training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.volume import CTVolume


@dataclass(frozen=True)
class PatchConfig:
    mode: str = "fixed-fov"
    size: int = 64  # pixels per side
    fov_mm: float = 48.0  # fixed-fov: side of the square in mm
    paper_scale: float = 1.25  # paper: side = scale x diameter
    max_slices: int = 5  # slices spanning the nodule, evenly chosen
    hu_range: tuple[float, float] = (-1100.0, 500.0)
    channels: int = 1  # 3 copies the grey level, as the paper's ImageNet trunk expects
    # > 0: the 3 channels are the slices f x diameter below, at and above each input slice (at least
    # one slice apart), so the 2D trunk sees the nodule's shape along z too (not in the paper)
    neighbour_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("fixed-fov", "paper"):
            raise ValueError(f"patch mode must be 'fixed-fov' or 'paper', not {self.mode!r}")
        if self.size < 8 or self.max_slices < 1 or self.channels not in (1, 3):
            raise ValueError("patch size >= 8, max_slices >= 1 and channels 1 or 3 are required")
        if self.neighbour_fraction < 0 or (self.neighbour_fraction > 0 and self.channels != 3):
            raise ValueError("neighbour_fraction must be >= 0, and > 0 only with channels 3")
        if not (self.fov_mm > 0 and self.paper_scale > 0):
            raise ValueError(f"fov_mm and paper_scale must be positive: {self.fov_mm}, {self.paper_scale}")

    def side_mm(self, diameter_mm: float) -> float:
        """The side of the square a patch covers for a nodule of ``diameter_mm`` (before jitter)."""
        return self.fov_mm if self.mode == "fixed-fov" else self.paper_scale * max(diameter_mm, 3.0)

    def to_dict(self) -> dict:
        """As stored in model cards, caches and libraries; ``neighbour_fraction`` only when used, so the
        digests of everything cut before it existed stay the same."""
        data = asdict(self)
        if not self.neighbour_fraction:
            del data["neighbour_fraction"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PatchConfig:
        return cls(**{**data, "hu_range": tuple(data["hu_range"])})


@dataclass(frozen=True)
class Jitter:
    """Training augmentation drawn per sample: in-plane shift (mm), scale, flips, quarter turns."""

    shift_mm: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    flip_x: bool = False
    flip_y: bool = False
    quarter_turns: int = 0

    @classmethod
    def random(cls, rng: np.random.Generator, shift_mm: float = 2.0, scale: float = 0.1) -> Jitter:
        return cls(
            shift_mm=tuple(rng.uniform(-shift_mm, shift_mm, 2)),
            scale=float(rng.uniform(1 - scale, 1 + scale)),
            flip_x=bool(rng.integers(2)),
            flip_y=bool(rng.integers(2)),
            quarter_turns=int(rng.integers(4)),
        )


def slice_weights(count: int) -> np.ndarray:
    """Aggregation weights: the central slices count double (the authors' attribute rule)."""
    weights = np.ones(count)
    middle = (count - 1) / 2
    weights[np.abs(np.arange(count) - middle) <= 0.5] = 2.0
    return weights / weights.sum()


def extract_patches(
    volume: CTVolume,
    centre_mm: tuple[float, float, float],
    diameter_mm: float,
    config: PatchConfig,
    jitter: Jitter | None = None,
) -> np.ndarray:
    """Patches ``(slices, channels, size, size)`` float32 in -1..1, bottom to top slice.

    Raises ``ValueError`` when the centre lies outside the volume.
    """
    if not volume.contains_mm(centre_mm):
        raise ValueError(f"nodule centre {tuple(round(c, 1) for c in centre_mm)} mm lies outside the volume")
    jitter = jitter or Jitter()
    cx, cy, cz = volume.mm_to_voxel(centre_mm)
    sx, sy, sz = volume.spacing
    radius_slices = max(diameter_mm / 2 / sz, 0.0)
    first = int(np.clip(np.ceil(cz - radius_slices), 0, volume.shape[0] - 1))
    last = int(np.clip(np.floor(cz + radius_slices), 0, volume.shape[0] - 1))
    slices = np.arange(first, max(first, last) + 1)
    if len(slices) > config.max_slices:
        slices = slices[np.round(np.linspace(0, len(slices) - 1, config.max_slices)).astype(int)]
    side_mm = config.side_mm(diameter_mm) * jitter.scale
    offsets = (np.arange(config.size) + 0.5) / config.size * side_mm - side_mm / 2
    xs = cx + (offsets + jitter.shift_mm[0]) / sx
    ys = cy + (offsets + jitter.shift_mm[1]) / sy
    layers = [slices]
    if config.neighbour_fraction > 0:
        step = max(1, round(config.neighbour_fraction * diameter_mm / sz))
        top = volume.shape[0] - 1
        layers = [np.clip(slices - step, 0, top), slices, np.clip(slices + step, 0, top)]
    patches = np.stack([[_bilinear(volume.array[k], ys, xs) for k in layer] for layer in layers], 1)
    low, high = config.hu_range
    patches = (np.clip(patches, low, high) - low) * (2.0 / (high - low)) - 1.0
    if jitter.flip_x:
        patches = patches[..., ::-1]
    if jitter.flip_y:
        patches = patches[..., ::-1, :]
    patches = np.ascontiguousarray(np.rot90(patches, jitter.quarter_turns, axes=(2, 3)), dtype=np.float32)
    return np.repeat(patches, config.channels // len(layers), axis=1)


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample a 2D slice on the grid ys x xs (voxel units); air (-1024) outside."""
    h, w = image.shape
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0)[:, None].astype(np.float32)
    fx = (xs - x0)[None, :].astype(np.float32)
    padded = np.pad(image.astype(np.float32), 1, constant_values=-1024.0)
    y0c = np.clip(y0 + 1, 0, h + 1)
    y1c = np.clip(y0 + 2, 0, h + 1)
    x0c = np.clip(x0 + 1, 0, w + 1)
    x1c = np.clip(x0 + 2, 0, w + 1)
    top = padded[np.ix_(y0c, x0c)] * (1 - fx) + padded[np.ix_(y0c, x1c)] * fx
    bottom = padded[np.ix_(y1c, x0c)] * (1 - fx) + padded[np.ix_(y1c, x1c)] * fx
    return top * (1 - fy) + bottom * fy
