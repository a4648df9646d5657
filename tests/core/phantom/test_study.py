"""Whole phantom studies: deterministic, split-pure, malignancy-blind, and they load back exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.dicom.catalogue import catalogue
from core.dicom.series import load_series
from core.lidc.table import load_nodules
from core.phantom.study import PhantomOptions, build_phantom, choose_nodules, write_phantom
from main import main
from tests.nodule_factory import ellipsoid_nodule

SMALL = PhantomOptions(seed=5, split="train", nodules=2, size=160, pixel_spacing=1.0, slice_thickness=2.5)
REPO = Path(__file__).resolve().parents[3]


def two_nodules():
    return [
        ellipsoid_nodule("LIDC-IDRI-0003/scan-1/nodule-1", radii_mm=(5, 4, 4), malignancy=5, spiculation=4),
        ellipsoid_nodule("LIDC-IDRI-0007/scan-1/nodule-2", radii_mm=(3, 3, 3), malignancy=1, texture=1),
    ]


def test_same_options_same_study():
    a, placed_a = build_phantom(SMALL, two_nodules())
    b, placed_b = build_phantom(SMALL, two_nodules())
    assert np.array_equal(a.array, b.array)
    assert [p.centre_zyx for p in placed_a] == [p.centre_zyx for p in placed_b]


def test_malignancy_changes_nothing_in_the_study():
    nodules = two_nodules()
    flipped = [
        replace(n, ratings=n.ratings | {"malignancy": tuple(6 - v for v in n.ratings["malignancy"])})
        for n in nodules
    ]
    assert [n.label for n in nodules] != [n.label for n in flipped]
    a, _ = build_phantom(SMALL, nodules)
    b, _ = build_phantom(SMALL, flipped)
    assert np.array_equal(a.array, b.array)


def test_written_study_loads_back_with_identical_hu_and_geometry(tmp_path):
    volume, _ = build_phantom(SMALL, two_nodules())
    write_phantom(tmp_path / "study", SMALL, two_nodules())
    (series,) = list(catalogue(tmp_path / "study").all_series())
    loaded = load_series(series.files)
    assert np.array_equal(loaded.array, volume.array)
    assert np.allclose(loaded.affine, volume.affine, atol=1e-3)
    truth = json.loads((tmp_path / "study" / "ground_truth.json").read_text())
    assert truth["series_uid"] == series.series_uid and "research demo" in truth["notice"]
    first = truth["nodules"][0]
    assert first["lidc"]["nodule_id"] == "LIDC-IDRI-0003/scan-1/nodule-1" and first["label"] == "malignant"
    centre = np.array(first["centre_mm"])
    assert loaded.contains_mm(centre)
    z, y, x = np.round(loaded.mm_to_voxel(centre)[::-1]).astype(int)
    assert loaded.array[z, y, x] > -500  # the nodule is where the truth says


def test_splits_are_enforced():
    pool = load_nodules()
    for split in ("train", "val", "test"):
        chosen = choose_nodules(pool, PhantomOptions(seed=1, split=split, nodules=6))
        assert {n.split for n in chosen} == {split} and len(chosen) == 6
    with pytest.raises(ValueError, match="outside the val split"):
        write_phantom("/nonexistent", replace(SMALL, split="val"), two_nodules())
    with pytest.raises(ValueError, match="split must be one of"):
        PhantomOptions(split="holdout")


def test_phantom_command_writes_a_study_and_refuses_to_overwrite(tmp_path):
    options = [
        "--size",
        "128",
        "--nodules",
        "1",
        "--slice-thickness",
        "3",
        "--pixel-spacing",
        "1.0",
        "--seed",
        "2",
    ]
    args = [sys.executable, str(REPO / "main.py"), "phantom", str(tmp_path / "s"), *options]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "s" / "ground_truth.json").is_file() and len(
        list((tmp_path / "s" / "CT").iterdir())
    ) > 10
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds a phantom study" in again.stderr


@pytest.mark.parametrize(
    "option, value",
    [
        ("slice_thickness", 0.0),
        ("slice_thickness", float("nan")),
        ("pixel_spacing", -1.0),
        ("noise", float("nan")),
        ("size", 0),
    ],
)
def test_options_out_of_range_are_refused_before_any_work(option, value):
    """Review: ``phantom OUT --slice-thickness 0`` died with ZeroDivisionError; NaN with "cannot convert
    float NaN to integer"; the others announced "rendering a 0x0x0 chest" before being refused."""
    with pytest.raises(ValueError, match=option.replace("_", " ")):
        PhantomOptions(**{option: value})


def test_phantom_command_refuses_a_zero_slice_thickness(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "p"), "--slice-thickness", "0"]) == 2
    captured = capsys.readouterr()
    assert "slice thickness must be 0.625-3 mm, not 0.0" in captured.err and "rendering" not in captured.err
