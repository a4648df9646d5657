"""``python main.py batch``: every marked study under a folder ranked into one CSV, problems skipped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from core.imaging.open_study import open_study
from core.model.checkpoints import save_checkpoint
from core.model.inference import Predictor
from core.model.patches import PatchConfig
from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker, write_markers
from core.nodule.ratings import ATTRIBUTES
from core.reading.session import Session, SessionStore
from main import main
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.dicom_factory import ct_dataset, write_series

NAME, PATIENT_ID = "Doe^Jane", "PID-98765"


def named_series(folder: Path, study_uid: str, series_uid: str, n: int = 6) -> None:
    """A 32 x 32 x n CT series (x -10..14.8, y -12..9.7, z 0..2.5(n-1) mm) of a named patient."""
    for path in write_series(folder, n, study_uid=study_uid, series_uid=series_uid):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID = NAME, PATIENT_ID
        ds.save_as(path, enforce_file_format=True)


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    card = {
        "name": "tiny",
        "version": "t1",
        "trained_on": "test data",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    save_checkpoint(path, MTMRNet(MTMRNetConfig(width=8, input_size=32)), card)
    return path


FILE_MARKERS = [
    NoduleMarker("a1", "N1", (0.0, 0.0, 5.0), 6.0),
    NoduleMarker("a2", "N2", (4.0, -3.0, 7.5), 12.0),
]
SESSION_MARKERS = [
    NoduleMarker("b1", "N1", (2.0, 1.0, 2.5), 4.0),
    NoduleMarker("b2", "N2", (-2.0, 2.0, 10.0), 20.0),
    NoduleMarker("b3", "N3", (6.0, -6.0, 5.0), 9.0),
]


@pytest.fixture
def root(tmp_path):
    """Two good studies (markers.json; saved session), a series that cannot load, a bad markers file,
    a folder of junk and a markers.json with no series."""
    base = tmp_path / "root"
    named_series(base / "alpha" / "CT", "1.2.826.0.1.1", "1.2.826.0.1.1.1")
    write_markers(base / "alpha" / "markers.json", FILE_MARKERS)

    named_series(base / "bravo", "1.2.826.0.1.2", "1.2.826.0.1.2.1")
    labels = {"b2": NoduleLabel(malignancy=4.0, reader="dr. test")}
    SessionStore().save(
        Session("1.2.826.0.1.2", "1.2.826.0.1.2.1", SESSION_MARKERS, labels, source=str(base))
    )

    broken = base / "broken"  # one slice of another size: the series cannot be loaded
    named_series(broken, "1.2.826.0.1.3", "1.2.826.0.1.3.1", n=4)
    odd = ct_dataset(9, "1.2.826.0.1.3.1", "1.2.826.0.1.3", hu=np.full((16, 16), -1000, np.int16))
    odd.save_as(broken / "odd.dcm", enforce_file_format=True)
    write_markers(broken / "markers.json", FILE_MARKERS)

    named_series(base / "charlie", "1.2.826.0.1.4", "1.2.826.0.1.4.1")
    (base / "charlie" / "markers.json").write_text("{not json")

    (base / "junk").mkdir()
    (base / "junk" / "scan.dcm").write_bytes(b"\x00garbage" * 40)
    write_markers(base / "junk" / "markers.json", FILE_MARKERS)
    return base


def batch(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["batch", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_batch_ranks_all_studies_and_reports_what_it_skipped(root, tmp_path, capsys):
    model = tiny_model(tmp_path / "m.safetensors")
    out, out_json = tmp_path / "ranking.csv", tmp_path / "ranking.json"
    code, stdout, stderr = batch(
        capsys,
        str(root),
        "--out",
        str(out),
        "--json",
        str(out_json),
        "--model",
        str(model),
        "--device",
        "cpu",
    )
    assert code == 0, stderr
    assert "Traceback" not in stderr
    text = out.read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == len(FILE_MARKERS) + len(SESSION_MARKERS)

    # ranked by malignancy across studies, and within each study
    probabilities = [float(r["malignancy_probability"]) for r in rows]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert probabilities == sorted(probabilities, reverse=True)
    for study in {r["study"] for r in rows}:
        assert [int(r["rank_in_study"]) for r in rows if r["study"] == study] == list(
            range(1, sum(r["study"] == study for r in rows) + 1)
        )

    # both marker sources, studies numbered in folder order, the session's label carried over
    by_id = {r["marker_id"]: r for r in rows}
    assert {by_id[m.id]["marker_source"] for m in FILE_MARKERS} == {"markers.json"}
    assert {by_id[m.id]["marker_source"] for m in SESSION_MARKERS} == {"session"}
    assert by_id["a1"]["study"] == "1" and by_id["a1"]["study_uid"] == "1.2.826.0.1.1"
    assert by_id["b1"]["study"] == "2" and by_id["b1"]["series_uid"] == "1.2.826.0.1.2.1"
    assert by_id["b2"]["reader_malignancy"] == "4.0" and by_id["b2"]["reader_label"] == "malignant"
    assert by_id["b2"]["label_source"] == "reader" and by_id["b1"]["reader_malignancy"] == ""
    first = by_id["a2"]
    assert first["marker_name"] == "N2" and first["location"].endswith(", slice 4")
    assert (first["center_x_mm"], first["center_y_mm"], first["center_z_mm"], first["diameter_mm"]) == (
        "4.0",
        "-3.0",
        "7.5",
        "12.0",
    )
    assert first["lung_rads"] in ("1", "2", "3", "4A", "4B", "4X") and first["lung_rads_rule"]
    assert (first["model_name"], first["model_version"]) == ("tiny", "t1")
    assert len(first["weights_sha256"]) == 12

    # the numbers are the Predictor's on the same markers
    predictor = Predictor(model, device="cpu")
    for folder, markers in ((root / "alpha", FILE_MARKERS), (root / "bravo", SESSION_MARKERS)):
        volume, _ = open_study(folder)
        for result in predictor.predict(volume, [m.to_inference() for m in markers]):
            row = by_id[result.id]
            assert float(row["malignancy_probability"]) == pytest.approx(result.malignancy, abs=5e-5)
            assert float(row["uncertainty"]) == pytest.approx(result.uncertainty, abs=5e-5)
            assert int(row["rank_in_study"]) == result.rank
            for name in ATTRIBUTES:
                assert float(row[name]) == pytest.approx(result.attributes[name], abs=5e-4)
    assert card_hash(model).startswith(first["weights_sha256"])

    # what was left out is named, with the reason; nothing identifies the patient
    assert f"skipped: {root / 'broken'}: cannot be loaded" in stderr
    assert f"skipped: {root / 'charlie' / 'markers.json'}: cannot be used (not a markers file" in stderr
    assert f"skipped: {root / 'junk'}: 1 file(s) not analysable" in stderr
    assert f"skipped: {root / 'junk' / 'markers.json'}: not used" in stderr
    # the last progress line and the summary count the same skips; each step names its folder
    assert "[################--------] 2/3 studies (2 analysed, 0 skipped): bravo analysed" in stderr
    assert "[########################] 3/3 studies (2 analysed, 1 skipped): broken skipped" in stderr
    summary = "5 nodules from 2 studies (1 skipped while analysing; 3 skipped before analysis, listed above)"
    assert summary in stdout
    document = out_json.read_text()
    for secret in (NAME, "Doe", "Jane", PATIENT_ID, "Test^Patient", "TEST-001"):
        assert secret not in text and secret not in document
    assert [n["marker_id"] for n in json.loads(document)["nodules"]] == [r["marker_id"] for r in rows]


def card_hash(model: Path) -> str:
    from core.model.checkpoints import read_card

    return read_card(model)["weights_sha256"]


def test_batch_with_nothing_analysable_exits_2_and_leaves_the_old_ranking(root, tmp_path, capsys):
    for good in ("alpha", "bravo"):
        for path in sorted((root / good).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    model = tiny_model(tmp_path / "m.safetensors")
    out = tmp_path / "ranking.csv"
    out.write_text("previous ranking\n")
    code, _, stderr = batch(capsys, str(root), "--out", str(out), "--model", str(model), "--device", "cpu")
    assert code == 2
    assert "no study could be analysed" in stderr and "cannot be loaded" in stderr
    assert out.read_text() == "previous ranking\n"

    code, _, stderr = batch(capsys, str(tmp_path / "empty"), "--out", str(out), "--model", str(model))
    assert code == 2 and "not a folder" in stderr
    (tmp_path / "empty").mkdir()
    code, _, stderr = batch(capsys, str(tmp_path / "empty"), "--out", str(out), "--model", str(model))
    assert code == 2 and "no CT series with markers" in stderr and "Traceback" not in stderr


def test_a_markers_file_above_two_studies_is_refused_and_a_session_wins(tmp_path, capsys):
    base = tmp_path / "root"
    named_series(base / "one", "1.2.826.0.2.1", "1.2.826.0.2.1.1")
    named_series(base / "two", "1.2.826.0.2.2", "1.2.826.0.2.2.1")
    write_markers(base / "markers.json", FILE_MARKERS)  # above two studies: whose is it?
    named_series(base / "zulu", "1.2.826.0.2.3", "1.2.826.0.2.3.1")
    write_markers(base / "zulu" / "markers.json", FILE_MARKERS)
    SessionStore().save(Session("1.2.826.0.2.3", "1.2.826.0.2.3.1", SESSION_MARKERS[:1]))
    model = tiny_model(tmp_path / "m.safetensors")
    out = tmp_path / "r.csv"
    code, _, stderr = batch(capsys, str(base), "--out", str(out), "--model", str(model), "--device", "cpu")
    assert code == 0, stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["marker_id"], r["marker_source"], r["study"]) for r in rows] == [("b1", "session", "1")]
    assert f"skipped: {base / 'markers.json'}: shared by 2 studies" in stderr
    assert f"note: {base / 'zulu' / 'markers.json'}: not used" in stderr
