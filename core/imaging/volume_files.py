"""NIfTI / MHD / NRRD volumes through SimpleITK, into the same ``CTVolume`` as DICOM.

ITK keeps physical space in LPS, as DICOM does, and converts NIfTI's RAS when it reads, so the
orientation is converted exactly once, here, by building the affine from ITK's direction, spacing
and origin.
"""

from __future__ import annotations

import gzip
import math
import struct
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
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's warnings print the path (PHI); ours do not
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
    if path.name.lower().endswith((".nii", ".nii.gz")):
        warnings += nifti_problems(path, spacing)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing  # column j = direction of axis j times its spacing
    affine[:3, 3] = image.GetOrigin()
    return CTVolume(hu, affine, VolumeMetadata(modality="CT"), tuple(warnings), source=path)


def nifti_problems(path: Path, spacing) -> list[str]:
    """What ITK passes over in a NIfTI file: missing image data (it fills them with zeros) is an
    ``ImageFormatError``; a NaN, infinite or zero pixdim (it uses 1 mm instead) a warning per axis."""
    header = _nifti_header(path)
    if header is None:  # not a NIfTI-1/2 header this reader knows: ITK has judged the file
        return []
    dims, bitpix, pixdim, offset = header
    needed = offset + math.prod(dims) * bitpix // 8
    present = _data_length(path, needed)
    if present < 0:
        raise ImageFormatError(path, "truncated: the compressed data end before the image does")
    if present < needed:
        raise ImageFormatError(
            path, f"truncated: {present} of {needed} bytes of header and image data present"
        )
    return [
        f"NIfTI pixdim[{axis + 1}] is {pixdim[axis]:g}, not a voxel size: {float(spacing[axis]):g} mm used "
        f"along {'xyz'[axis]}; distances and diameters along it are not reliable"
        for axis in range(min(3, len(dims)))
        if not (math.isfinite(pixdim[axis]) and pixdim[axis] != 0)
    ]


def _nifti_header(path: Path) -> tuple[tuple[int, ...], int, tuple[float, ...], int] | None:
    """(dims, bitpix, pixdim[1..], vox_offset) of a NIfTI-1 or NIfTI-2 header, or None."""
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as fp:
            raw = fp.read(540)
    except (OSError, EOFError):
        return None
    for endian in "<>":
        if len(raw) >= 348 and struct.unpack_from(f"{endian}i", raw)[0] == 348:
            dim = struct.unpack_from(f"{endian}8h", raw, 40)
            bitpix, pixdim = (
                struct.unpack_from(f"{endian}h", raw, 72)[0],
                struct.unpack_from(f"{endian}8f", raw, 76),
            )
            offset = int(struct.unpack_from(f"{endian}f", raw, 108)[0])
            break
        if len(raw) >= 540 and struct.unpack_from(f"{endian}i", raw)[0] == 540:
            dim = struct.unpack_from(f"{endian}8q", raw, 16)
            bitpix, pixdim = (
                struct.unpack_from(f"{endian}h", raw, 14)[0],
                struct.unpack_from(f"{endian}8d", raw, 104),
            )
            offset = struct.unpack_from(f"{endian}q", raw, 168)[0]
            break
    else:
        return None
    ndim = dim[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    return tuple(max(int(d), 1) for d in dim[1 : ndim + 1]), bitpix, tuple(pixdim[1 : ndim + 1]), offset


def _data_length(path: Path, needed: int) -> int:
    """Bytes in the file (a .gz: uncompressed, counted no further than ``needed``; -1 when the
    compressed stream itself is cut short)."""
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    with open(path, "rb") as fp:
        fp.seek(-4, 2)
        if struct.unpack("<I", fp.read(4))[0] == needed % 2**32:
            return needed  # the gzip trailer's length agrees: the usual case, no need to inflate it all
    count = 0
    try:
        with gzip.open(path, "rb") as fp:
            while count < needed and (chunk := fp.read(1 << 20)):
                count += len(chunk)
    except (OSError, EOFError):
        return -1
    return count
