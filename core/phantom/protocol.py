"""Scan protocols: how a phantom is reconstructed (slices, pixels, kernel, dose, calibration, lung look).

``NOMINAL`` is the rendering the training data always used (1.25 mm contiguous slices, 0.7 mm pixels,
a soft kernel, 20 HU of noise). ``MATRIX`` holds the twelve named cells of the robustness bench
(thickness {1.25, 2.5, 5 mm} x kernel {soft, sharp} x dose {standard, low}), and ``random_protocol``
draws the training distribution of domain randomisation, whose ranges ``DOMAIN`` states for model cards.

Noise (``noise_hu``) is the standard deviation on the reconstructed slices. In the matrix it follows
the physics of a fixed dose: it falls as 1/sqrt(thickness) (``NOMINAL_NOISE_HU`` at 1.25 mm), a sharp
kernel multiplies it by ``SHARP_NOISE_FACTOR`` and low dose (a quarter of the tube current-time product)
doubles it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# In-plane noise correlation length (mm) and edge enhancement (unsharp-mask gain) of each kernel.
KERNELS = {"soft": (0.6, 0.0), "sharp": (0.35, 0.6)}
NOMINAL_NOISE_HU = 20.0
SHARP_NOISE_FACTOR = 1.5
LOW_DOSE_FACTOR = 2.0  # a quarter of the dose: twice the noise
THICKNESSES_MM = (0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)  # reconstructions scanners offer
PIXEL_SPACINGS_MM = (0.55, 0.7, 0.85)  # fields of view 280-435 mm; a few values: one chest grid each


@dataclass(frozen=True)
class ScanProtocol:
    """One reconstruction of a phantom chest.

    Attributes:
        slice_thickness_mm: width of the slice profile (partial volume along z).
        slice_interval_mm: distance between slice centres; below the thickness the slices overlap.
        pixel_spacing_mm: in-plane pixel size.
        kernel: reconstruction kernel name, a key of ``KERNELS`` (its grain and edge enhancement).
        noise_hu: noise standard deviation on the reconstructed slices.
        hu_offset: calibration error added to every voxel (water is not exactly 0 HU).
        lung_density_hu: shift of the lung parenchyma's attenuation (inspiration, age, emphysema).
        lung_texture_hu: amplitude of extra smooth parenchymal texture (0: the phantom's own).
        vessel_contrast: scale of the pulmonary vessels' contrast against the parenchyma.
    """

    slice_thickness_mm: float = 1.25
    slice_interval_mm: float = 1.25
    pixel_spacing_mm: float = 0.7
    kernel: str = "soft"
    noise_hu: float = NOMINAL_NOISE_HU
    hu_offset: float = 0.0
    lung_density_hu: float = 0.0
    lung_texture_hu: float = 0.0
    vessel_contrast: float = 1.0

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {self.kernel!r}")
        if not 0.5 <= self.slice_thickness_mm <= 5.0:
            raise ValueError(f"slice thickness must be 0.5-5 mm, not {self.slice_thickness_mm}")
        if not 0.3 * self.slice_thickness_mm <= self.slice_interval_mm <= self.slice_thickness_mm:
            raise ValueError(
                f"slice interval must be 0.3-1x the thickness (overlap or contiguous), not "
                f"{self.slice_interval_mm} mm for {self.slice_thickness_mm} mm slices"
            )
        if not 0.5 <= self.pixel_spacing_mm <= 1.0:
            raise ValueError(f"pixel spacing must be 0.5-1.0 mm, not {self.pixel_spacing_mm}")
        if not 0 <= self.noise_hu <= 200:
            raise ValueError(f"noise must be 0-200 HU, not {self.noise_hu}")
        if not (abs(self.hu_offset) <= 100 and abs(self.lung_density_hu) <= 150):
            raise ValueError("HU offset must be within 100 HU and the lung density shift within 150 HU")
        if not (0 <= self.lung_texture_hu <= 100 and 0 <= self.vessel_contrast <= 3):
            raise ValueError("lung texture must be 0-100 HU and the vessel contrast scale 0-3")

    @property
    def grain_sigma_mm(self) -> float:
        return KERNELS[self.kernel][0]

    @property
    def edge_enhancement(self) -> float:
        return KERNELS[self.kernel][1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScanProtocol:
        """The protocol ``to_dict`` wrote; an unknown key is an error, a missing one takes the default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scan protocol field(s): {', '.join(unknown)}")
        return cls(**{k: (v if k == "kernel" else float(v)) for k, v in data.items()})


NOMINAL = ScanProtocol()


def matrix_cell(thickness_mm: float, kernel: str, dose: str) -> ScanProtocol:
    """The contiguous-slice protocol of one robustness cell; noise follows a fixed dose (module doc)."""
    noise = NOMINAL_NOISE_HU * math.sqrt(NOMINAL.slice_thickness_mm / thickness_mm)
    noise *= SHARP_NOISE_FACTOR if kernel == "sharp" else 1.0
    noise *= LOW_DOSE_FACTOR if dose == "low" else 1.0
    return replace(
        NOMINAL,
        slice_thickness_mm=thickness_mm,
        slice_interval_mm=thickness_mm,
        kernel=kernel,
        noise_hu=round(noise, 2),
    )


MATRIX: dict[str, ScanProtocol] = {
    f"{t:g}mm-{k}-{d}": matrix_cell(t, k, d)
    for t in (1.25, 2.5, 5.0)
    for k in ("soft", "sharp")
    for d in ("standard", "low")
}

DOMAIN = {
    "slice_thickness_mm": [min(THICKNESSES_MM), max(THICKNESSES_MM)],
    "pixel_spacing_mm": [min(PIXEL_SPACINGS_MM), max(PIXEL_SPACINGS_MM)],
    "noise_hu": [8.0, 90.0],
    "kernels": sorted(KERNELS),
    "hu_offset": [-30.0, 30.0],
}


def nominal_domain(protocol: ScanProtocol = NOMINAL) -> dict:
    """The point 'range' of a model trained on one protocol only, in ``DOMAIN``'s form."""
    return {
        "slice_thickness_mm": [protocol.slice_thickness_mm] * 2,
        "pixel_spacing_mm": [protocol.pixel_spacing_mm] * 2,
        "noise_hu": [protocol.noise_hu] * 2,
        "kernels": [protocol.kernel],
        "hu_offset": [protocol.hu_offset] * 2,
    }


def random_protocol(rng: np.random.Generator) -> ScanProtocol:
    """A protocol from the training distribution: every clinical thickness, overlap in a third of
    scans, either kernel, standard to low dose, a calibration offset of a few tens of HU and varied
    lungs. Everything stays inside ``DOMAIN``."""
    thickness = float(THICKNESSES_MM[int(rng.integers(len(THICKNESSES_MM)))])
    interval = thickness * (0.5 if rng.random() < 1 / 3 else 1.0)
    kernel = "sharp" if rng.random() < 0.5 else "soft"
    dose = float(rng.uniform(1.0, LOW_DOSE_FACTOR * 1.1))  # noise factor: standard to a bit past low dose
    noise = NOMINAL_NOISE_HU * math.sqrt(NOMINAL.slice_thickness_mm / thickness) * dose
    noise *= SHARP_NOISE_FACTOR if kernel == "sharp" else 1.0
    lo, hi = DOMAIN["noise_hu"]
    return ScanProtocol(
        slice_thickness_mm=thickness,
        slice_interval_mm=max(interval, 0.5),
        pixel_spacing_mm=float(PIXEL_SPACINGS_MM[int(rng.integers(len(PIXEL_SPACINGS_MM)))]),
        kernel=kernel,
        noise_hu=round(float(np.clip(noise, lo, hi)), 2),
        hu_offset=round(float(rng.uniform(*DOMAIN["hu_offset"])), 1),
        lung_density_hu=round(float(rng.uniform(-40.0, 60.0)), 1),
        lung_texture_hu=round(float(rng.uniform(0.0, 25.0)), 1),
        vessel_contrast=round(float(rng.uniform(0.7, 1.3)), 2),
    )


def randomisation_fingerprint(draws: int = 64) -> str:
    """A digest of the training distribution itself: the first ``draws`` protocols from a fixed seed.
    Any change to ``random_protocol`` or its constants changes it, so a rendering cached under the old
    distribution is never taken for the new one."""
    rng = np.random.default_rng(0)
    text = json.dumps([random_protocol(rng).to_dict() for _ in range(draws)], sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
