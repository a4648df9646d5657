"""Soft-edged shape primitives shared by the phantom's anatomy renderers.

Every boundary is drawn with partial volume: a voxel cut by a surface takes the fraction of it inside,
approximated by ``clip(0.5 - d / w, 0, 1)`` where ``d`` is the signed distance to the surface (negative
inside) and ``w`` the voxel's extent along the surface normal. That removes the staircase aliasing of
binary masks, which no scanner produces, while staying a handful of array operations per shape.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def coverage(d: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Fraction of each voxel inside a surface at signed distance ``d`` (negative inside)."""
    out = np.multiply(d, -1.0 / width if np.isscalar(width) else -1.0 / np.asarray(width), dtype=F32)
    out += F32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def paint(hu: np.ndarray, cov: np.ndarray, value: float | np.ndarray) -> None:
    """Blend ``value`` into ``hu`` in place with weight ``cov`` (the painter's algorithm)."""
    hu += (value - hu) * cov


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distance fields: unions that fill creases narrower than ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def superellipse_radius(theta: np.ndarray, a: float, b_front: float, b_back: float, p_front, p_back):
    """Radius of a superellipse at polar angle ``theta``, with its own depth and squareness behind (y > 0).

    The two halves blend smoothly across the sides, so the outline has no kink where they meet.
    """
    c, s = np.abs(np.cos(theta)), np.sin(theta)
    back = 0.5 + 0.5 * np.tanh(s / 0.3)
    b = b_front + (b_back - b_front) * back
    p = p_front + (p_back - p_front) * back
    return (np.power(c / a, p) + np.power(np.abs(s) / b, p)) ** (-1.0 / p)


def segment_distance_2d(
    x: np.ndarray, y: np.ndarray, z: float, p0: np.ndarray, p1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points ``(x, y, z)`` of one axial plane to the 3D segment ``p0``-``p1``.

    ``x`` is a row vector and ``y`` a column vector (broadcast to a 2D window). Returns the distance and
    the position ``t`` (0..1) of the closest point along the segment, for tapering radii.
    """
    x0, y0, z0 = (float(c) for c in p0)
    vx, vy, vz = (float(a) - float(b) for a, b in zip(p1, p0, strict=True))
    length2 = max(vx * vx + vy * vy + vz * vz, 1e-9)
    dx, dy, dz = x - x0, y - y0, z - z0  # python floats keep float32 arrays float32 (NEP 50)
    t = np.clip((dx * (vx / length2) + dy * (vy / length2)) + dz * (vz / length2), 0.0, 1.0)
    ex = dx - t * vx
    ey = dy - t * vy
    ez = dz - t * vz
    return np.sqrt(ex * ex + ey * ey + ez * ez), t


def segment_box(p0: np.ndarray, p1: np.ndarray, z: float, reach: float):
    """The x/y bounds of the part of a segment within ``reach`` of plane ``z``, grown by ``reach``.

    Returns ``None`` when the segment never comes that close to the plane.
    """
    z0, z1 = float(p0[2]), float(p1[2])
    if z < min(z0, z1) - reach or z > max(z0, z1) + reach:
        return None
    if abs(z1 - z0) < 1e-6:
        t0, t1 = 0.0, 1.0
    else:
        ta, tb = (z - reach - z0) / (z1 - z0), (z + reach - z0) / (z1 - z0)
        t0, t1 = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
    a, b = p0 + t0 * (p1 - p0), p0 + t1 * (p1 - p0)
    return (
        min(a[0], b[0]) - reach,
        max(a[0], b[0]) + reach,
        min(a[1], b[1]) - reach,
        max(a[1], b[1]) + reach,
    )


def ellipsoid_distance_2d(x, y, z: float, centre, inv_axes: np.ndarray):
    """First-order signed distance to an ellipsoid ``(p - c)^T M (p - c) = 1`` in one axial plane.

    ``inv_axes`` is ``M`` (3x3, symmetric positive definite). Returns ``(d, nz)`` where ``nz`` is the
    absolute z component of the unit normal, which sets how much the slice thickness blurs the edge.
    """
    m = [[float(v) for v in row] for row in inv_axes]  # python floats keep the arrays float32
    px, py, pz = x - float(centre[0]), y - float(centre[1]), float(z) - float(centre[2])
    gx = m[0][0] * px + m[0][1] * py + m[0][2] * pz
    gy = m[1][0] * px + m[1][1] * py + m[1][2] * pz
    gz = m[2][0] * px + m[2][1] * py + m[2][2] * pz
    q = np.maximum(px * gx + py * gy + pz * gz, 1e-12)
    gnorm = np.maximum(np.sqrt(gx * gx + gy * gy + gz * gz), 1e-12)
    return (q - np.sqrt(q)) / gnorm, np.abs(gz) / gnorm


def ellipsoid_matrix(axes: np.ndarray, semi: tuple[float, float, float]) -> np.ndarray:
    """``M`` for an ellipsoid whose principal directions are the rows of ``axes`` (orthonormal)."""
    axes = np.asarray(axes, dtype=np.float64)
    return axes.T @ np.diag(1.0 / np.square(semi)) @ axes


def orthonormal_axes(direction) -> np.ndarray:
    """Three orthonormal rows, the first along ``direction``."""
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)
    helper = np.array([0.0, 0.0, 1.0]) if abs(u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v)
    return np.stack([u, v, np.cross(u, v)])
