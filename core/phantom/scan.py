"""A phantom crop as a scanner under a ``ScanProtocol`` would reconstruct it.

The chest is rendered once per grid (``chest_grid``: pixel spacing and a z spacing of 0.625 or
1.25 mm); each nodule's crop is then

1. given the protocol's lungs (``adjust_lungs``: parenchyma density and texture, vessel contrast),
2. resliced (``reslice``): every output slice is the mean of the fine slabs under its slice profile, a
   box of the slice thickness, at the slice interval, with a random phase against the nodule, which is
   the partial-volume effect of a thick (or overlapping) reconstruction,
3. reconstructed (``reconstruct``): the kernel's edge enhancement, the HU calibration offset and the
   kernel's correlated noise at the protocol's level.

The nominal protocol skips steps 1 and 2 and adds the same noise as ever: its renderings are bit for
bit those made before protocols existed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from core.phantom.noise import HU_MAX, HU_MIN, add_noise
from core.phantom.protocol import ScanProtocol
from core.phantom.torso import BLOOD_HU, LUNG_HU

FINE_Z_MM = (0.625, 1.25)  # the z spacings chests are rendered at
SHARPEN_SIGMA_MM = 1.0  # width of the blur a sharp kernel's edge enhancement subtracts
TEXTURE_SIGMA_MM = 2.0  # correlation length of the extra parenchymal texture


def chest_grid(protocol: ScanProtocol) -> tuple[float, float]:
    """``(pixel spacing, z spacing)`` of the chest a protocol's crops are cut from: the slices
    themselves when contiguous at a fine spacing, else fine slabs at most half the thickness."""
    t, i = protocol.slice_thickness_mm, protocol.slice_interval_mm
    if t == i and t in FINE_Z_MM:
        return protocol.pixel_spacing_mm, t
    return protocol.pixel_spacing_mm, (FINE_Z_MM[1] if t >= 2 * FINE_Z_MM[1] else FINE_Z_MM[0])


def needs_reslice(protocol: ScanProtocol, dz: float) -> bool:
    return not protocol.slice_thickness_mm == protocol.slice_interval_mm == dz


def adjust_lungs(hu: np.ndarray, lung: np.ndarray, protocol: ScanProtocol, spacing, rng) -> np.ndarray:
    """``hu`` (float32 crop, modified and returned) with the protocol's lungs: the parenchyma moved by
    ``lung_density_hu`` plus smooth texture of ``lung_texture_hu``, vessel contrast scaled by
    ``vessel_contrast``. ``lung`` is the crop's lung mask; partial voxels are weighted by how much
    parenchyma (or vessel) they hold. ``rng`` is drawn only for texture."""
    p = protocol
    if p.lung_density_hu == 0 and p.lung_texture_hu == 0 and p.vessel_contrast == 1:
        return hu
    soft = -400.0  # above this a lung voxel is mostly tissue
    parenchyma = np.clip((soft - hu) / (soft - LUNG_HU), 0, 1) * lung
    vessel = np.clip((hu - LUNG_HU - 80.0) / (BLOOD_HU - LUNG_HU), 0, 1) * lung
    shift = np.float32(p.lung_density_hu)
    if p.lung_texture_hu > 0:
        field = rng.standard_normal(hu.shape, dtype=np.float32)
        sigma = [TEXTURE_SIGMA_MM / s for s in spacing[::-1]]
        field = ndimage.gaussian_filter(field, sigma, mode="wrap")
        field *= np.float32(p.lung_texture_hu / max(float(field.std()), 1e-6))
        shift = shift + field
    hu += parenchyma * shift
    hu += vessel * np.float32((p.vessel_contrast - 1) * (BLOOD_HU - LUNG_HU))
    return hu


def reslice(hu: np.ndarray, dz: float, protocol: ScanProtocol, phase_mm: float) -> tuple[np.ndarray, float]:
    """Slices of ``protocol``'s thickness every interval from fine slabs ``dz`` thick (``hu[k]``
    covers ``k*dz +- dz/2`` mm): each is the mean of the slabs under its box profile. Output slice
    centres sit at ``phase_mm + n * interval``; only slices whose profile lies inside the crop are made.

    Returns the resliced float32 volume and the z (mm, fine frame) of its first slice.
    """
    t, step = protocol.slice_thickness_mm, protocol.slice_interval_mm
    lo, hi = -dz / 2 + t / 2, (len(hu) - 0.5) * dz - t / 2  # centres whose box fits
    first = phase_mm + np.ceil((lo - phase_mm) / step - 1e-9) * step
    centres = np.arange(first, hi + 1e-9, step)
    if len(centres) == 0:
        raise ValueError(f"a crop of {len(hu) * dz:.1f} mm holds no {t} mm slice")
    edges = (np.arange(len(hu)) * dz)[None, :]
    overlap = np.minimum(centres[:, None] + t / 2, edges + dz / 2) - np.maximum(
        centres[:, None] - t / 2, edges - dz / 2
    )
    weights = (np.clip(overlap, 0, None) / t).astype(np.float32)
    out = np.tensordot(weights, hu.astype(np.float32), axes=1)
    return out, float(centres[0])


def reconstruct(hu: np.ndarray, spacing, protocol: ScanProtocol, rng) -> np.ndarray:
    """The protocol's kernel, calibration and noise on ``hu`` ((z, y, x), ``spacing`` (x, y, z) mm):
    edge enhancement (sharp kernels), the HU offset, then correlated noise of ``noise_hu`` with the
    kernel's grain. Returns clipped int16; the nominal protocol is ``add_noise`` exactly."""
    gain = protocol.edge_enhancement
    if gain > 0 or protocol.hu_offset != 0:
        hu = hu.astype(np.float32)
        if gain > 0:  # unsharp mask in-plane: the overshoot at edges of a sharp reconstruction
            sigma = (0.0, SHARPEN_SIGMA_MM / spacing[1], SHARPEN_SIGMA_MM / spacing[0])
            hu += np.float32(gain) * (hu - ndimage.gaussian_filter(hu, sigma, mode="nearest"))
        hu += np.float32(protocol.hu_offset)
        np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return add_noise(hu, protocol.noise_hu, spacing, rng, grain_mm=protocol.grain_sigma_mm)
