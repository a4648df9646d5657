"""CT-like noise and the smooth random fields that give phantom tissue its texture.

Real CT noise is not white: the reconstruction kernel correlates neighbouring pixels in-plane (the
noise power spectrum peaks at a few tenths of a cycle per mm), while contiguous slices are nearly
independent. ``add_noise`` reproduces that with a separable Gaussian filter whose width is set in
millimetres, so the grain looks the same at any pixel spacing. Texture fields are drawn on a coarse grid
and interpolated slice by slice, which never needs a full-volume float array.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HU_MIN, HU_MAX = -1024, 3071
GRAIN_SIGMA_MM = 0.6  # in-plane correlation length of a standard (soft-tissue) reconstruction kernel
CHUNK = 8  # slices per noise chunk; fixed so the output never depends on the number of threads


def worker_count() -> int:
    """Threads for chunked numpy work: numpy releases the GIL inside large array operations."""
    return max(1, min(4, os.cpu_count() or 1))


def _grain_kernel(pixel_mm: float, grain_mm: float = GRAIN_SIGMA_MM) -> np.ndarray:
    """A 1D Gaussian kernel with unit sum of squares, so filtered unit white noise keeps unit std."""
    sigma = grain_mm / pixel_mm
    radius = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / np.sqrt(np.sum(kernel**2))).astype(np.float32)


def _filter_valid(white: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation over the last two axes (the input carries the margins)."""
    ry, rx = len(ky) // 2, len(kx) // 2
    rows = white.shape[1] - 2 * ry
    tmp = ky[0] * white[:, :rows]
    for i in range(1, len(ky)):
        tmp += ky[i] * white[:, i : i + rows]
    cols = white.shape[2] - 2 * rx
    out = kx[0] * tmp[:, :, :cols]
    for i in range(1, len(kx)):
        out += kx[i] * tmp[:, :, i : i + cols]
    return out


def add_noise(
    hu: np.ndarray,
    sigma: float,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    grain_mm: float = GRAIN_SIGMA_MM,
) -> np.ndarray:
    """Add spatially correlated, CT-like Gaussian noise.

    Args:
        hu: ``int16`` (or any integer/float) HU volume ``(z, y, x)``; not modified.
        sigma: standard deviation of the added noise in HU (0 returns a clipped ``int16`` copy).
        spacing: voxel size ``(x, y, z)`` in mm; the in-plane grain is ``grain_mm`` wide whatever the
            pixel size. Slices get independent noise, as contiguous reconstructions do.
        rng: source of randomness; the same generator state gives the same noise.
        grain_mm: in-plane correlation length of the reconstruction kernel (a sharp kernel's is shorter).

    Returns:
        ``int16`` volume, clipped to the 12-bit CT range [-1024, 3071].

    Raises:
        ValueError: if ``hu`` is not 3D, ``sigma`` is negative or the spacing is not positive.
    """
    if hu.ndim != 3:
        raise ValueError(f"add_noise needs a 3D (z, y, x) volume, got shape {hu.shape}")
    if not sigma >= 0:
        raise ValueError(f"noise sigma must be >= 0 HU, not {sigma}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive (x, y, z) sizes in mm, not {spacing}")
    if not grain_mm > 0:
        raise ValueError(f"noise grain must be > 0 mm, not {grain_mm}")
    ky, kx = _grain_kernel(float(spacing[1]), grain_mm), _grain_kernel(float(spacing[0]), grain_mm)
    ry, rx = len(ky) // 2, len(kx) // 2
    nz, ny, nx = hu.shape
    out = np.empty(hu.shape, dtype=np.int16)
    starts = list(range(0, nz, CHUNK))
    # One child generator per fixed chunk: identical output whatever the thread scheduling.
    children = rng.spawn(len(starts))

    def run(i: int) -> None:
        k0 = starts[i]
        k1 = min(nz, k0 + CHUNK)
        noisy = hu[k0:k1].astype(np.float32)
        if sigma > 0:
            white = children[i].standard_normal((k1 - k0, ny + 2 * ry, nx + 2 * rx), dtype=np.float32)
            grain = _filter_valid(white, ky, kx)
            grain *= np.float32(sigma)
            noisy += grain
        np.clip(noisy, HU_MIN, HU_MAX, out=noisy)
        np.rint(noisy, out=noisy)
        out[k0:k1] = noisy

    with ThreadPoolExecutor(worker_count()) as pool:
        list(pool.map(run, range(len(starts))))
    return out


class SmoothField:
    """A smooth zero-mean, unit-std random 3D field sampled slice by slice on a fixed in-plane grid.

    The field lives on a coarse grid of ``step`` mm (smoothed once with a binomial filter); each slice
    is interpolated linearly from it. Index-and-weight interpolation, not matrix products: BLAS threads
    would fight the slice workers for the cores.
    """

    def __init__(self, rng, xs: np.ndarray, ys: np.ndarray, z_range: tuple[float, float], step: float):
        cx = np.arange(xs.min() - step, xs.max() + 2 * step, step)
        cy = np.arange(ys.min() - step, ys.max() + 2 * step, step)
        self._cz = np.arange(z_range[0] - step, z_range[1] + 2 * step, step)
        field = rng.standard_normal((len(self._cz), len(cy), len(cx))).astype(np.float32)
        for axis in range(3):  # one binomial pass per axis removes the grid's blockiness
            field = 0.25 * np.roll(field, 1, axis) + 0.5 * field + 0.25 * np.roll(field, -1, axis)
        field /= max(float(field.std()), 1e-6)
        self._field = field
        self._x = _weights(cx, xs)
        self._y = _weights(cy, ys)

    def slice(self, z: float, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """The field at height ``z`` (same units as ``z_range``) on the grid's ``rows`` and ``cols``."""
        pos = float(np.interp(z, self._cz, np.arange(len(self._cz))))
        k = min(int(pos), len(self._cz) - 2)
        f = np.float32(pos - k)
        plane = (1 - f) * self._field[k] + f * self._field[k + 1]
        xl, xf = self._x[0][cols], self._x[1][cols]
        along_x = plane[:, xl] * (1 - xf) + plane[:, xl + 1] * xf
        yl, yf = self._y[0][rows], self._y[1][rows, None]
        return along_x[yl] * (1 - yf) + along_x[yl + 1] * yf


def _weights(coarse: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower coarse index and fraction for linear interpolation at each fine position."""
    pos = np.interp(fine, coarse, np.arange(len(coarse), dtype=np.float64))
    lo = np.clip(np.floor(pos).astype(np.intp), 0, len(coarse) - 2)
    return lo, (pos - lo).astype(np.float32)
