"""Fixtures shared by the DICOM report tests (SR, SEG, export)."""

from __future__ import annotations

import pydicom
import pytest

from core.dicom.series import load_series
from tests.dicom_factory import write_series


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Six slices sharing one frame of reference, as a scanner writes them (the factory gives each
    slice its own)."""
    files = write_series(tmp_path_factory.mktemp("ct"), n=6)
    frame = pydicom.dcmread(files[0]).FrameOfReferenceUID
    for f in files:
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = frame
        ds.save_as(f, enforce_file_format=True)
    return files, load_series(files)


@pytest.fixture(scope="module")
def doe_series(tmp_path_factory):
    """Three slices of a patient whose name has one part ("DOE"), as many real headers have it."""
    files = write_series(tmp_path_factory.mktemp("doe"), n=3)
    frame = pydicom.dcmread(files[0]).FrameOfReferenceUID
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.FrameOfReferenceUID = "DOE", frame
        ds.save_as(f, enforce_file_format=True)
    return files, load_series(files)
