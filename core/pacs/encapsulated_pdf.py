"""The PDF report as a DICOM Encapsulated PDF (PS3.3 A.45.1), so a PACS can keep it beside the study.

Patient and study attributes are copied from a data set of the same study (the report's SR, or one of
its CT images), so every viewer files the PDF under the right study; the PDF bytes are kept as they
are (``EncapsulatedDocument``, padded to an even length as DICOM asks, with the true length in
``EncapsulatedDocumentLength``). Written with pydicom; ``dciodvfy`` finds no error in it.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from core.util.atomic import atomic_write_bytes

PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
SERIES_NUMBER = 9901  # apart from the scanner's series and the SR's


def encapsulated_pdf(pdf: bytes, study: Dataset, title: str = "Lung nodule report") -> Dataset:
    """An Encapsulated PDF data set holding ``pdf``, filed in the study of ``study``."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("not a PDF document (it does not start with %PDF-)")
    now = datetime.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in PATIENT_STUDY:
        ds.__setattr__(keyword, study.get(keyword, "") or "")
    if not ds.StudyInstanceUID:
        raise ValueError("the study data set has no StudyInstanceUID")
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = title[:64]
    ds.Manufacturer = "MTMR Reader"
    ds.ConversionType = "WSD"  # workstation
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"  # the report names the patient
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def pdf_bytes(ds: Dataset) -> bytes:
    """The PDF held in an Encapsulated PDF data set, without DICOM's padding byte."""
    data = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    return data[: int(length)] if length is not None else data


def write_encapsulated_pdf(
    pdf_path: Path, study: Dataset, out: Path, title: str = "Lung nodule report"
) -> Path:
    """Wrap the PDF file ``pdf_path`` and write it to ``out`` atomically."""
    ds = encapsulated_pdf(Path(pdf_path).read_bytes(), study, title)
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    atomic_write_bytes(out, buffer.getvalue())
    return Path(out)
