"""``python main.py report`` on a small synthetic DICOM series full of PHI-like values: the formats it
writes, refusing to overwrite, a failing format that leaves the others, exit codes, nothing
identifying printed, and anonymised files."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import subprocess

import pydicom
import pytest

import core.report.export as export
import core.report.tables as tables
from main import main
from tests.core.report.test_pdf import pages_text
from tests.core.report.test_pdf_follow_up import images_per_page
from tests.dicom_factory import write_series

PHI = ("Quackenbush^Ermintrude", "MRN-77340912", "19411123", "Ravensworth Clinic", "Quackenbush Thorax")
FILES = {"sr": "report.dcm", "pdf": "report.pdf", "csv": "ranking.csv", "json": "report.json"}


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from core.model.checkpoints import save_checkpoint
    from core.model.patches import PatchConfig
    from models.mtmr import MTMRNet, MTMRNetConfig

    torch.manual_seed(0)
    card = {
        "name": "tiny",
        "version": "t1",
        "trained_on": "test data",
        "intended_use": "tests",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_checkpoint(path, MTMRNet(MTMRNetConfig(width=8, input_size=32)), card)
    return path


@pytest.fixture
def study(tmp_path):
    """Six 32x32 slices (x -10..11.7, y -12..12.8, z 0..12.5 mm) whose headers name a patient."""
    folder = tmp_path / "study"
    paths = write_series(folder, 6)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI[0], PHI[1], PHI[2]
        ds.InstitutionName, ds.StudyDescription = PHI[3], PHI[4]
        ds.ReferringPhysicianName = "Fotheringay^Zebedee"
        ds.AccessionNumber = "ACC5550123"
        ds.save_as(path)
    markers = {
        "schema": "mtmr-reader/markers/1",
        "markers": [
            {"id": "a1", "name": "N1", "center_mm": [0.0, 0.0, 6.0], "diameter_mm": 6.0},
            {"id": "b2", "name": "N2", "center_mm": [3.0, 2.0, 5.0], "diameter_mm": 9.0},
        ],
    }
    (tmp_path / "markers.json").write_text(json.dumps(markers))
    return folder, tmp_path / "markers.json", pydicom.dcmread(paths[0])


def save_masks(study, *marker_ids: str) -> None:
    """A saved session holding a small mask made at each named marker of ``study`` (the 32x32 series
    holds no lungs, so the segmenter itself finds nothing there)."""
    import numpy as np

    from core.dicom.series import load_series
    from core.measure.mask import NoduleMask
    from core.reading.session import Session, SessionStore
    from core.reading.session_key import session_key

    volume = load_series(sorted(study[0].iterdir()))
    markers = {m["id"]: m for m in json.loads(study[1].read_text())["markers"]}
    box = np.ones((2, 3, 3), bool)
    masks = {
        i: NoduleMask((1, 10 + 5 * n, 10), box, "t", markers[i]["center_mm"], markers[i]["diameter_mm"])
        for n, i in enumerate(marker_ids)
    }
    SessionStore().save(Session(*session_key(volume), masks=masks))


def report(study, model, out, *extra: str) -> list[str]:
    folder, markers, _ = study
    return [
        "report", str(folder), "--markers", str(markers), "--model", str(model), "--device", "cpu",
        "--out", str(out), *extra,
    ]  # fmt: skip


def no_phi(text: str) -> bool:
    words = [*PHI, "Quackenbush", "Ermintrude", "77340912", "Fotheringay", "ACC5550123", "Ravensworth"]
    return not any(word.lower() in text.lower() for word in words)


def test_csv_and_json_written_with_nothing_identifying_printed(study, model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(report(study, model, out, "--format", "csv,json", "--reader", "Dr Who"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert sorted(p.name for p in out.iterdir()) == ["ranking.csv", "report.json"]  # no temporary files
    assert "report: loading" in printed.err and f"report: writing csv, json into {out} ..." in printed.err
    assert f"wrote {out / 'ranking.csv'}" in printed.out and f"wrote {out / 'report.json'}" in printed.out
    assert re.search(r"^1\. N[12]: malignancy 0\.\d\d \+/- 0\.\d\d", printed.out, re.MULTILINE)
    assert no_phi(printed.out + printed.err)
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == "mtmr-reader/report/1" and data["model"]["name"] == "tiny"
    assert data["model"]["trained_on"] == "test data" and data["reader"]["name"] == "Dr Who"
    assert data["study"]["series_uid"] == study[2].SeriesInstanceUID
    assert data["patient"]["id"] == "MRN-77340912"  # not anonymised: the report names the patient
    assert sorted(n["rank"] for n in data["nodules"]) == [1, 2]
    assert all(len(n["attributes"]) == 8 and n["location"] for n in data["nodules"])
    with (out / "ranking.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert {r["marker_name"] for r in rows} == {"N1", "N2"}
    assert no_phi((out / "ranking.csv").read_text())


def test_anonymised_files_hold_no_phi(study, model, tmp_path, capsys):
    out = tmp_path / "anon"
    code = main(report(study, model, out, "--format", "csv,json", "--anonymise", "--reader", "Dr Who"))
    assert code == 0, capsys.readouterr().err
    for name in ("ranking.csv", "report.json"):
        text = (out / name).read_text()
        assert no_phi(text), name
        assert study[2].StudyInstanceUID not in text and study[2].SeriesInstanceUID not in text
    data = json.loads((out / "report.json").read_text())
    assert data["anonymised"] is True and data["reader"]["name"] == ""
    assert data["study"]["study_uid"].startswith("2.25.")
    assert {n["tracking_uid"][:5] for n in data["nodules"]} == {"2.25."}


def test_the_sessions_reader_edited_mask_is_measured_and_the_other_marker_segmented(
    study, model, tmp_path, capsys
):
    import numpy as np

    from core.measure.mask import NoduleMask
    from core.reading.session import Session, SessionStore

    ds = study[2]
    edited = NoduleMask((2, 17, 12), np.ones((1, 1, 2), bool), "edited", (0.0, 0.0, 6.0), 6.0, edited=True)
    SessionStore().save(Session(ds.StudyInstanceUID, ds.SeriesInstanceUID, masks={"a1": edited}))
    out = tmp_path / "out"
    assert main(report(study, model, out, "--format", "json")) == 0, capsys.readouterr().err
    nodules = {n["marker"]["id"]: n for n in json.loads((out / "report.json").read_text())["nodules"]}
    assert nodules["a1"]["measurement"]["edited"] is True
    assert nodules["a1"]["measurement"]["volume_mm3"] == pytest.approx(2 * 0.7 * 0.8 * 2.5)
    assert nodules["b2"]["measurement"] is not None or nodules["b2"]["measurement_error"]
    assert nodules["b2"]["measurement"] is None or nodules["b2"]["measurement"]["edited"] is False


def test_never_overwrites_without_asking(study, model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("keep me")
    code = main(report(study, model, out, "--format", "csv,json"))
    printed = capsys.readouterr()
    assert code == 2 and "report.json" in printed.err and "--overwrite" in printed.err
    assert (out / "report.json").read_text() == "keep me" and not (out / "ranking.csv").exists()
    assert main(report(study, model, out, "--format", "csv,json", "--overwrite")) == 0
    assert json.loads((out / "report.json").read_text())["schema"] == "mtmr-reader/report/1"


def test_a_failing_format_leaves_the_others(study, model, tmp_path, capsys, monkeypatch):
    def broken(report, path):
        raise RuntimeError(f"disk on fire while writing {report.patient['name']}")

    monkeypatch.setattr(tables, "write_json", broken)
    out = tmp_path / "out"
    code = main(report(study, model, out, "--format", "json,csv"))
    printed = capsys.readouterr()
    assert code == 1
    assert "JSON not written (report.json): RuntimeError: disk on fire" in printed.err
    assert no_phi(printed.out + printed.err)  # the patient's name in the message is scrubbed
    assert (out / "ranking.csv").is_file() and not (out / "report.json").exists()
    assert [p.name for p in out.iterdir()] == ["ranking.csv"]


def test_unavailable_formats_are_named_and_the_rest_written(study, model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        export, "unavailable", lambda fmt: "not available in this installation" if fmt == "sr" else ""
    )
    monkeypatch.setattr(export, "WRITE_ORDER", ("csv", "json", "sr"))  # leave the PDF out of it
    out = tmp_path / "out"
    code = main(report(study, model, out, "--format", "sr,csv,json"))
    printed = capsys.readouterr()
    assert code == 1
    assert "DICOM SR not written (report.dcm): not available in this installation" in printed.err
    assert sorted(p.name for p in out.iterdir()) == ["ranking.csv", "report.json"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--format", "csv,docx"), "unknown format docx"),
        (("--format", "csv", "--series", "1.2.3.999"), "no series with UID 1.2.3.999"),
    ],
)
def test_bad_arguments_exit_2(study, model, tmp_path, capsys, extra, message):
    assert main(report(study, model, tmp_path / "out", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_markers_outside_or_unreadable_exit_2(study, model, tmp_path, capsys):
    markers = study[1]
    markers.write_text(json.dumps({"markers": [{"id": "x", "center_mm": [0, 0, 500.0], "diameter_mm": 5}]}))
    assert main(report(study, model, tmp_path / "out", "--format", "csv")) == 2
    assert "outside the series" in capsys.readouterr().err
    markers.write_text("{not json")
    assert main(report(study, model, tmp_path / "out", "--format", "csv")) == 2
    assert "not a markers file" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(report(study, model, tmp_path / "file", "--format", "csv")) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.skipif(
    not (has_module("core.report.sr") and has_module("core.report.pdf")), reason="SR/PDF writers not present"
)
def test_all_four_formats_anonymised(study, model, tmp_path, capsys):
    # this 32x32 series holds no lungs, so the segmenter finds nothing: N1 gets a saved mask (its SEG
    # segment must be anonymised too), N2 none (named with its reason, kept planar)
    save_masks(study, "a1")
    out = tmp_path / "all"
    code = main(report(study, model, out, "--anonymise"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "N1 not measured" not in printed.err and "N2 not measured" in printed.err
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES.values(), "report-seg.dcm"])
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    data = json.loads((out / "report.json").read_text())
    sr = pydicom.dcmread(out / "report.dcm")
    assert sr.StudyInstanceUID == data["study"]["study_uid"]
    raw = (out / "report.dcm").read_bytes().decode("latin-1")
    assert no_phi(raw) and study[2].StudyInstanceUID not in raw and study[2].SOPInstanceUID not in raw
    raw = (out / "report-seg.dcm").read_bytes().decode("latin-1")  # the nodules segmented by the report
    assert no_phi(raw) and study[2].StudyInstanceUID not in raw and study[2].SOPInstanceUID not in raw
    assert no_phi(printed.out + printed.err)
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(out / "report.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Probability" in text or "malignancy" in text.lower()
        assert no_phi(text) and study[2].StudyInstanceUID not in text


def test_saved_masks_that_fit_their_markers_are_written_as_a_seg(study, model, tmp_path, capsys):
    """The series' saved session holds a mask for N1 (made at its marker) and a stale one for N2 (made
    before the reader resized it): the SEG holds N1's saved mask, never N2's stale one, and the SR
    references it with N1's measured volume."""
    import highdicom as hd
    import numpy as np

    from core.dicom.series import load_series
    from core.measure.mask import NoduleMask
    from core.reading.session import Session, SessionStore
    from core.reading.session_key import session_key
    from core.report.sr_codes import VOLUME

    folder, _, _ = study
    volume = load_series(sorted(folder.iterdir()))
    fitting = NoduleMask((1, 10, 10), np.ones((2, 3, 3), bool), "classical/test", (0.0, 0.0, 6.0), 6.0)
    stale = NoduleMask((2, 20, 20), np.ones((2, 2, 2), bool), "classical/test", (3.0, 2.0, 5.0), 7.0)
    SessionStore().save(Session(*session_key(volume), masks={"a1": fitting, "b2": stale}))
    out = tmp_path / "out"
    main(report(study, model, out, "--format", "sr"))
    captured = capsys.readouterr()
    assert no_phi(captured.out + captured.err)
    seg = hd.seg.segread(out / "report-seg.dcm")
    labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    uids = [
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        for f in sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    ]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=sorted(labels)).astype(bool)
    by_label = {label: pixels[..., number - 1] for number, label in labels.items()}
    assert np.array_equal(by_label["N1"], fitting.in_volume(volume.array.shape))
    assert "N2" not in by_label or not np.array_equal(by_label["N2"], stale.in_volume(volume.array.shape))
    content = hd.sr.srread(out / "report.dcm").content
    groups = {g.tracking_identifier: g for g in content.get_volumetric_roi_measurement_groups()}
    (n1_volume,) = groups["N1"].get_measurements(name=VOLUME)
    # partial-volume corrected (core.measure.axes): the 18 voxels' count within a few %
    assert n1_volume.value == pytest.approx(18 * float(np.prod(volume.spacing)), rel=0.02)


