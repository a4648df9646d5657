"""NIfTI / MHD / NRRD volumes through SimpleITK, into the same ``CTVolume`` as DICOM.

ITK keeps physical space in LPS, as DICOM does, and converts NIfTI's RAS when it reads, so the
orientation is converted exactly once, here, by building the affine from ITK's direction, spacing
and origin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.dicom.errors import ImageFormatError
from core.volume import CTVolume, VolumeMetadata

SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


def is_volume_file(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(SUFFIXES)


def load_volume_file(path: str | Path) -> CTVolume:
    """Read a 3D scalar image in HU. Raises ``ImageFormatError`` naming the file and the reason."""
    import SimpleITK as sitk  # lazy: SimpleITK is heavy and only this path needs it

    path = Path(path)
    if not path.is_file():
        raise ImageFormatError(path, "no such file")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "unreadable"
        raise ImageFormatError(path, f"SimpleITK cannot read it: {first}") from exc
    if image.GetDimension() != 3:
        raise ImageFormatError(path, f"{image.GetDimension()}D image; a 3D CT volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageFormatError(path, "multi-component (vector/RGB) image; a scalar CT volume is needed")
    array = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    warnings: list[str] = []
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise ImageFormatError(path, "contains NaN or infinite values")
        if np.any(np.abs(array - np.rint(array)) > 1e-3):
            warnings.append("non-integer voxel values rounded to whole HU")
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high > 2000:
        warnings.append(f"values span {low:g}..{high:g}: this may not be in HU (no rescale applied)")
    hu = np.clip(np.rint(array), -1024, np.iinfo(np.int16).max).astype(np.int16)
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing  # column j = direction of axis j times its spacing
    affine[:3, 3] = image.GetOrigin()
    return CTVolume(hu, affine, VolumeMetadata(modality="CT"), tuple(warnings), source=path)
