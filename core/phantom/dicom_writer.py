"""Write a ``CTVolume`` as a real DICOM CT series (CT Image Storage, one file per slice).

Stored as unsigned 12-bit values with RescaleIntercept -1024, as most CT scanners do. UIDs are
derived from a caller-given key, so the same phantom always gets the same UIDs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.volume import CTVolume

INTERCEPT = -1024
MAX_HU = 4095 + INTERCEPT


@dataclass(frozen=True)
class SeriesIdentity:
    """Who and what the series is. ``key`` makes every UID deterministic."""

    key: str
    patient_name: str
    patient_id: str
    study_description: str
    series_description: str
    study_date: str = "20260101"
    patient_birth_date: str = ""
    manufacturer: str = "MTMR Reader phantom generator"

    def uid(self, *parts: object) -> str:
        return generate_uid(entropy_srcs=[self.key, *map(str, parts)])

    @property
    def study_uid(self) -> str:
        return self.uid("study")

    @property
    def series_uid(self) -> str:
        return self.uid("series")


def _template(volume: CTVolume, identity: SeriesIdentity) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = identity.manufacturer
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = identity.study_description
    ds.SeriesDescription = identity.series_description
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{volume.spacing[2]:.4g}"
    ds.SpacingBetweenSlices = f"{volume.spacing[2]:.4g}"
    ds.KVP = "120"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = identity.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.FrameOfReferenceUID = identity.uid("frame-of-reference")
    ds.PositionReferenceIndicator = ""
    direction = volume.direction
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.PixelSpacing = [f"{volume.spacing[1]:.6g}", f"{volume.spacing[0]:.6g}"]  # row, column
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "-600", "1500"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = str(INTERCEPT), "1", "HU"
    ds.BurnedInAnnotation = "NO"
    return ds


def write_ct_series(volume: CTVolume, folder: str | Path, identity: SeriesIdentity) -> list[Path]:
    """Write one file per slice into ``folder`` (created; must not exist). Returns the paths.

    The files are written into a sibling temporary folder first and moved into place at the end,
    so a failure leaves no half-written series behind.
    """
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder}: already exists; refusing to overwrite")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        paths = _write_slices(volume, partial, identity)
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return [folder / p.name for p in paths]


def _write_slices(volume: CTVolume, folder: Path, identity: SeriesIdentity) -> list[Path]:
    template = _template(volume, identity)
    stored = np.empty(volume.shape[1:], dtype=np.uint16)
    paths = []
    for k in range(volume.shape[0]):
        ds = Dataset()
        ds.update(template)
        sop_uid = identity.uid("instance", k)
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        position = volume.voxel_to_mm([0.0, 0.0, float(k)])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{position[2]:.4f}"
        np.subtract(np.clip(volume.array[k], INTERCEPT, MAX_HU), INTERCEPT, out=stored, casting="unsafe")
        ds.PixelData = stored.tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"CT{k + 1:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
