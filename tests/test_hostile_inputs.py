"""Hostile headers, one table row each: how a file is spoiled and what the reader must make of it.

Every row writes a good series and a spoiled one side by side in one folder. Whatever the spoiling,
the folder still catalogues, the good series still lists without problems and still opens, the
catalogue is valid JSON (no NaN), and the spoiled series is either refused with one clear message
(naming a file and counting the files) or opens without the spoiled slice, saying so.
Extend ``CASES`` when a new kind of hostile file turns up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from core.dicom.catalogue import catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.geometry import plan_geometry
from core.dicom.series import load_series
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
    Case("nan position everywhere", {"ImagePositionPatient": "nan\\-12\\0"}, N, "refused",
         f"ImagePositionPatient is not finite (NaN or infinite) in {N} of {N} file(s)"),
    Case("nan orientation", {"ImageOrientationPatient": "1\\0\\0\\0\\nan\\0"}, N, "refused",
         f"ImageOrientationPatient is not finite (NaN or infinite) in {N} of {N} file(s)"),
    Case("inf orientation in one file", {"ImageOrientationPatient": "1\\0\\0\\0\\-inf\\0"}, 1, "refused",
         f"ImageOrientationPatient is not finite (NaN or infinite) in 1 of {N} file(s)"),
    Case("inf pixel spacing", {"PixelSpacing": "inf\\0.7"}, N, "refused",
         f"PixelSpacing is not finite (NaN or infinite) in {N} of {N} file(s)"),
    Case("nan slice thickness", {"SliceThickness": "nan"}, N, "refused",
         f"SliceThickness is not finite (NaN or infinite) in {N} of {N} file(s)"),
    Case("nan rescale slope", {"RescaleSlope": "nan"}, N, "refused",
         f"RescaleSlope is 0 or not finite in {N} of {N} file(s)"),
    Case("zero rescale slope", {"RescaleSlope": "0"}, 2, "refused",
         f"RescaleSlope is 0 or not finite in 2 of {N} file(s)"),
    Case("inf rescale intercept", {"RescaleIntercept": "inf"}, N, "refused",
         f"RescaleIntercept is not finite (NaN or infinite) in {N} of {N} file(s)"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_header(case: Case, tmp_path):
    good = write_series(tmp_path / "good", N)
    bad = write_series(tmp_path / "bad", N, shuffle_names=False)
    spoiled = sorted(bad)[N - case.files :]  # the top slices: leaving them out makes no gap
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
    else:
        volume = load_series(bad)
        assert volume.shape[0] == N - case.files
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
