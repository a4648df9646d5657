"""Hostile headers, one table row each: how a file is spoiled and what the reader must make of it.

Every row writes a good series and a spoiled one side by side in one folder. Whatever the spoiling,
the folder still catalogues, the good series still lists without problems and still opens, the
catalogue is valid JSON (no NaN), and the spoiled series is either refused with one clear message
(naming a file and counting the files) or opens without the spoiled slice, saying so.
NIfTI files (``VOLUME_CASES``) are refused when image data are missing, and carry a warning when
a voxel size had to be made up. Extend the tables when a new kind of hostile file turns up.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

from core.dicom.catalogue import catalogue
from core.dicom.errors import ImageFormatError, StudyLoadError
from core.dicom.geometry import plan_geometry
from core.dicom.series import load_series
from core.imaging.volume_files import load_volume_file
from tests.dicom_factory import spoil_files, write_series

N = 4


@dataclass(frozen=True)
class Case:
    name: str
    values: dict  # DICOM keyword -> raw text written into the spoiled files
    files: int  # how many files of the spoiled series get the values
    outcome: str  # "refused": the series does not open; "slice left out": it opens without them
    message: str  # what the series' problem (and the load error) says


CASES = [
    Case("inf position", {"ImagePositionPatient": "-10\\-12\\inf"}, 1, "slice left out",
         "1 slice(s) with a non-finite ImagePositionPatient were left out"),
    Case("nan position", {"ImagePositionPatient": "-10\\-12\\nan"}, 1, "slice left out",
         "1 slice(s) with a non-finite ImagePositionPatient were left out"),
    Case("nan position everywhere", {"ImagePositionPatient": "nan\\-12\\0"}, N + 2, "refused",
         f"ImagePositionPatient is not finite (NaN or infinite) in {N + 2} of {N + 2} file(s)"),
    Case("nan orientation", {"ImageOrientationPatient": "1\\0\\0\\0\\nan\\0"}, N + 2, "refused",
         f"ImageOrientationPatient is not finite (NaN or infinite) in {N + 2} of {N + 2} file(s)"),
    Case("inf orientation in one file", {"ImageOrientationPatient": "1\\0\\0\\0\\-inf\\0"}, 1, "refused",
         f"ImageOrientationPatient is not finite (NaN or infinite) in 1 of {N + 2} file(s)"),
    Case("inf pixel spacing", {"PixelSpacing": "inf\\0.7"}, N + 2, "refused",
         f"PixelSpacing is not finite (NaN or infinite) in {N + 2} of {N + 2} file(s)"),
    Case("nan slice thickness", {"SliceThickness": "nan"}, N + 2, "refused",
         f"SliceThickness is not finite (NaN or infinite) in {N + 2} of {N + 2} file(s)"),
    Case("nan rescale slope", {"RescaleSlope": "nan"}, N + 2, "refused",
         f"RescaleSlope is 0 or not finite in {N + 2} of {N + 2} file(s)"),
    Case("zero rescale slope", {"RescaleSlope": "0"}, 2, "refused",
         f"RescaleSlope is 0 or not finite in 2 of {N + 2} file(s)"),
    Case("inf rescale intercept", {"RescaleIntercept": "inf"}, N + 2, "refused",
         f"RescaleIntercept is not finite (NaN or infinite) in {N + 2} of {N + 2} file(s)"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_header(case: Case, tmp_path):
    good = write_series(tmp_path / "good", N)
    bad = write_series(tmp_path / "bad", N + 2, shuffle_names=False)  # the larger: chosen by default
    spoiled = sorted(bad)[N + 2 - case.files :]  # the top slices: leaving them out makes no gap
    spoil_files(spoiled, case.values)

    found = catalogue(tmp_path)  # never raises for one bad series
    json.dumps(found.to_dict(), allow_nan=False)  # nothing non-finite reaches the JSON
    series = {entry.files[0].parent.name: entry for entry in found.all_series()}
    assert series["good"].problems == []
    assert load_series(good).shape == (N, 32, 32)

    problems = series["bad"].problems
    assert len(problems) == 1, problems  # one message for the series, never one per file
    assert case.message in problems[0]
    assert any(path.name in problems[0] for path in spoiled)  # names an example file
    if case.outcome == "refused":
        with pytest.raises(StudyLoadError, match=re.escape(case.message)):
            load_series(bad)
        assert found.find_series() is series["good"]  # what opens by default is what can be opened
    else:
        volume = load_series(bad)
        assert volume.shape[0] == N + 2 - case.files
        assert found.find_series() is series["bad"]
        assert any(case.message in warning for warning in volume.warnings)


@pytest.mark.parametrize(
    ("positions", "orientation", "spacing", "message"),
    [
        ([(0, 0, 0), (0, 0, 1)], (1, 0, 0, 0, float("nan"), 0), (1, 1), "ImageOrientationPatient is not"),
        ([(0, 0, 0), (0, 0, 1)], (1, 0, 0, 0, 1, 0), (float("inf"), 1), "PixelSpacing is not finite"),
        ([(0, 0, float("nan")), (0, float("inf"), 1)], (1, 0, 0, 0, 1, 0), (1, 1), "not finite in any slice"),
    ],
    ids=["orientation", "spacing", "every position"],
)
def test_enhanced_frames_with_non_finite_geometry_are_refused(positions, orientation, spacing, message):
    """Enhanced files carry geometry per frame, which the header checks never see: the planner refuses."""
    with pytest.raises(StudyLoadError, match=message) as caught:
        plan_geometry(positions, orientation, spacing, 1.0, [1, 2], ["f.dcm frame 1", "f.dcm frame 2"])
    assert "f.dcm frame" in str(caught.value)


@dataclass(frozen=True)
class VolumeCase:
    name: str
    suffix: str  # "nii" or "nii.gz"
    spoil: Callable[[bytes], bytes]  # the uncompressed NIfTI-1 file -> the spoiled one
    outcome: str  # "refused" or "warned"
    message: str


def _pixdim(axis: int, value: float) -> Callable[[bytes], bytes]:
    return lambda raw: raw[: 76 + 4 * axis] + struct.pack("<f", value) + raw[80 + 4 * axis :]


VOLUME_CASES = [
    VolumeCase("truncated nii", "nii", lambda raw: raw[:-100], "refused",
               "truncated: 33020 of 33120 bytes of header and image data present"),
    VolumeCase("truncated nii.gz", "nii.gz", lambda raw: raw, "refused",
               "truncated: the compressed data end before the image does"),
    VolumeCase("nan pixdim x", "nii", _pixdim(1, float("nan")), "warned",
               "NIfTI pixdim[1] is nan, not a voxel size: 1 mm used along x"),
    VolumeCase("inf pixdim y", "nii", _pixdim(2, float("inf")), "warned",
               "NIfTI pixdim[2] is inf, not a voxel size: 1 mm used along y"),
    VolumeCase("zero pixdim z", "nii", _pixdim(3, 0.0), "warned",
               "NIfTI pixdim[3] is 0, not a voxel size: 1 mm used along z"),
]  # fmt: skip


@pytest.mark.parametrize("case", VOLUME_CASES, ids=[c.name for c in VOLUME_CASES])
def test_hostile_volume_file(case: VolumeCase, tmp_path):
    hu = np.random.default_rng(0).integers(-1000, 1000, (4, 64, 64), dtype=np.int16)  # compresses badly
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((0.7, 0.8, 2.5))
    plain = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(plain))
    spoiled = case.spoil(plain.read_bytes())
    path = tmp_path / f"spoiled.{case.suffix}"
    if case.suffix == "nii.gz":
        packed = gzip.compress(spoiled)
        path.write_bytes(packed[: len(packed) // 2])  # a download cut off half way
    else:
        path.write_bytes(spoiled)
    if case.outcome == "refused":  # never zero-filled in silence
        with pytest.raises(ImageFormatError, match=re.escape(f"{path}: {case.message}")):
            load_volume_file(path)
    else:
        volume = load_volume_file(path)
        assert [w for w in volume.warnings if case.message in w], volume.warnings
        assert len(volume.warnings) == 1  # the one replaced axis, not the others


def test_enhanced_frame_with_a_nan_slope_is_refused(tmp_path):
    """Enhanced files rescale per frame: a NaN slope in one frame's functional group refuses the file."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    from tests.dicom_factory import ct_dataset, phantom_slice

    ds = ct_dataset(0, generate_uid(), generate_uid())
    del ds.ImagePositionPatient, ds.RescaleIntercept, ds.RescaleSlope
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([phantom_slice(k) + 1024 for k in range(3)]).astype(np.int16).tobytes()
    frames = []
    for k, slope in enumerate(("1", "nan", "1")):
        position, rescale, group = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [0, 0, float(k)]
        rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = "-1024", slope, "HU"
        group.PlanePositionSequence, group.PixelValueTransformationSequence = [position], [rescale]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(StudyLoadError, match=r"enhanced\.dcm: frame 2: RescaleSlope nan, .*computed"):
        load_series([path])
