"""The one volume type of the project: an immutable CT volume in Hounsfield units.

Conventions, fixed here and converted once at the loading boundary:

* ``array`` is ``int16`` HU indexed ``(z, y, x)`` = (slice, row, column), read-only.
* ``affine`` maps a voxel index ``(x, y, z, 1)`` (column, row, slice) to patient coordinates in mm,
  in DICOM's LPS frame (x towards the patient's Left, y Posterior, z Superior), like ITK.
* ``spacing``, ``origin`` and ``direction`` are derived from the affine, never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class VolumeMetadata:
    """Descriptive DICOM attributes kept apart from the pixels.

    The ``patient_*`` fields identify a person: never log them, and drop them on anonymised export.
    """

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    modality: str = ""
    manufacturer: str = ""
    kvp: float | None = None
    convolution_kernel: str = ""
    slice_thickness: float | None = None
    contrast_agent: str = ""  # ContrastBolusAgent: "" when the header has none

    IDENTIFYING = ("patient_name", "patient_id", "patient_birth_date")

    def anonymised(self) -> VolumeMetadata:
        """A copy with the fields that identify the patient blanked."""
        from dataclasses import replace

        return replace(self, **{name: "" for name in self.IDENTIFYING})


@dataclass(frozen=True, repr=False)
class CTVolume:
    """A CT volume: int16 HU ``(z, y, x)``, an LPS affine, metadata and the loader's warnings."""

    array: np.ndarray
    affine: np.ndarray
    metadata: VolumeMetadata = field(default_factory=VolumeMetadata)
    warnings: tuple[str, ...] = ()
    source: Path | None = None

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise ValueError(f"CTVolume needs a 3D (z, y, x) array, got shape {array.shape}")
        if array.dtype != np.int16:
            raise ValueError(f"CTVolume holds int16 HU, got {array.dtype}")
        affine = np.array(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.allclose(affine[3], [0, 0, 0, 1]):
            raise ValueError("CTVolume affine must be a 4x4 homogeneous matrix")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise ValueError("CTVolume affine is singular (zero spacing or degenerate direction)")
        if array.flags.writeable:
            array = array.view()
            array.flags.writeable = False
        affine.flags.writeable = False
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", affine)
        # mm_to_voxel runs for every marker at every slice change: invert once, not per call
        object.__setattr__(self, "_from_mm", np.linalg.inv(affine[:3, :3]).T)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` voxel counts."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(x, y, z)`` (column, row, slice)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position in mm of the centre of voxel ``(0, 0, 0)``."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit LPS directions of the x, y, z voxel axes."""
        return self.affine[:3, :3] / np.asarray(self.spacing)

    @property
    def ras_affine(self) -> np.ndarray:
        """The same mapping into RAS (NIfTI's frame)."""
        return LPS_TO_RAS @ self.affine

    def voxel_to_mm(self, xyz: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` as (x, y, z) to LPS mm."""
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ self.affine[:3, :3].T + self.affine[:3, 3]

    def mm_to_voxel(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` to fractional voxel indices (x, y, z)."""
        lps = np.asarray(lps, dtype=np.float64)
        return (lps - self.affine[:3, 3]) @ self._from_mm

    def contains_mm(self, lps: np.ndarray) -> bool:
        """Whether an LPS point lies inside the volume (voxel centres +/- half a voxel)."""
        xyz = self.mm_to_voxel(lps)
        size = np.array(self.shape[::-1], dtype=np.float64)
        return bool(np.all(xyz >= -0.5) and np.all(xyz <= size - 0.5))

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def summary(self) -> str:
        """For the reader, e.g. "CT 240 slices of 512 x 512 pixels, 0.70 x 0.70 mm, slices 1.25 mm apart"
        (no patient data; ``repr`` is the developer's version)."""
        z, y, x = self.shape
        sx, sy, sz = self.spacing
        kind = self.metadata.modality or "Volume"
        return f"{kind} {z} slices of {x} x {y} pixels, {sx:.2f} x {sy:.2f} mm, slices {sz:.2f} mm apart"

    def __repr__(self) -> str:
        z, y, x = self.shape
        sx, sy, sz = self.spacing
        return (
            f"CTVolume(shape=(z={z}, y={y}, x={x}), spacing=({sx:.3g}, {sy:.3g}, {sz:.3g}) mm, "
            f"memory={self.nbytes / 2**20:.1f} MiB, warnings={len(self.warnings)})"
        )
