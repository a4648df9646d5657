"""The issue's end to end, headless: find the study on a real Orthanc, retrieve it, analyse it with
``report --send``, and read the SR and the Encapsulated PDF back from Orthanc's REST API unchanged."""

from __future__ import annotations

import io
import json

import pydicom

from core.report.send import PDF_DICOM_NAME
from main import main
from tests.core.cli.test_report import model  # noqa: F401  (the tiny model fixture)

MARKERS = {
    "schema": "mtmr-reader/markers/1",
    "markers": [{"id": "a1", "name": "N1", "center_mm": [0.0, 0.0, 6.0], "diameter_mm": 6.0}],
}


def report_args(study, markers, checkpoint, out, node, *extra):
    return [
        "report", str(study), "--markers", str(markers), "--model", str(checkpoint), "--device", "cpu",
        "--out", str(out), "--send", node, *extra,
    ]  # fmt: skip


def test_find_get_analyse_and_send_back(orthanc, demo, model, tmp_path, capsys):  # noqa: F811
    assert main(["pacs", "find", orthanc.inline, "--patient-id", "PACS-001", "--json"]) == 0
    study_uid = json.loads(capsys.readouterr().out)["studies"][0]["study_uid"]
    assert (
        main(["pacs", "get", orthanc.web_url, study_uid, "--series", demo.ct_series, "--out", str(tmp_path)])
        == 0
    )
    folder = tmp_path / study_uid
    capsys.readouterr()
    markers = tmp_path / "markers.json"
    markers.write_text(json.dumps(MARKERS))
    out = tmp_path / "report"
    code = main(report_args(folder, markers, model, out, orthanc.inline, "--format", "sr,pdf"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = sorted(p.name for p in out.glob("*.dcm"))  # the SR, the PDF's DICOM, the SEG when written
    assert {"report.dcm", PDF_DICOM_NAME} <= set(written)
    assert printed.out.count("sent to ") == printed.out.count("success") == len(written)
    for name in written:
        ours = pydicom.dcmread(out / name)
        stored = pydicom.dcmread(io.BytesIO(orthanc.instance_file(str(ours.SOPInstanceUID))))
        assert stored == ours and stored.StudyInstanceUID == study_uid
    pdf = pydicom.dcmread(out / PDF_DICOM_NAME)
    assert (
        bytes(pdf.EncapsulatedDocument)[: pdf.EncapsulatedDocumentLength] == (out / "report.pdf").read_bytes()
    )


def test_an_unknown_node_stops_before_any_work(demo, model, tmp_path, capsys):  # noqa: F811
    markers = tmp_path / "markers.json"
    markers.write_text(json.dumps(MARKERS))
    out = tmp_path / "report"
    code = main(report_args(demo.ct_files[0].parent, markers, model, out, "nowhere", "--format", "sr"))
    assert code == 2 and "--send: nowhere: not a known node" in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_send_keeps_the_written_files(demo, model, tmp_path, capsys):  # noqa: F811
    markers = tmp_path / "markers.json"
    markers.write_text(json.dumps(MARKERS))
    out = tmp_path / "report"
    code = main(
        report_args(demo.ct_files[0].parent, markers, model, out, "X@127.0.0.1:1", "--format", "sr,pdf")
    )
    printed = capsys.readouterr()
    assert code == 1 and "not sent; they stay in the folder" in printed.err
    assert "Traceback" not in printed.err
    assert {"report.dcm", "report.pdf", PDF_DICOM_NAME} <= {p.name for p in out.iterdir()}
    pydicom.dcmread(out / "report.dcm")