def test_a_marker_that_cannot_be_measured_is_noted_and_the_report_written(study, model, tmp_path, capsys):
    """A marker on air cannot be segmented: the report says so on stderr, keeps that nodule's marker
    diameter (a planar SR group, no segment) and writes everything else."""
    import highdicom as hd

    _, markers_path, _ = study
    markers = json.loads(markers_path.read_text())
    markers["markers"].append({"id": "c3", "name": "N3", "center_mm": [-9.0, -11.0, 6.0], "diameter_mm": 5.0})
    markers_path.write_text(json.dumps(markers))
    save_masks(study, "a1", "b2")
    out = tmp_path / "out"
    assert main(report(study, model, out, "--format", "sr")) == 0
    err = capsys.readouterr().err
    assert re.search(r"note: N3 not measured: .+", err) and no_phi(err)
    seg = hd.seg.segread(out / "report-seg.dcm")
    assert "N3" not in {s.SegmentLabel for s in seg.SegmentSequence}
    content = hd.sr.srread(out / "report.dcm").content
    assert [g.tracking_identifier for g in content.get_planar_roi_measurement_groups()] == ["N3"]


def test_a_saved_follow_up_reading_gives_the_tables_prior_size_change_and_vdt(study, model, tmp_path, capsys):
    """The series' session holds a follow-up reading (as ``compare`` or the viewer saves it) pairing N1
    with a prior nodule and calling N2 new: the CSV and JSON carry it, the PDF N1's prior and current
    key images (the prior loaded from where its session says it was opened) with their dates."""
    import csv
    import datetime as dt

    import numpy as np

    from core.dicom.series import load_series
    from core.followup.compare import FollowUp, NewNodule, PairedNodule, StudyInfo
    from core.followup.growth import TimePoint, growth
    from core.followup.register import Registration
    from core.reading.session import Session, SessionStore
    from core.reading.session_key import session_key

    folder, _, _ = study
    volume = load_series(sorted(folder.iterdir()))
    before, now = dt.date(2025, 1, 1), dt.date(2026, 1, 1)
    pair = PairedNodule(
        "p1",
        "a1",
        "2.25.1",
        0.5,
        False,
        growth(TimePoint(before, 5.0, 65.0), TimePoint(now, 6.0, 130.0)),
        None,
    )
    reading = FollowUp(
        StudyInfo("1.2.9", "1.2.9.1", before), StudyInfo(*session_key(volume), now),
        Registration(np.eye(4), 0.5, 2.0), (pair,), (NewNodule("b2", "2.25.2", None, None),), (), {}, "1", "",
        "continue annual screening",
    )  # fmt: skip
    SessionStore().save(Session(*session_key(volume), follow_up=reading.to_dict()))
    prior_files = write_series(tmp_path / "prior", 3, study_uid="1.2.9", series_uid="1.2.9.1")
    SessionStore().save(Session("1.2.9", "1.2.9.1", source=str(tmp_path / "prior")))  # where it was opened
    out = tmp_path / "out"
    assert main(report(study, model, out, "--format", "csv,json,sr,pdf")) == 0
    captured = capsys.readouterr()
    assert "1 nodule(s) paired with a prior, 1 new" in captured.err and no_phi(captured.out + captured.err)
    assert "prior key images" not in captured.err
    comparison = pages_text(out / "report.pdf")[1]
    assert (
        "N1 (prior p1)" in comparison
        and "Prior 2025-01-01" in comparison
        and "Current 2026-01-01" in comparison
    )
    assert images_per_page(out / "report.pdf")[2] == 2
    rows = {r["marker_name"]: r for r in csv.DictReader((out / "ranking.csv").open())}
    assert rows["N1"]["follow_up_status"] == "growing" and rows["N1"]["prior_volume_mm3"] == "65.0"
    assert rows["N1"]["vdt_days"] == "365.0" and rows["N1"]["volume_change_percent"] == "100.0"
    assert rows["N2"]["follow_up_status"] == "new" and rows["N2"]["prior_marker_id"] == ""
    nodules = {n["marker"]["name"]: n for n in json.loads((out / "report.json").read_text())["nodules"]}
    assert nodules["N1"]["tracking_uid"] == "2.25.1" and nodules["N1"]["prior"]["prior_id"] == "p1"
    (other,) = pydicom.dcmread(out / "report.dcm").PertinentOtherEvidenceSequence  # the prior study
    assert other.StudyInstanceUID == "1.2.9"
    assert {
        i.ReferencedSOPInstanceUID for s in other.ReferencedSeriesSequence for i in s.ReferencedSOPSequence
    } == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in prior_files}


