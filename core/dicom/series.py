"""Load one CT series (a list of files, or one enhanced multi-frame file) into a ``CTVolume``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from core.dicom.errors import (
    InconsistentSeriesError,
    NotCTError,
    PixelDecodeError,
    SeriesNotFoundError,
    StudyLoadError,
)
from core.dicom.geometry import SliceGeometry, consistency_problems, plan_geometry, plan_series_geometry
from core.dicom.headers import read_descriptive, read_header
from core.dicom.pixels import (
    allocate_ahead,
    allocate_volume,
    check_sizes,
    check_volume_bytes,
    prefetch,
    read_raw_into,
    resample_z,
    resampled_count,
    shift_slice,
    stored_to_hu,
)
from core.dicom.slice_header import SliceHeader
from core.util.cancellation import Cancelled
from core.volume import CTVolume, VolumeMetadata

Progress = Callable[[int, int], None]


class LoadCancelled(Cancelled):
    """The caller asked to stop; nothing was changed."""


def metadata_from_dataset(ds: Dataset) -> VolumeMetadata:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return "" if value is None else str(value)

    def number(keyword: str, kind=float):
        try:
            return kind(ds.get(keyword)) if ds.get(keyword) not in (None, "") else None
        except (TypeError, ValueError):
            return None

    return VolumeMetadata(
        patient_name=text("PatientName"),
        patient_id=text("PatientID"),
        patient_birth_date=text("PatientBirthDate"),
        patient_sex=text("PatientSex"),
        study_uid=text("StudyInstanceUID"),
        series_uid=text("SeriesInstanceUID"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        study_date=text("StudyDate"),
        study_description=text("StudyDescription"),
        series_description=text("SeriesDescription"),
        series_number=number("SeriesNumber", int),
        modality=text("Modality"),
        manufacturer=text("Manufacturer"),
        kvp=number("KVP"),
        convolution_kernel=text("ConvolutionKernel"),
        slice_thickness=number("SliceThickness"),
        contrast_agent=text("ContrastBolusAgent").strip(),
    )


def load_series(
    files: Sequence[str | Path],
    *,
    require_ct: bool = True,
    resample: bool = False,
    correct_tilt: bool = True,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> CTVolume:
    """Load the image files of ONE series into a ``CTVolume``.

    Args:
        files: the series' files, in any order (a catalogue's ``SeriesEntry.files``).
        require_ct: refuse other modalities with ``NotCTError``.
        resample: put slices with gaps or uneven spacing on a regular grid (linear in z);
            otherwise the median spacing is used and a warning says so.
        correct_tilt: shear gantry-tilted slices onto an orthogonal grid.
        progress: called with (slices done, total).
        cancelled: polled between slices; ``LoadCancelled`` is raised when it returns True.
    """
    if not files:
        raise SeriesNotFoundError(None, "no files given for the series")
    prefetch(files)
    headers: list[SliceHeader] = [read_header(files[0])]
    take_volume = _allocate_ahead(headers[0], len(files))
    headers += [read_header(path) for path in files[1:]]
    series = {h.series_uid for h in headers}
    if len(series) > 1:
        raise InconsistentSeriesError(
            Path(files[0]).parent,
            f"{len(series)} different series among the files; load one at a time",
        )
    first = headers[0]
    if require_ct and first.modality and first.modality != "CT":
        raise NotCTError(first.path, f"modality {first.modality}, not CT")
    if first.samples_per_pixel != 1:
        raise PixelDecodeError(
            first.path, f"colour image ({first.samples_per_pixel} samples per pixel), not CT"
        )
    problems = consistency_problems(headers)
    if problems:
        raise InconsistentSeriesError(first.path.parent, "; ".join(problems))
    if any(h.n_frames > 1 for h in headers):
        if len(headers) > 1:
            raise InconsistentSeriesError(first.path, "a multi-frame file mixed with other files")
        return _load_multiframe(first, _notify(progress, cancelled), resample, correct_tilt)

    geometry = plan_series_geometry(headers, correct_tilt)
    notify = _notify(progress, cancelled)
    check_sizes([headers[i] for i in geometry.order], len(geometry.order))
    volume = take_volume((len(geometry.order), first.rows, first.columns))
    for k, index in enumerate(geometry.order):
        header = headers[index]
        if header.fast_path:
            read_raw_into(header, volume[k])
            stored_to_hu(volume[k], header, volume[k])
        else:
            stored_to_hu(_decode(header.path, first.rows, first.columns), header, volume[k])
        notify(k + 1, len(geometry.order))
    volume, affine, warnings = _finish(volume, geometry, resample, first)
    meta = metadata_from_dataset(read_descriptive(headers[geometry.order[0]].path))
    return CTVolume(volume, affine, meta, warnings, source=first.path.parent)


def _allocate_ahead(first: SliceHeader, count: int) -> Callable[[tuple[int, int, int]], np.ndarray]:
    """Fault in the volume's memory while the other headers are read, when the first file
    promises a plain series (the shape is checked again once all headers are in)."""
    try:
        check_sizes([first], count)
    except PixelDecodeError:
        return allocate_volume  # the checks below will say what is wrong, in their order
    return allocate_ahead((count, first.rows, first.columns)) if first.fast_path else allocate_volume


def _notify(progress: Progress | None, cancelled: Callable[[], bool] | None) -> Progress:
    def notify(done: int, total: int) -> None:
        if cancelled is not None and cancelled():
            raise LoadCancelled()
        if progress is not None:
            progress(done, total)

    return notify


def _decode(path: Path, rows: int, columns: int) -> np.ndarray:
    """Full pydicom decode (compressed transfer syntaxes through the pylibjpeg plugins)."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # codecs raise anything from RuntimeError to ValueError
        reason = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise PixelDecodeError(path, f"pixel data could not be decoded: {reason}") from exc
    if pixels.ndim == 2 and pixels.shape != (rows, columns):
        raise PixelDecodeError(path, f"decoded {pixels.shape}, header says {rows}x{columns}")
    return pixels


