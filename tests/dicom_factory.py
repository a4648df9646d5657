"""Write small, valid CT series with pydicom, with the defects the loader must handle."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLS = 32


def phantom_slice(k: int, rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    """HU slice with a value that encodes its index: HU = 10 * k at the centre, air elsewhere."""
    hu = np.full((rows, cols), -1000, dtype=np.int16)
    hu[rows // 4 : 3 * rows // 4, cols // 4 : 3 * cols // 4] = 10 * k
    return hu


def ct_dataset(
    k: int,
    series_uid: str,
    study_uid: str,
    *,
    z: float | None = None,
    position: tuple[float, float, float] | None = None,
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    hu: np.ndarray | None = None,
    intercept: float = -1024.0,
    slope: float = 1.0,
    spacing=(0.7, 0.8),
) -> Dataset:
    hu = phantom_slice(k) if hu is None else hu
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.PatientID = "TEST-001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = "20260101"
    ds.Modality = "CT"
    ds.SeriesNumber = 2
    ds.SeriesDescription = "Chest"
    ds.InstanceNumber = k + 1
    ds.ImageOrientationPatient = list(orientation)
    ds.ImagePositionPatient = list(
        position if position is not None else (-10.0, -12.0, 2.5 * k if z is None else z)
    )
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    stored = np.rint((hu.astype(np.float64) - intercept) / slope).astype(np.int16)
    ds.PixelData = stored.tobytes()
    return ds


def write_series(
    folder: Path,
    n: int = 6,
    *,
    shuffle_names: bool = True,
    series_uid: str | None = None,
    study_uid: str | None = None,
    **kwargs,
) -> list[Path]:
    """Write n slices with random file names (so name order means nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    paths = []
    rng = np.random.default_rng(n)
    order = rng.permutation(n) if shuffle_names else np.arange(n)
    for k in order:
        ds = ct_dataset(int(k), series_uid, study_uid, **kwargs)
        path = folder / (uuid.uuid4().hex if shuffle_names else f"{k:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def spoil_files(paths, values: dict[str, str]) -> None:
    """Rewrite header values of written files as raw text ("nan", "inf", "0"), as a broken or hostile
    writer would; pydicom's complaints about such values are silenced, the loader must judge them."""
    import warnings

    import pydicom

    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            for keyword, text in values.items():
                setattr(ds, keyword, text)
            ds.save_as(path, enforce_file_format=True)
