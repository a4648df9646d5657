"""Where a nodule is, in a radiologist's words: side, zone (thirds of that lung's height) and slice.

The lungs are found cheaply on a copy of the volume taken every few voxels (about 3 mm apart):

* air is ``< -400 HU``; the air outside the patient is what connects, within each axial image, to
  the image border; everything else is the body (the table included);
* the lungs are the air inside the body that connects in 3D to the air of the image with the most
  of it (so stomach or bowel gas below the diaphragm is left out);
* the midline is the body's centroid along the patient's x axis (LPS: +x is the patient's LEFT);
  the right lung is the lung air at smaller x, the left lung at larger x; a band of 15 mm either side
  of the midline (trachea, mediastinum) is left out of the lungs' heights;
* each lung's craniocaudal extent (LPS z, superior up) runs from its 0.2 % to its 99.8 % height
  quantile; upper, middle and lower zones are its thirds.

Zones are not lobes. Readers name lobes (RUL, RML, RLL, LUL with the lingula, LLL), bounded by the
fissures; a threshold cannot find fissures on real CT (thin, often incomplete, at the noise level),
and no lobe assignment here has been measured on real lobe labels, so none is given: every ``basis``
says that the zone is a zone, not a lobe (``ZONE_NOTE``).

Without lungs (a tiny or synthetic volume) the volume's own centre and height stand in, and the
``basis`` says so. Keep one ``LungMap`` per volume: finding the lungs costs a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.volume import CTVolume

AIR_HU = -400
STEP_MM = 3.0  # spacing of the downsampled copy
MIDLINE_BAND_MM = 15.0
MIN_LUNG_ML = 20.0  # less lung air than this in the whole study: no lungs found
MIN_SIDE_ML = 5.0  # less than this on one side: that side uses both lungs' height
HEIGHT_QUANTILES = (0.002, 0.998)
ZONES = ("lower", "middle", "upper")
ZONE_NOTE = (
    "a zone is a third of that lung's height, not a lobe: the fissures that bound the lobes (RUL, RML, "
    "RLL, LUL with lingula, LLL) are not found, so no lobe is named"
)


@dataclass(frozen=True)
class Location:
    side: str  # "right" | "left" (the patient's)
    zone: str  # "upper" | "middle" | "lower": thirds of that lung's craniocaudal extent
    slice: int  # 1-based axial slice number, as the viewer shows it
    centre_mm: tuple[float, float, float]  # LPS
    text: str  # "right upper zone, slice 87"
    basis: str  # how side and zone were judged


class LungMap:
    """The lungs of one volume, found once; ``describe(centre_mm)`` for each nodule."""

    def __init__(self, volume: CTVolume) -> None:
        self.volume = volume
        steps = tuple(max(1, round(STEP_MM / s)) for s in volume.spacing)  # (x, y, z)
        self.steps = steps
        small = volume.array[:: steps[2], :: steps[1], :: steps[0]]
        voxel_ml = float(np.prod(np.array(volume.spacing) * steps)) / 1000.0
        air = small < AIR_HU
        outside = _fill(_border(air.shape) & air, air, axes=(1, 2))  # in-plane: per axial image
        inside = ~outside
        lung_air = air & inside
        lungs = np.zeros_like(air)
        if lung_air.any():
            box = _bounding_box(lung_air)
            crop = lung_air[box]
            seed = np.zeros_like(crop)
            seed_slice = int(np.argmax(crop.sum(axis=(1, 2))))
            seed[seed_slice] = crop[seed_slice]
            lungs[box] = _fill(seed, crop, axes=(0, 1, 2))
        self.lungs = lungs  # on the copy taken every ``steps`` voxels (registration restricts itself to it)
        self.lung_ml = float(lungs.sum()) * voxel_ml
        self.found = self.lung_ml >= MIN_LUNG_ML and inside.any()
        self.extents: dict[str, tuple[float, float]] = {}
        if self.found:
            self.midline_mm = float(self._to_mm(_centroid(inside))[0])
            kji = np.nonzero(lungs)
            mm = self._to_mm(np.stack(kji[::-1], axis=-1))
            x = mm[:, 0]
            away = np.abs(x - self.midline_mm) >= MIDLINE_BAND_MM
            notes = []
            for side, on_side in (("right", x < self.midline_mm), ("left", x > self.midline_mm)):
                chosen = on_side & away
                if chosen.sum() * voxel_ml < MIN_SIDE_ML:
                    chosen = away if away.sum() * voxel_ml >= MIN_SIDE_ML else np.ones(len(mm), bool)
                    notes.append(f"too little {side} lung found: its zones use both lungs' height")
                low, high = np.quantile(mm[chosen, 2], HEIGHT_QUANTILES)
                self.extents[side] = (float(low), float(high))
            self.basis = (
                f"lungs found by threshold (< {AIR_HU} HU air inside the body, {self.lung_ml / 1000:.1f} L); "
                f"side from the body's midline (x = {self.midline_mm:.1f} mm, LPS); zone = thirds of that "
                "lung's craniocaudal extent" + "".join(f"; {n}" for n in notes)
            )
        else:
            corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
            corners_mm = volume.voxel_to_mm(corners * (np.array(volume.shape[::-1]) - 1))
            self.midline_mm = float(corners_mm[:, 0].mean())
            extent = (float(corners_mm[:, 2].min()), float(corners_mm[:, 2].max()))
            self.extents = {"right": extent, "left": extent}
            self.basis = (
                "no lungs found: side from the volume's centre line and zone from thirds of the volume's "
                "own craniocaudal extent"
            )

    def _to_mm(self, small_xyz: np.ndarray) -> np.ndarray:
        """Downsampled voxel (x, y, z) -> LPS mm."""
        return self.volume.voxel_to_mm(np.asarray(small_xyz, np.float64) * np.array(self.steps))

    def describe(self, centre_mm: Sequence[float]) -> Location:
        """Side, zone and slice of an LPS point in the volume; ``ValueError`` if it is not one."""
        centre = np.asarray(centre_mm, dtype=np.float64)
        if centre.shape != (3,) or not np.all(np.isfinite(centre)):
            raise ValueError(f"centre must be three finite LPS coordinates in mm, not {centre_mm!r}")
        if not self.volume.contains_mm(centre):
            raise ValueError(f"centre {tuple(round(float(v), 1) for v in centre)} mm is outside the volume")
        side = "left" if centre[0] > self.midline_mm else "right"
        low, high = self.extents[side]
        fraction = (centre[2] - low) / (high - low) if high > low else 0.5
        zone = ZONES[int(np.clip(np.floor(fraction * 3), 0, 2))]
        basis = self.basis
        if not 0.0 <= fraction <= 1.0:
            where = "above" if fraction > 1 else "below"
            basis += f"; the point lies {where} the {side} lung's extent, so it counts as {zone}"
        basis += f"; {ZONE_NOTE}"
        number = round(float(self.volume.mm_to_voxel(centre)[2])) + 1
        return Location(
            side=side,
            zone=zone,
            slice=number,
            centre_mm=tuple(float(v) for v in centre),
            text=f"{side} {zone} zone, slice {number}",
            basis=basis,
        )


def describe_location(volume: CTVolume, centre_mm: Sequence[float]) -> Location:
    """One-off ``LungMap(volume).describe(centre_mm)``; keep a ``LungMap`` for several nodules."""
    return LungMap(volume).describe(centre_mm)


def _border(shape: tuple[int, ...]) -> np.ndarray:
    """The in-plane border of every axial image of a (z, y, x) grid."""
    border = np.zeros(shape, bool)
    border[:, [0, -1], :] = True
    border[:, :, [0, -1]] = True
    return border


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (slices per axis) holding every set voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _centroid(mask: np.ndarray) -> np.ndarray:
    """Mean voxel (x, y, z) of a (z, y, x) mask."""
    total = mask.sum()
    return np.array(
        [
            np.arange(mask.shape[axis]) @ mask.sum(axis=tuple(a for a in range(3) if a != axis)) / total
            for axis in (2, 1, 0)
        ]
    )


def _fill(seed: np.ndarray, allowed: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Flood fill of ``allowed`` from ``seed``, face-connected along ``axes``: whole runs along one
    axis at a time, round the axes until the fill is closed along every one (a few passes for lungs)."""
    filled = seed & allowed
    count = int(filled.sum())
    closed: set[int] = set()
    while True:
        for axis in axes:
            filled = _spread(filled, allowed, axis)
            grown = int(filled.sum())
            closed = closed | {axis} if grown == count else {axis}  # a pass closes the fill along its axis
            count = grown
            if len(closed) == len(axes):
                return filled


def _spread(filled: np.ndarray, allowed: np.ndarray, axis: int) -> np.ndarray:
    """Every run of ``allowed`` voxels along ``axis`` that holds a filled voxel, filled."""
    a = np.moveaxis(allowed, axis, -1)
    f = np.moveaxis(filled, axis, -1)
    n = a.shape[-1]
    line = np.arange(a.size // n, dtype=np.int32).reshape((*a.shape[:-1], 1)) * np.int32(n + 1)
    ids = np.cumsum(~a, axis=-1, dtype=np.int32)  # a blocked voxel starts the next run
    ids += line
    hit = np.zeros(a.size // n * (n + 1) + 1, bool)
    hit[ids[f]] = True
    return np.moveaxis(a & hit[ids], -1, axis)