def _finish(volume: np.ndarray, geometry: SliceGeometry, resample: bool, header: SliceHeader):
    warnings = list(geometry.warnings)
    if geometry.shifts is not None:
        for k, (dx, dy) in enumerate(geometry.shifts):
            if abs(dx) > 1e-3 or abs(dy) > 1e-3:
                volume[k] = shift_slice(volume[k], dx, dy)
    affine = geometry.affine
    if resample and not geometry.uniform and len(geometry.positions) > 1:
        spacing = float(np.linalg.norm(affine[:3, 2]))
        check_volume_bytes(header, resampled_count(geometry.positions, spacing))  # one far-off slice
        volume = resample_z(volume, geometry.positions, spacing)
        warnings.append(f"resampled to a regular {spacing:.3f} mm slice grid ({volume.shape[0]} slices)")
    return volume, affine, tuple(warnings)


def _frame_value(frame_group, sequence: str, keyword: str, n: int):
    if frame_group is None or sequence not in frame_group:
        return None
    value = frame_group[sequence][0].get(keyword)
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _load_multiframe(header: SliceHeader, notify: Progress, resample: bool, correct_tilt: bool) -> CTVolume:
    """Enhanced multi-frame CT: per-frame positions and rescale come from functional groups."""
    try:
        ds = pydicom.dcmread(header.path)
    except Exception as exc:
        raise PixelDecodeError(
            header.path, f"cannot read multi-frame file ({exc.__class__.__name__})"
        ) from exc
    frames = _decode(header.path, header.rows, header.columns)
    if frames.ndim == 2:
        frames = frames[None]
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []) or [])
    if per_frame and len(per_frame) != frames.shape[0]:
        raise InconsistentSeriesError(header.path, "per-frame functional groups do not match the frame count")
    groups = per_frame or [None] * frames.shape[0]
    positions = [_frame_value(g, "PlanePositionSequence", "ImagePositionPatient", 3) for g in groups]
    orientation = _frame_value(groups[0], "PlaneOrientationSequence", "ImageOrientationPatient", 6)
    geometry = plan_geometry(
        positions,
        orientation or header.orientation,
        header.pixel_spacing,
        header.slice_thickness,
        list(range(frames.shape[0])),
        [f"{header.path.name} frame {i + 1}" for i in range(frames.shape[0])],
        correct_tilt=correct_tilt,
    )
    volume = np.empty((len(geometry.order), header.rows, header.columns), dtype=np.int16)
    for k, index in enumerate(geometry.order):
        frame_header = header
        rescale = groups[index]
        if rescale is not None and "PixelValueTransformationSequence" in rescale:
            pvt = rescale.PixelValueTransformationSequence[0]
            frame_header = replace(
                header,
                slope=float(pvt.get("RescaleSlope", header.slope)),
                intercept=float(pvt.get("RescaleIntercept", header.intercept)),
            )
            slope, intercept = frame_header.slope, frame_header.intercept
            if not (math.isfinite(slope) and math.isfinite(intercept) and slope != 0):
                raise InconsistentSeriesError(
                    header.path,
                    f"frame {index + 1}: RescaleSlope {slope:g}, RescaleIntercept {intercept:g}: "
                    "HU values cannot be computed",
                )
        stored_to_hu(frames[index], frame_header, volume[k])
        notify(k + 1, len(geometry.order))
    del frames
    volume, affine, warnings = _finish(volume, geometry, resample, header)
    return CTVolume(volume, affine, metadata_from_dataset(ds), warnings, source=header.path)


__all__ = ["LoadCancelled", "StudyLoadError", "load_series", "metadata_from_dataset"]


def load_study_ct(location: str | Path, study_uid: str) -> CTVolume:
    """The largest loadable CT series of study ``study_uid`` under ``location`` (a prior's folder)."""
    from core.dicom.catalogue import catalogue

    found = catalogue(location)
    series = [
        s
        for patient in found.patients
        for study in patient.studies
        if study.study_uid == study_uid
        for s in study.series
        if s.is_ct and s.loadable
    ]
    if not series:
        raise SeriesNotFoundError(location, "the study has no loadable CT series there any more")
    best = max(series, key=lambda s: (s.n_images, s.rows * s.columns))
    return load_series(best.files, require_ct=True)
