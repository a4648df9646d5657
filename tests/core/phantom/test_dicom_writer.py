"""Phantom series written as DICOM load back through the study loader unchanged."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from core.dicom.catalogue import catalogue
from core.dicom.series import load_series
from core.phantom.dicom_writer import SeriesIdentity, write_ct_series
from core.volume import CTVolume

IDENTITY = SeriesIdentity("test-key", "PHANTOM^TEST", "PH-1", "study", "series")


def volume(shape=(7, 24, 20), spacing=(0.7, 0.8, 1.25)) -> CTVolume:
    hu = np.random.default_rng(0).integers(-1024, 3072, shape).astype(np.int16)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, -20.0, 30.0)
    return CTVolume(hu, affine)


def test_round_trip_keeps_hu_and_geometry(tmp_path):
    original = volume()
    paths = write_ct_series(original, tmp_path / "CT", IDENTITY)
    loaded = load_series(paths)
    assert np.array_equal(loaded.array, original.array)
    assert np.allclose(loaded.affine, original.affine, atol=1e-4)
    assert loaded.warnings == ()
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.BitsStored == 12
    assert ds.StudyInstanceUID == IDENTITY.study_uid and pydicom.uid.UID(ds.SOPInstanceUID).is_valid


def test_uids_are_deterministic_and_distinct(tmp_path):
    a = write_ct_series(volume(), tmp_path / "a", IDENTITY)
    b = write_ct_series(volume(), tmp_path / "b", IDENTITY)
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in a]
    assert uids == [pydicom.dcmread(p).SOPInstanceUID for p in b]
    assert len(set(uids)) == len(uids)
    other = SeriesIdentity("other-key", "X", "Y", "s", "s")
    assert other.series_uid != IDENTITY.series_uid


def test_catalogue_sees_one_ct_series(tmp_path):
    write_ct_series(volume(), tmp_path / "CT", IDENTITY)
    (series,) = list(catalogue(tmp_path).all_series())
    assert series.is_ct and series.n_images == 7 and series.problems == []


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    write_ct_series(volume(), tmp_path / "CT", IDENTITY)
    with pytest.raises(FileExistsError):
        write_ct_series(volume(), tmp_path / "CT", IDENTITY)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", broken)
    with pytest.raises(OSError, match="disk full"):
        write_ct_series(volume(), tmp_path / "again", IDENTITY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CT"]
