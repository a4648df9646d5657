"""Small-array helpers for nodule rendering: Gaussian blur and trilinear sampling in numpy."""

from __future__ import annotations

import numpy as np


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return kernel / kernel.sum()


def blur(array: np.ndarray, sigma_zyx: tuple[float, float, float]) -> np.ndarray:
    """Separable Gaussian blur (sigma in voxels per axis), zero outside the array."""
    out = np.asarray(array, dtype=np.float32)
    for axis, sigma in enumerate(sigma_zyx):
        if sigma < 0.05 or out.shape[axis] == 1:
            continue
        kernel = gaussian_kernel(sigma)
        radius = len(kernel) // 2
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad)
        acc = np.zeros_like(out)
        for offset, weight in enumerate(kernel):
            index = [slice(None)] * out.ndim
            index[axis] = slice(offset, offset + out.shape[axis])
            acc += weight * padded[tuple(index)]
        out = acc
    return out


def trilinear(volume: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample ``volume`` at fractional voxel coordinates; zero outside."""
    volume = np.asarray(volume, dtype=np.float32)
    padded = np.pad(volume, 1)
    coords = [np.asarray(c, dtype=np.float32) + 1.0 for c in (z, y, x)]  # index into the padded array
    for axis, c in enumerate(coords):
        np.clip(c, 0.0, padded.shape[axis] - 1.001, out=c)
    z0, y0, x0 = (np.floor(c).astype(np.intp) for c in coords)
    fz, fy, fx = (c - np.floor(c) for c in coords)
    out = np.zeros(coords[0].shape, dtype=np.float32)
    for dz, wz in ((0, 1 - fz), (1, fz)):
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                out += wz * wy * wx * padded[z0 + dz, y0 + dy, x0 + dx]
    return out
