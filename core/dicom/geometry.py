"""Slice geometry: order slices along their normal, and find what is wrong with a series.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross
product of the ImageOrientationPatient cosines), never by file name or InstanceNumber alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.dicom.errors import InconsistentSeriesError
from core.dicom.slice_header import SliceHeader

DUPLICATE_TOLERANCE_MM = 0.01
TILT_TOLERANCE_DEG = 0.1


@dataclass(frozen=True)
class SliceGeometry:
    """Where each kept slice goes, and the affine of the regular grid they approximate."""

    order: tuple[int, ...]  # indices of the input slices, sorted along the normal, duplicates out
    positions: np.ndarray  # distance of each kept slice along the normal, mm (ascending)
    affine: np.ndarray  # voxel (x, y, z) -> LPS mm, after tilt correction
    shifts: np.ndarray | None  # per kept slice (dx, dy) in pixels that undo a gantry tilt
    tilt_deg: float
    uniform: bool
    warnings: tuple[str, ...]


def _name(path: Path | str) -> str:
    return Path(path).name


def _rounded(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(round(float(v), 3) + 0.0 for v in values)


def all_finite(values) -> bool:
    """Whether every number is finite; an absent value (None) is judged elsewhere."""
    return values is None or all(math.isfinite(v) for v in values)


# Per-file values no volume can be built from: NaN, infinite, a zero slope.
_NOT_FINITE = "not finite (NaN or infinite)"
_VALUE_CHECKS = {
    "ImagePositionPatient": (lambda h: all_finite(h.position), _NOT_FINITE),
    "ImageOrientationPatient": (lambda h: all_finite(h.orientation), _NOT_FINITE),
    "PixelSpacing": (lambda h: all_finite(h.pixel_spacing), _NOT_FINITE),
    "SliceThickness": (lambda h: h.slice_thickness is None or math.isfinite(h.slice_thickness), _NOT_FINITE),
    "RescaleSlope": (lambda h: math.isfinite(h.slope) and h.slope != 0, "0 or not finite"),
    "RescaleIntercept": (lambda h: math.isfinite(h.intercept), _NOT_FINITE),
}


def value_problems(headers: Sequence[SliceHeader]) -> list[str]:
    """Unusable header values: one message per attribute with the count of files and an example.

    A few non-finite positions are not a problem of the series: ``plan_geometry`` leaves those
    slices out and says so. Only when no file has a finite position is the series refused.
    """
    problems = []
    for keyword, (ok, why) in _VALUE_CHECKS.items():
        bad = [h for h in headers if not ok(h)]
        if not bad or (keyword == "ImagePositionPatient" and len(bad) < len(headers)):
            continue
        effect = ": HU values cannot be computed" if keyword.startswith("Rescale") else ""
        problems.append(
            f"{keyword} is {why} in {len(bad)} of {len(headers)} file(s), e.g. {_name(bad[0].path)}{effect}"
        )
    return problems


def consistency_problems(headers: Sequence[SliceHeader]) -> list[str]:
    """Unusable values and disagreements that make one volume impossible, each naming example files."""
    problems = value_problems(headers)
    if problems:  # a NaN is unequal to itself: comparing such values would list each file on its own
        return problems
    checks = {
        "rows x columns": lambda h: f"{h.rows}x{h.columns}",
        "orientation": lambda h: _rounded(h.orientation),
        "pixel spacing": lambda h: _rounded(h.pixel_spacing),
        "pixel format": lambda h: f"{h.bits_allocated}-bit x{h.samples_per_pixel}",
    }
    for what, key in checks.items():
        groups: dict[object, list[SliceHeader]] = defaultdict(list)
        for h in headers:
            groups[key(h)].append(h)
        if len(groups) > 1:
            parts = [
                f"{value} in {len(hs)} file(s), e.g. {_name(hs[0].path)}"
                for value, hs in sorted(groups.items(), key=lambda kv: -len(kv[1]))
            ]
            problems.append(f"files disagree on {what}: " + "; ".join(parts))
    return problems


def plan_geometry(
    positions: Sequence[tuple[float, float, float] | None],
    orientation: tuple[float, ...] | None,
    pixel_spacing: tuple[float, float] | None,
    slice_thickness: float | None,
    instance_numbers: Sequence[int | None],
    names: Sequence[str],
    correct_tilt: bool = True,
) -> SliceGeometry:
    """Sort slices along the normal; flag duplicates, gaps, uneven spacing and gantry tilt."""
    warnings: list[str] = []
    n = len(positions)
    for keyword, value in (("ImageOrientationPatient", orientation), ("PixelSpacing", pixel_spacing)):
        if not all_finite(value):  # enhanced files: per-frame values never went through value_problems
            raise InconsistentSeriesError(None, f"{names[0]}: {keyword} is not finite (NaN or infinite)")
    if orientation is None:
        orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        warnings.append("no ImageOrientationPatient: axial orientation assumed")
    if pixel_spacing is None:
        pixel_spacing = (1.0, 1.0)
        warnings.append("no PixelSpacing: 1 mm pixels assumed, measurements are not reliable")
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    if np.linalg.norm(np.cross(row, col)) < 1e-3 * max(np.linalg.norm(row) * np.linalg.norm(col), 1e-12):
        warnings.append("degenerate ImageOrientationPatient: axial orientation assumed")
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    sy, sx = float(pixel_spacing[0]), float(pixel_spacing[1])
    if not (sx > 0 and sy > 0):
        warnings.append(f"invalid PixelSpacing {pixel_spacing}: 1 mm pixels assumed")
        sx = sy = 1.0
    thickness_ok = slice_thickness is not None and math.isfinite(slice_thickness) and slice_thickness > 0
    fallback_dz = float(slice_thickness) if thickness_ok else 1.0
    inst = [i if i is not None else 0 for i in instance_numbers]

    unusable = [k for k in range(n) if not all_finite(positions[k])]
    if unusable:
        if len(unusable) == n:
            raise InconsistentSeriesError(
                None, f"ImagePositionPatient is not finite in any slice, e.g. {names[unusable[0]]}"
            )
        warnings.append(
            f"{len(unusable)} slice(s) with a non-finite ImagePositionPatient were left out, "
            f"e.g. {names[unusable[0]]}"
        )
    usable = sorted(set(range(n)) - set(unusable))
    known = [k for k in usable if positions[k] is not None]
    if not known:
        order = sorted(usable, key=lambda k: (inst[k], names[k]))
        warnings.append(
            f"no ImagePositionPatient: slices ordered by InstanceNumber, spacing {fallback_dz:g} mm assumed"
        )
        affine = _affine(row, col, normal, sx, sy, fallback_dz, np.zeros(3))
        dist = np.arange(len(order)) * fallback_dz
        return SliceGeometry(tuple(order), dist, affine, None, 0.0, True, tuple(warnings))
    if len(known) < len(usable):
        missing = [names[k] for k in usable if positions[k] is None]
        warnings.append(f"{len(missing)} slice(s) without a position were left out, e.g. {missing[0]}")

    pts = np.array([positions[k] for k in known], dtype=np.float64)
    dist = pts @ normal
    sort = sorted(range(len(known)), key=lambda i: (dist[i], inst[known[i]]))
    kept, dropped = [sort[0]], []
    for i in sort[1:]:
        if abs(dist[i] - dist[kept[-1]]) < DUPLICATE_TOLERANCE_MM:
            dropped.append(i)
        else:
            kept.append(i)
    if dropped:
        warnings.append(
            f"{len(dropped)} duplicate slice(s) at an already occupied position were dropped, "
            f"e.g. {names[known[dropped[0]]]}"
        )
    order = tuple(known[i] for i in kept)
    pts, dist = pts[kept], dist[kept]
    origin = pts[0]

    uniform, dz = True, fallback_dz
    if len(kept) == 1:
        warnings.append(f"single slice: slice spacing {dz:g} mm assumed")
    else:
        steps = np.diff(dist)
        dz = float(np.median(steps))
        tolerance = max(0.01, 0.02 * dz)
        gaps = np.nonzero(steps > 1.5 * dz)[0]
        for g in gaps[:5]:
            missing = round(steps[g] / dz) - 1
            warnings.append(
                f"gap in the series: about {missing} missing slice(s) between "
                f"{dist[g]:.2f} and {dist[g + 1]:.2f} mm along the slice normal"
            )
        if len(gaps) > 5:
            warnings.append(f"... and {len(gaps) - 5} more gaps")
        if np.any(np.abs(steps - dz) > tolerance):
            uniform = False
            if not len(gaps):
                warnings.append(
                    f"non-uniform slice spacing ({steps.min():.3f} to {steps.max():.3f} mm; "
                    f"median {dz:.3f} mm used unless resampled)"
                )

    shifts, tilt = None, 0.0
    if len(kept) > 1:
        inplane = (pts - origin) - np.outer(dist - dist[0], normal)
        span = dist[-1] - dist[0]
        tilt = float(np.degrees(np.arctan2(np.linalg.norm(inplane[-1]), span)))
        if tilt > TILT_TOLERANCE_DEG:
            if correct_tilt:
                shifts = np.stack([inplane @ row / sx, inplane @ col / sy], axis=1)
                warnings.append(
                    f"gantry tilt of {tilt:.1f} degrees corrected (slices sheared onto an orthogonal grid)"
                )
            else:
                warnings.append(f"gantry tilt of {tilt:.1f} degrees not corrected: geometry is approximate")
    affine = _affine(row, col, normal, sx, sy, dz, origin)
    return SliceGeometry(order, dist, affine, shifts, tilt, uniform, tuple(warnings))


def plan_series_geometry(headers: Sequence[SliceHeader], correct_tilt: bool = True) -> SliceGeometry:
    """``plan_geometry`` for single-frame files, their first file's orientation and spacing."""
    first = headers[0]
    return plan_geometry(
        [h.position for h in headers],
        first.orientation,
        first.pixel_spacing,
        first.slice_thickness,
        [h.instance_number for h in headers],
        [h.path.name for h in headers],
        correct_tilt=correct_tilt,
    )


def _affine(row, col, normal, sx, sy, dz, origin) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 0] = row * sx
    affine[:3, 1] = col * sy
    affine[:3, 2] = normal * dz
    affine[:3, 3] = origin
    return affine
