"""One nodule's 3D mask in the CT's own voxel grid, stored as a tight box and what it came from.

The box holds ``mask[z, y, x]`` (bool) whose voxel ``(0, 0, 0)`` is voxel ``origin_zyx`` of the volume.
``centre_mm`` and ``diameter_mm`` are the marker's when the mask was made: a marker moved or resized
makes an automatic mask stale (``fits``); a reader-edited mask (``edited``) is kept until the reader
discards it, and is shown as edited everywhere.

Saved in the session as JSON: the box bits packed (``np.packbits``), zlib-compressed, base64 text.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

MAX_BOX_VOXELS = 256**3  # a box larger than this is not a nodule (and a damaged file is refused)


class SegmentationError(ValueError):
    """A marker that cannot be segmented; the message says why (air, outside the volume...).
    Here, beside the mask, so that both segmenters raise it without importing each other."""


@dataclass(frozen=True)
class NoduleMask:
    origin_zyx: tuple[int, int, int]
    mask: np.ndarray  # bool (z, y, x), the box
    method: str  # how it was made: "classical/...", "learned/...", "truth", "edited"
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    diameter_mm: float = 0.0
    edited: bool = False
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask, dtype=bool)
        if mask.ndim != 3:
            raise ValueError(f"a nodule mask is 3D (z, y, x), not shape {mask.shape}")
        if mask.size > MAX_BOX_VOXELS:
            raise ValueError(f"a nodule mask box of {mask.shape} voxels is too large")
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "origin_zyx", tuple(int(v) for v in self.origin_zyx))
        object.__setattr__(self, "centre_mm", tuple(float(v) for v in self.centre_mm))
        object.__setattr__(self, "diameter_mm", float(self.diameter_mm))
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def region(self) -> tuple[slice, slice, slice]:
        """The box as slices of the volume array (may reach past its edges: use ``in_volume``)."""
        return tuple(slice(o, o + n) for o, n in zip(self.origin_zyx, self.mask.shape, strict=True))

    def in_volume(self, shape_zyx: tuple[int, int, int]) -> np.ndarray:
        """The whole-volume bool mask (for small volumes and tests; views should use the box)."""
        full = np.zeros(shape_zyx, dtype=bool)
        lo = np.maximum(self.origin_zyx, 0)
        hi = np.minimum(np.add(self.origin_zyx, self.mask.shape), shape_zyx)
        if np.any(hi <= lo):
            return full
        src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.origin_zyx, strict=True))
        full[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = self.mask[src]
        return full

    def clipped(self, shape_zyx: tuple[int, int, int]) -> NoduleMask:
        """The part of the box inside a volume of ``shape_zyx`` (a nodule at the volume's edge)."""
        lo = np.maximum(self.origin_zyx, 0)
        hi = np.minimum(np.add(self.origin_zyx, self.mask.shape), shape_zyx)
        if np.any(hi <= lo):  # wholly outside: an empty voxel at the nearest corner
            corner = tuple(int(v) for v in np.clip(lo, 0, np.subtract(shape_zyx, 1)))
            return _replace(self, dict(origin_zyx=corner, mask=np.zeros((1, 1, 1), dtype=bool)))
        src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.origin_zyx, strict=True))
        box = np.zeros(tuple(hi - lo), dtype=bool)
        part = self.mask[src]
        box[tuple(slice(0, n) for n in part.shape)] = part
        return _replace(self, dict(origin_zyx=tuple(int(v) for v in lo), mask=box))

    def cropped(self) -> NoduleMask:
        """The same mask in the tightest box around its voxels (unchanged when empty)."""
        if not self.mask.any():
            return self
        lo, hi = [], []
        for axis in range(3):  # per-axis projections: much cheaper than argwhere on a large box
            used = np.flatnonzero(self.mask.any(axis=tuple(a for a in range(3) if a != axis)))
            lo.append(used[0])
            hi.append(used[-1] + 1)
        box = self.mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        origin = tuple(int(o + a) for o, a in zip(self.origin_zyx, lo, strict=True))
        return _replace(self, dict(origin_zyx=origin, mask=box))

    def fits(self, centre_mm, diameter_mm: float) -> bool:
        """Whether an automatic mask still belongs to a marker at ``centre_mm`` of ``diameter_mm``;
        an edited one always does (the reader owns it)."""
        if self.edited:
            return True
        return self.diameter_mm == float(diameter_mm) and all(
            abs(a - float(b)) < 1e-6 for a, b in zip(self.centre_mm, centre_mm, strict=True)
        )

    def to_dict(self) -> dict:
        packed = np.packbits(self.mask.ravel())
        return {
            "origin_zyx": list(self.origin_zyx),
            "shape_zyx": list(self.mask.shape),
            "bits": base64.b64encode(zlib.compress(packed.tobytes(), 6)).decode("ascii"),
            "method": self.method,
            "center_mm": list(self.centre_mm),
            "diameter_mm": self.diameter_mm,
            "edited": self.edited,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NoduleMask:
        """ValueError saying what is wrong with a saved mask."""
        if not isinstance(data, Mapping):
            raise ValueError("a saved mask is not an object")
        try:
            shape = tuple(int(v) for v in data["shape_zyx"])
            origin = tuple(int(v) for v in data["origin_zyx"])
            centre = tuple(float(v) for v in data.get("center_mm", (0.0, 0.0, 0.0)))
            diameter = float(data.get("diameter_mm", 0.0))
            bits = base64.b64decode(str(data["bits"]).encode("ascii"), validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a saved mask is incomplete or malformed ({exc})") from exc
        if len(shape) != 3 or len(origin) != 3 or len(centre) != 3 or min(shape) < 1:
            raise ValueError(f"a saved mask has shape {shape} and origin {origin}: not a 3D box")
        if math.prod(shape) > MAX_BOX_VOXELS:
            raise ValueError(f"a saved mask box of {shape} voxels is too large")
        if not all(math.isfinite(v) for v in (*centre, diameter)):
            raise ValueError("a saved mask's marker centre or diameter is not finite")
        count = math.prod(shape)
        try:
            raw = zlib.decompressobj().decompress(bits, (count + 7) // 8 + 1)
        except zlib.error as exc:
            raise ValueError(f"a saved mask's bits are damaged ({exc})") from exc
        if len(raw) != (count + 7) // 8:
            raise ValueError(f"a saved mask's bits do not fill its {shape} box")
        mask = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count).astype(bool)
        warnings = data.get("warnings", [])
        return cls(
            origin_zyx=origin,
            mask=mask.reshape(shape),
            method=str(data.get("method", "")),
            centre_mm=centre,
            diameter_mm=diameter,
            edited=bool(data.get("edited", False)),
            warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
        )


def _replace(original: NoduleMask, changes: dict) -> NoduleMask:
    from dataclasses import replace

    return replace(original, **changes)
