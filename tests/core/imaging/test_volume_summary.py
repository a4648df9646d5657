"""core.imaging.volume_summary: the ``volume`` object of ``main.py info --json``."""

from __future__ import annotations

import json

import numpy as np

from core.imaging.volume_summary import volume_summary
from core.volume import CTVolume, VolumeMetadata


def test_summary_gives_geometry_hu_range_and_warnings_as_json():
    array = np.full((3, 4, 5), -1000, np.int16)
    array[1, 2, 3] = 400
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    affine[:3, 3] = (-10.0, -12.0, 5.0)
    volume = CTVolume(array, affine, VolumeMetadata(series_uid="1.2.3"))
    summary = volume_summary(volume)
    assert summary["shape_zyx"] == [3, 4, 5]
    assert summary["spacing_xyz_mm"] == [0.7, 0.7, 2.5]
    assert summary["origin_lps_mm"] == [-10.0, -12.0, 5.0]
    assert (summary["hu_min"], summary["hu_max"]) == (-1000, 400)
    assert summary["hu_mean"] == round((-1000 * 59 + 400) / 60, 2)
    assert summary["series_uid"] == "1.2.3" and summary["warnings"] == []
    json.dumps(summary, allow_nan=False)
