"""Read one DICOM file's header (never its pixels) into a small, typed record.

Both the catalogue and the loader start here, so a file is judged the same way everywhere.
For the common uncompressed little-endian case the record also carries the byte offset of the
pixel data, which lets the loader read pixels straight into the volume without pydicom decoding.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from core.dicom.errors import NotAnImageError, NotDicomError, PixelDecodeError
from core.dicom.slice_header import NATIVE_LITTLE_ENDIAN, SliceHeader

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_DATA_TAG = (0x7FE0, 0x0010)
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT"}


def _float(value, default=None):
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _floats(value, n):
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int(value, default=None):
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A file without the 128-byte preamble may still be DICOM: it then starts with a low group."""
    if len(head) < 8:
        return False
    group = struct.unpack("<H", head[:2])[0]
    return group in (0x0002, 0x0008)


def _pixel_element(fp, transfer_syntax: str) -> tuple[int | None, int | None, bool]:
    """After a stop-before-pixels read, find (value offset, length, present) of Pixel Data."""
    if transfer_syntax == DEFLATED:  # positions in the inflated stream say nothing about the file
        return None, None, True
    tag = fp.read(4)
    if len(tag) < 4:
        return None, None, False
    group, element = struct.unpack(">HH" if transfer_syntax == BIG_ENDIAN else "<HH", tag)
    if (group, element) != PIXEL_DATA_TAG:
        # Float / double float pixel data, or something after the stop: an image, not fast.
        present = group == 0x7FE0 and element in (0x0008, 0x0009)
        return None, None, present
    if transfer_syntax not in NATIVE_LITTLE_ENDIAN:
        return None, None, True
    if transfer_syntax == "1.2.840.10008.1.2":  # implicit VR
        (length,) = struct.unpack("<I", fp.read(4))
    else:
        vr = fp.read(2)
        if vr in _LONG_VRS:
            fp.read(2)
            (length,) = struct.unpack("<I", fp.read(4))
        else:
            (length,) = struct.unpack("<H", fp.read(2))
    if length == 0xFFFFFFFF:
        return None, None, True
    return fp.tell(), length, True


def read_header(path: str | Path) -> SliceHeader:
    """Read a file's header. Raises ``NotDicomError``, ``NotAnImageError`` or ``PixelDecodeError``.

    The common case goes through the small native scanner; everything else through pydicom.
    """
    from core.dicom.fastheader import scan_header  # it imports this module's types

    path = Path(path)
    return scan_header(path) or _read_with_pydicom(path)[0]


def read_descriptive(path: str | Path) -> Dataset:
    """The full header as a pydicom ``Dataset`` (patient, study and series descriptions)."""
    return _read_with_pydicom(Path(path))[1]


def _read_with_pydicom(path: Path) -> tuple[SliceHeader, Dataset]:
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
            preamble = len(head) == 132 and head[128:] == b"DICM"
            if not preamble and not _looks_like_raw_dataset(head):
                raise NotDicomError(path, "not a DICOM file (no 'DICM' marker, no DICOM header)")
            fp.seek(0)
            with warnings.catch_warnings():  # pydicom warns on every odd value; we judge ourselves
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=not preamble)
            meta = getattr(ds, "file_meta", None)
            ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
            if not ts:
                ts = "1.2.840.10008.1.2"  # no meta header: DICOM's default, implicit VR LE
            offset, length, has_pixels = _pixel_element(fp, ts)
    except NotDicomError:
        raise
    except PermissionError as exc:
        raise NotDicomError(path, "permission denied") from exc
    except (OSError, EOFError) as exc:
        raise NotDicomError(path, f"cannot be read ({exc.__class__.__name__})") from exc
    except Exception as exc:  # pydicom raises many types on malformed input
        raise NotDicomError(path, f"malformed DICOM header ({exc.__class__.__name__})") from exc

    sop_class = str(
        ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else "")
    )
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise NotAnImageError(path, "DICOMDIR (a directory index; its images are read directly)")
    if "Rows" in ds and "Columns" in ds and not has_pixels:
        raise PixelDecodeError(path, "image header but no pixel data (truncated file?)")
    if "Rows" not in ds or "Columns" not in ds:
        name = UID(sop_class).name if sop_class else "unknown object"
        if name.endswith("Image Storage"):
            raise PixelDecodeError(path, f"incomplete {name} file: no image size or pixels (truncated?)")
        raise NotAnImageError(path, f"DICOM without image pixels ({name})")
    return _header_from_dataset(path, ds, ts, offset, length), ds


def _header_from_dataset(path, ds, ts, offset, length) -> SliceHeader:
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    slope = _float(ds.get("RescaleSlope"), 1.0)
    intercept = _float(ds.get("RescaleIntercept"), 0.0)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:  # enhanced multi-frame: geometry and rescale live in functional groups
        group = shared[0]
        if orientation is None and "PlaneOrientationSequence" in group:
            orientation = _floats(group.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
        if spacing is None and "PixelMeasuresSequence" in group:
            measures = group.PixelMeasuresSequence[0]
            spacing = _floats(measures.get("PixelSpacing"), 2)
        if "PixelValueTransformationSequence" in group:
            pvt = group.PixelValueTransformationSequence[0]
            slope = _float(pvt.get("RescaleSlope"), slope)
            intercept = _float(pvt.get("RescaleIntercept"), intercept)
    return SliceHeader(
        path=path,
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "") or ""),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        n_frames=_int(ds.get("NumberOfFrames"), 1) or 1,
        instance_number=_int(ds.get("InstanceNumber")),
        position=position,
        orientation=orientation,
        pixel_spacing=spacing,
        slice_thickness=_float(ds.get("SliceThickness")),
        bits_allocated=_int(ds.get("BitsAllocated"), 16),
        bits_stored=_int(ds.get("BitsStored"), 16),
        pixel_representation=_int(ds.get("PixelRepresentation"), 0),
        samples_per_pixel=_int(ds.get("SamplesPerPixel"), 1),
        slope=slope,
        intercept=intercept,
        padding_value=_int(ds.get("PixelPaddingValue")),
        transfer_syntax=ts,
        pixel_offset=offset,
        pixel_bytes=length,
    )
