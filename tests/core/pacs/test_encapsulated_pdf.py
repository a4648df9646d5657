"""The PDF report as an Encapsulated PDF: dciodvfy finds no error, the PDF comes back byte for byte,
it is filed in the study it reports on, and what is not a PDF is refused."""

from __future__ import annotations

import subprocess

import pydicom
import pytest
from pydicom.dataset import Dataset

from core.pacs.encapsulated_pdf import encapsulated_pdf, pdf_bytes, write_encapsulated_pdf

PDF = b"%PDF-1.4\n% a tiny document\n%%EOF\n"


def study() -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Müller^Zoë", "P-7", "19500101", "F"
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "101500", "7", "A-1"
    ds.ReferringPhysicianName = ""
    return ds


def test_dciodvfy_finds_no_error_and_the_pdf_comes_back(tool, tmp_path):
    (tmp_path / "r.pdf").write_bytes(PDF)
    source = study()
    path = write_encapsulated_pdf(tmp_path / "r.pdf", source, tmp_path / "r.dcm")
    checked = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    lines = (checked.stdout + checked.stderr).splitlines()
    assert [x for x in lines if x.startswith("Error")] == []
    assert "EncapsulatedPDF" in checked.stdout + checked.stderr
    ds = pydicom.dcmread(path)
    assert pdf_bytes(ds) == PDF and len(ds.EncapsulatedDocument) % 2 == 0
    assert (ds.StudyInstanceUID, ds.PatientName) == (source.StudyInstanceUID, "Müller^Zoë")
    assert ds.SeriesInstanceUID != source.get("SeriesInstanceUID") and ds.Modality == "DOC"


def test_what_is_not_a_pdf_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="not a PDF"):
        encapsulated_pdf(b"<html>", study())
    (tmp_path / "r.pdf").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PDF"):
        write_encapsulated_pdf(tmp_path / "r.pdf", study(), tmp_path / "r.dcm")
    assert not (tmp_path / "r.dcm").exists()
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        encapsulated_pdf(PDF, Dataset())