def test_a_prior_study_that_cannot_be_found_is_a_note_and_the_sr_is_written(study, model, tmp_path, capsys):
    import datetime as dt

    import numpy as np

    from core.dicom.series import load_series
    from core.followup.compare import FollowUp, NewNodule, PairedNodule, StudyInfo
    from core.followup.register import Registration
    from core.reading.session import Session, SessionStore
    from core.reading.session_key import session_key

    folder, _, _ = study
    volume = load_series(sorted(folder.iterdir()))
    day = dt.date(2026, 1, 1)
    new = (NewNodule("a1", "2.25.2", None, None),)
    pair = (PairedNodule("p1", "b2", "2.25.1", 0.5, False, None, None, "prior marker p1 not measured: air"),)
    reading = FollowUp(
        StudyInfo("1.2.9", "1.2.9.1", day.replace(year=2025)), StudyInfo(*session_key(volume), day),
        Registration(np.eye(4), 0.5, 2.0), pair, new, (), {}, "1", "", "continue annual screening",
    )  # fmt: skip
    SessionStore().save(Session(*session_key(volume), follow_up=reading.to_dict()))
    SessionStore().save(Session("1.2.9", "1.2.9.1", source=str(tmp_path / "gone")))  # moved away since
    out = tmp_path / "out"
    assert main(report(study, model, out, "--format", "sr,pdf")) == 0
    err = capsys.readouterr().err
    assert "the prior study's files were not found" in err
    assert "the prior study's images were not found: the PDF has no prior key images" in err
    assert "PertinentOtherEvidenceSequence" not in pydicom.dcmread(out / "report.dcm")
    assert "Comparison with the prior study" in pages_text(out / "report.pdf")[1]
    assert images_per_page(out / "report.pdf").get(2, 0) == 0  # no prior images: none drawn
