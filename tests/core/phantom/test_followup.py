"""Phantom follow-up pairs: one patient twice, nodules changed by known factors, the patient moved."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import numpy as np
import pydicom
import pytest

from core.dicom.catalogue import catalogue
from core.dicom.series import load_series
from core.phantom import followup as followup_module
from core.phantom.followup import FollowUpOptions, build_follow_up, scaled_nodule, write_follow_up
from core.phantom.nodules import resample_mask
from core.phantom.study import PhantomOptions
from main import main
from tests.nodule_factory import ellipsoid_nodule

SMALL = PhantomOptions(
    seed=4, split="train", nodules=3, size=192, pixel_spacing=1.0, slice_thickness=2.0, noise=0
)
FOLLOW = FollowUpOptions(interval_days=400, current_slice_thickness=2.5)


def four_nodules():
    radii = [(4, 4, 3.5), (3.5, 3, 3), (3, 3, 3), (4, 3.5, 3)]
    return [
        ellipsoid_nodule(f"LIDC-IDRI-0003/scan-1/nodule-{k + 1}", radii_mm=r, spacing=(0.7, 0.7, 1.0))
        for k, r in enumerate(radii)
    ]


@pytest.fixture(scope="module")
def pair():
    return build_follow_up(SMALL, FOLLOW, four_nodules())


def test_a_scaled_nodule_has_the_volume_factor_and_the_same_shape():
    nodule = ellipsoid_nodule(radii_mm=(6, 4, 3), spacing=(0.7, 0.7, 1.0))
    grown = scaled_nodule(nodule, 2.0)
    assert np.array_equal(grown.mask, nodule.mask)  # the readers' voxels, on a larger grid
    assert grown.diameter_mm == pytest.approx(nodule.diameter_mm * 2 ** (1 / 3))
    spacing = (0.5, 0.5, 0.5)
    before, after = (resample_mask(n, spacing).occupancy.sum() for n in (nodule, grown))
    assert after / before == pytest.approx(2.0, rel=0.03)


def test_truth_pairs_new_and_resolved(pair):
    truth = pair.truth
    prior_ids = {p.truth()["id"] for p in pair.prior_nodules}
    current_ids = {p.truth()["id"] for p in pair.current_nodules}
    assert len(prior_ids) == len(current_ids) == 3 and len(truth["pairs"]) == 2
    assert {p["prior_id"] for p in truth["pairs"]} | set(truth["resolved"]) == prior_ids
    assert {p["current_id"] for p in truth["pairs"]} | set(truth["new"]) == current_ids
    assert truth["interval_days"] == 400
    for p in truth["pairs"]:
        assert p["current_volume_mm3"] == pytest.approx(p["prior_volume_mm3"] * p["volume_factor"], rel=1e-4)
        low, high = followup_module.TRENDS[p["trend"]]
        assert low <= p["volume_factor"] <= high
    motion = np.array(truth["prior_to_current"]["matrix"])
    assert np.allclose(motion[:3, :3] @ motion[:3, :3].T, np.eye(3), atol=1e-6)  # rigid
    shift = np.linalg.norm(motion[:3, 3])
    assert 0.5 < shift < 20 and not np.allclose(motion[:3, :3], np.eye(3))


def test_same_seed_same_pair(pair):
    again = build_follow_up(SMALL, FOLLOW, four_nodules())
    assert np.array_equal(again.prior.array, pair.prior.array)
    assert np.array_equal(again.current.array, pair.current.array)
    assert again.truth == pair.truth
    other = build_follow_up(replace(SMALL, seed=5), FOLLOW, four_nodules())
    assert other.truth["prior_to_current"] != pair.truth["prior_to_current"]


def _resampled(prior, current, matrix):
    """The prior seen on the current grid through ``matrix`` (prior -> current)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(prior.array)
    image.SetSpacing(prior.spacing)
    image.SetOrigin(prior.origin)
    back = np.linalg.inv(matrix)
    transform = sitk.AffineTransform(back[:3, :3].ravel().tolist(), back[:3, 3].tolist())
    ref = sitk.Image(current.shape[::-1], sitk.sitkInt16)
    ref.SetSpacing(current.spacing)
    ref.SetOrigin(current.origin)
    return sitk.GetArrayFromImage(sitk.Resample(image, ref, transform, sitk.sitkLinear, -1000.0))


def test_the_current_study_is_the_prior_moved_by_the_truth_motion(pair):
    """The truth's ``prior_to_current`` is the motion in the images: the prior moved by it matches the
    current (away from the changed nodules) far better than the prior left where it was."""
    motion = np.array(pair.truth["prior_to_current"]["matrix"])
    current = pair.current.array.astype(np.float32)
    inside = (current > -900) & (current < -300)  # lung and its edges, not the air around the body
    inside[[0, -1]] = False  # the end slices are extrapolated
    moved = np.abs(_resampled(pair.prior, pair.current, motion) - current)[inside].mean()
    still = np.abs(_resampled(pair.prior, pair.current, np.eye(4)) - current)[inside].mean()
    assert moved < 0.5 * still
    assert pair.current.spacing[2] == pytest.approx(2.5) and pair.prior.spacing[2] == pytest.approx(2.0)


