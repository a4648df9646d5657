"""Label-preserving augmentation of 2.5D training patches, drawn per sample and applied in torch.

A patch is ``(channels, size, size)`` in -1..1 (``core.model.patches``: HU clipped to ``hu_range``
and scaled). Every sample of a batch gets its own draw of:

* the 16 elements of the cube's symmetries that keep the axial plane: in-plane flip and quarter
  turns (the 8 symmetries of a square) and the z flip, which reverses the channel order (with
  ``neighbour_fraction`` the 3 channels are the slices below, at and above; one channel or three
  copies of one slice are left as they are);
* a small in-plane rotation (+- ``rotate_deg``) and scaling (+- ``scale``), one bilinear resampling,
  reflected at the border (a paper crop's 1.25x margin leaves lung there, not air);
* blur or sharpen: ``x + a (x - blur3x3(x))`` with ``a`` in +- ``sharpen`` (a = -1 is the 3x3
  binomial blur, a > 0 an unsharp mask), like a softer or sharper reconstruction kernel;
* an HU calibration change ``hu' = hu (1 + s) + o`` with ``|s| <= hu_scale``, ``|o| <= hu_offset``
  (at the -1100 HU floor of the default range the defaults move a value by at most 53 HU).

The draws come from the trainer's numpy generator, so a seed fixes them and a continued run
(``core.training.state`` saves that generator) draws what the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = True  # in-plane flip, quarter turns and the z flip
    rotate_deg: float = 15.0
    scale: float = 0.10
    sharpen: float = 0.5  # 0..1
    hu_scale: float = 0.03
    hu_offset: float = 20.0  # HU
    hu_range: tuple[float, float] = (-1100.0, 500.0)  # the patches' (PatchConfig.hu_range)

    def __post_init__(self) -> None:
        if not (0 <= self.rotate_deg <= 45 and 0 <= self.scale < 0.5 and 0 <= self.sharpen <= 1):
            raise ValueError("augmentation needs rotate_deg 0..45, scale 0..0.5 and sharpen 0..1")
        if not (0 <= self.hu_scale < 0.5 and self.hu_offset >= 0 and self.hu_range[0] < self.hu_range[1]):
            raise ValueError("augmentation needs hu_scale 0..0.5, hu_offset >= 0 and an increasing hu_range")

    def to_dict(self) -> dict:
        return asdict(self) | {"hu_range": list(self.hu_range)}

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        return cls(**{**data, "hu_range": tuple(data.get("hu_range", cls.hu_range))})


@dataclass(frozen=True)
class Draw:
    """One batch's per-sample parameters (arrays of the batch's length)."""

    flip_x: np.ndarray  # bool
    flip_z: np.ndarray  # bool
    turns: np.ndarray  # int 0..3
    angle_deg: np.ndarray
    zoom: np.ndarray  # > 1 magnifies
    sharpen: np.ndarray
    hu_scale: np.ndarray
    hu_offset: np.ndarray

    @classmethod
    def random(cls, count: int, config: AugmentConfig, rng: np.random.Generator) -> Draw:
        u = rng.uniform(-1.0, 1.0, (5, count))
        flips = rng.integers(0, 2, (2, count)).astype(bool) & config.flips
        return cls(
            flip_x=flips[0],
            flip_z=flips[1],
            turns=rng.integers(0, 4, count) * config.flips,
            angle_deg=u[0] * config.rotate_deg,
            zoom=1.0 + u[1] * config.scale,
            sharpen=u[2] * config.sharpen,
            hu_scale=u[3] * config.hu_scale,
            hu_offset=u[4] * config.hu_offset,
        )


def augment(batch, rng: np.random.Generator, config: AugmentConfig):
    """``batch`` (n, channels, size, size) float tensor -> a new tensor, each sample drawn anew."""
    return apply(batch, Draw.random(len(batch), config, rng), config.hu_range)


def apply(batch, draw: Draw, hu_range: tuple[float, float]):
    x = symmetries(batch, draw.flip_x, draw.flip_z, draw.turns)
    if np.any(draw.angle_deg) or np.any(draw.zoom != 1):
        x = rotate_scale(x, draw.angle_deg, draw.zoom)
    if np.any(draw.sharpen):
        x = blur_sharpen(x, draw.sharpen)
    if np.any(draw.hu_scale) or np.any(draw.hu_offset):
        x = hu_jitter(x, draw.hu_scale, draw.hu_offset, hu_range)
    return x


def symmetries(x, flip_x: np.ndarray, flip_z: np.ndarray, turns: np.ndarray):
    """Exact index operations: in-plane flip, then ``turns`` quarter turns, and the z flip."""
    import torch

    def per_sample(mask: np.ndarray):
        return torch.from_numpy(mask).to(x.device)[:, None, None, None]

    if flip_x.any():
        x = torch.where(per_sample(flip_x), x.flip(3), x)
    if flip_z.any():
        x = torch.where(per_sample(flip_z), x.flip(1), x)
    if turns.any():
        x = x.clone()
        for k in (1, 2, 3):
            rows = torch.from_numpy(np.nonzero(turns == k)[0]).to(x.device)
            if len(rows):
                x[rows] = torch.rot90(x[rows], k, dims=(2, 3))
    return x


def rotate_scale(x, angle_deg: np.ndarray, zoom: np.ndarray):
    """Rotate each sample by ``angle_deg`` about the patch centre and magnify it by ``zoom``."""
    import torch
    import torch.nn.functional as F

    angle = np.deg2rad(angle_deg)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.zeros((len(x), 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(torch.from_numpy(theta).to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def blur_sharpen(x, amount: np.ndarray):
    """``x + a (x - blur(x))`` per sample, blur = 3x3 binomial kernel per channel, reflected edges."""
    import torch
    import torch.nn.functional as F

    channels = x.shape[1]
    kernel = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(channels, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=channels)
    a = torch.from_numpy(amount.astype(np.float32)).to(x.device, x.dtype)[:, None, None, None]
    return (x + a * (x - blurred)).clamp_(-1.0, 1.0)


def hu_jitter(x, scale: np.ndarray, offset_hu: np.ndarray, hu_range: tuple[float, float]):
    """``hu (1 + s) + o`` on the HU the normalised values stand for, clipped to the range again."""
    import torch

    low, high = hu_range
    half = (high - low) / 2  # HU per normalised unit
    centre = (high + low) / 2  # the HU that maps to 0
    s = torch.from_numpy(scale.astype(np.float32)).to(x.device, x.dtype)[:, None, None, None]
    o = torch.from_numpy(offset_hu.astype(np.float32)).to(x.device, x.dtype)[:, None, None, None]
    # x = (hu - centre) / half  =>  x' = (x * half + centre) (1 + s) + o - centre) / half
    return (x * (1 + s) + (centre * s + o) / half).clamp_(-1.0, 1.0)
