"""``python main.py compare --dates PRIOR CURRENT``: studies without dates (NIfTI, DICOM without
StudyDate) get the interval and VDT from the option; a missing date is one line naming the study and
saying to pass --dates, before any work; dates given for DICOM that has them win, with a note."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest

from core.followup import compare as compare_module
from main import main


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The phantom follow-up ``test_compare`` uses: DICOM, dated, 400 days apart."""
    from core.phantom.followup import FollowUpOptions, write_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    follow = FollowUpOptions(interval_days=400, current_slice_thickness=2.5)
    return write_follow_up(tmp_path_factory.mktemp("dates") / "fu", SMALL, follow, four_nodules())


def _nifti(fu, tmp_path) -> dict:
    """Both studies as NIfTI files (no dates, no UIDs), same grid as the DICOM."""
    import SimpleITK as sitk

    from core.imaging.open_study import open_study

    paths = {}
    for role in ("prior", "current"):
        volume, _ = open_study(str(fu / role), None)
        image = sitk.GetImageFromArray(volume.array)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(tuple(float(v) for v in volume.direction.ravel()))
        paths[role] = tmp_path / f"{role}.nii.gz"
        sitk.WriteImage(image, str(paths[role]))
    return paths


def _args(prior, current, fu, out, dates=()) -> list[str]:
    args = ["compare", str(prior), str(current), "--out", str(out)]
    args += [
        "--prior-markers",
        str(fu / "prior" / "markers.json"),
        "--markers",
        str(fu / "current" / "markers.json"),
    ]
    return args + (["--dates", *dates] if dates else [])


def _refuse_registration(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("registered although the dates were missing")

    monkeypatch.setattr(compare_module, "register", refuse)


def test_nifti_studies_take_the_interval_from_dates(pair, tmp_path, capsys):
    nifti = _nifti(pair, tmp_path)
    out = tmp_path / "followup.json"
    assert main(_args(nifti["prior"], nifti["current"], pair, out, ("2024-12-28", "20260201"))) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["prior"]["date"] == "2024-12-28" and data["current"]["date"] == "2026-02-01"
    assert data["interval_days"] == 400
    truth = json.loads((pair / "ground_truth.json").read_text())
    assert {(p["prior_id"], p["current_id"]) for p in data["pairs"]} == {
        (p["prior_id"], p["current_id"]) for p in truth["pairs"]
    }
    assert all(p["interval_days"] == 400 for p in data["pairs"])
    assert all((p["vdt_days"] is not None) == (p["trend"] == "growing") for p in data["pairs"])


def test_nifti_without_dates_is_one_line_naming_the_study_before_any_work(
    pair,
    tmp_path,
    capsys,
    monkeypatch,
):
    nifti = _nifti(pair, tmp_path)
    _refuse_registration(monkeypatch)
    out = tmp_path / "followup.json"
    assert main(_args(nifti["prior"], nifti["current"], pair, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {nifti['prior']}: the prior study has no study date")
    assert "pass --dates PRIOR CURRENT" in err[-1] and "Traceback" not in "".join(err)
    assert not out.exists()


def test_dicom_without_study_date_names_that_study(pair, tmp_path, capsys, monkeypatch):
    current = tmp_path / "current"
    shutil.copytree(pair / "current", current)
    for path in current.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        del ds.StudyDate
        ds.save_as(path)
    _refuse_registration(monkeypatch)
    out = tmp_path / "followup.json"
    assert main(_args(pair / "prior", current, pair, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: {current}: the current study has no study date (NIfTI, or DICOM without StudyDate): "
        "pass --dates PRIOR CURRENT (YYYY-MM-DD)"
    )
    assert not out.exists()


def test_dates_given_for_dicom_win_with_a_note(pair, tmp_path, capsys):
    out = tmp_path / "followup.json"
    assert main(_args(pair / "prior", pair / "current", pair, out, ("2025-10-03", "2026-01-01"))) == 0
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["interval_days"] == 90 and data["prior"]["date"] == "2025-10-03"
    assert "note: the prior study's StudyDate differs from --dates: 2025-10-03 is used" in err
    assert "current study's StudyDate differs" not in err  # the same date: nothing to say


@pytest.mark.parametrize("bad", ["2025-13-01", "01/02/2025", "2025-0101"])
def test_a_date_that_is_not_one_is_a_usage_error(pair, tmp_path, capsys, bad):
    out = tmp_path / "followup.json"
    with pytest.raises(SystemExit) as stop:
        main(_args(pair / "prior", pair / "current", pair, out, (bad, "2026-01-01")))
    assert stop.value.code == 2
    assert f"expected a date YYYY-MM-DD or YYYYMMDD, got {bad!r}" in capsys.readouterr().err
    assert not out.exists()