def test_nodules_are_where_the_truth_says_and_the_resolved_one_is_gone(pair):
    by_id = {p.truth()["id"]: p for p in pair.current_nodules}
    for p in pair.current_nodules:
        z, y, x = p.centre_zyx
        assert pair.current.array[z, y, x] > -300, p.truth()["id"]
        assert np.allclose(pair.current.voxel_to_mm(np.array([x, y, z])), p.centre_mm, atol=1.5)
    motion = np.array(pair.truth["prior_to_current"]["matrix"])
    (gone,) = [p for p in pair.prior_nodules if p.truth()["id"] == pair.truth["resolved"][0]]
    where = motion[:3, :3] @ np.array(gone.centre_mm) + motion[:3, 3]
    x, y, z = np.rint(pair.current.mm_to_voxel(where)).astype(int)
    assert pair.current.array[z, y, x] < -500  # lung where the resolved nodule was
    for entry in pair.truth["pairs"]:
        prior_centre = np.array(
            next(p for p in pair.prior_nodules if p.truth()["id"] == entry["prior_id"]).centre_mm
        )
        moved = motion[:3, :3] @ prior_centre + motion[:3, 3]
        assert np.allclose(moved, by_id[entry["current_id"]].centre_mm, atol=1e-6)


def test_written_pair_is_one_patient_two_studies(tmp_path):
    out = write_follow_up(tmp_path / "fu", SMALL, FOLLOW, four_nodules())
    truth = json.loads((out / "ground_truth.json").read_text())
    headers = {}
    for role in ("prior", "current"):
        (series,) = list(catalogue(out / role).all_series())
        headers[role] = pydicom.dcmread(series.files[0], stop_before_pixels=True)
        own = json.loads((out / role / "ground_truth.json").read_text())
        assert own["follow_up"]["role"] == role and own["follow_up"]["pairs"] == truth["pairs"]
        assert len(json.loads((out / role / "markers.json").read_text())["markers"]) == 3
        assert truth[role]["study_uid"] == headers[role].StudyInstanceUID == own["study_uid"]
        volume = load_series(series.files)
        for nodule in own["nodules"]:
            assert volume.contains_mm(np.array(nodule["centre_mm"]))
    prior, current = headers["prior"], headers["current"]
    for keyword in ("PatientID", "PatientName", "PatientBirthDate"):
        assert prior.get(keyword) == current.get(keyword) and str(prior.get(keyword))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert prior.get(keyword) != current.get(keyword)
    days = dt.datetime.strptime(current.StudyDate, "%Y%m%d") - dt.datetime.strptime(prior.StudyDate, "%Y%m%d")
    assert days.days == 400 == truth["interval_days"]
    # the app finds the prior as the current study's default prior: same ID, name and birth date
    from core.followup.priors import CatalogueSource, PatientIdentity, find_priors

    found = find_priors(
        PatientIdentity.of(current),
        current.StudyInstanceUID,
        current.StudyDate,
        [CatalogueSource(catalogue(out))],
    )
    assert found.default is not None and found.default.study.study_uid == prior.StudyInstanceUID
    with pytest.raises(FileExistsError, match="already holds a phantom follow-up"):
        write_follow_up(out, SMALL, FOLLOW, four_nodules())


def test_a_failed_write_leaves_no_half_pair(tmp_path, monkeypatch):
    from core.phantom import study

    real = study.write_ct_series
    calls = []

    def fail_second(volume, folder, identity):
        calls.append(folder)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(volume, folder, identity)

    monkeypatch.setattr(study, "write_ct_series", fail_second)
    with pytest.raises(OSError, match="disk full"):
        write_follow_up(tmp_path / "fu", SMALL, FOLLOW, four_nodules())
    assert len(calls) == 2 and not list((tmp_path / "fu").iterdir())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--interval-days", "0"], "interval days must be 1..3650, not 0"),
        (["--nodules", "1"], "a follow-up needs 2..19 prior nodules"),
        (["--current-slice-thickness", "9"], "current slice thickness must be 0.625-3 mm"),
    ],
)
def test_follow_up_options_out_of_range_are_messages(tmp_path, capsys, extra, message):
    assert main(["phantom", str(tmp_path / "p"), "--follow-up", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "rendering" not in err
    assert not (tmp_path / "p").exists()


def test_follow_up_options_without_follow_up_are_refused(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "p"), "--interval-days", "30"]) == 2
    assert "need --follow-up" in capsys.readouterr().err


def test_phantom_command_writes_a_follow_up(tmp_path, capsys, monkeypatch):
    import core.lidc.table

    pool = [replace(n, nodule_id=n.nodule_id) for n in four_nodules()]
    monkeypatch.setattr(core.lidc.table, "load_nodules", lambda: pool)
    args = ["phantom", str(tmp_path / "fu"), "--follow-up", "--size", "192", "--pixel-spacing", "1.0"]
    args += [
        "--slice-thickness",
        "2",
        "--nodules",
        "3",
        "--seed",
        "4",
        "--interval-days",
        "90",
        "--noise",
        "0",
    ]
    assert main(args) == 0, capsys.readouterr().err
    truth = json.loads((tmp_path / "fu" / "ground_truth.json").read_text())
    assert truth["interval_days"] == 90 and len(truth["pairs"]) == 2
    assert truth["new"] and truth["resolved"]
    assert (tmp_path / "fu" / "prior" / "CT").is_dir() and (tmp_path / "fu" / "current" / "CT").is_dir()


def test_a_nodule_moved_out_of_the_current_scan_is_refused(monkeypatch):
    """A motion that carries a nodule past the scan's end would give a current truth outside its study."""
    real = followup_module.rigid_motion

    def far(seed, options, follow):
        matrix, described = real(seed, options, follow)
        matrix[2, 3] += 60.0  # the small chest's scan is 56 slices of 2 mm
        return matrix, described

    monkeypatch.setattr(followup_module, "rigid_motion", far)
    with pytest.raises(ValueError, match="moved out of the current scan; choose another seed"):
        build_follow_up(SMALL, FOLLOW, four_nodules())
