"""What the loader had to assume about the images reaches every report: a NIfTI voxel size made up
for a NaN pixdim in the JSON, the CSV and the PDF; a slice left out of a DICOM series in the SR.
Anonymised reports keep the warning and withhold the file name it gives as an example."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import SimpleITK as sitk

from core.dicom.series import load_series
from core.imaging.volume_files import load_volume_file
from core.report import sr as srmod
from core.report.anonymise import anonymised, new_salt
from core.report.tables import report_csv_rows, report_from_json, report_json
from tests.core.report.test_pdf import pages_text
from tests.core.report.test_sr import assert_valid
from tests.core.report.test_sr import make_report as make_sr_report
from tests.core.report.test_tables import make_report
from tests.dicom_factory import write_series

PIXDIM = "NIfTI pixdim[3] is nan, not a voxel size: 1 mm used along z"


def nifti_without_slice_spacing(tmp_path):
    image = sitk.GetImageFromArray(np.full((20, 32, 32), -800, np.int16))
    image.SetSpacing((0.7, 0.7, 2.5))
    path = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[:88] + struct.pack("<f", float("nan")) + raw[92:])
    return load_volume_file(path)


def test_a_made_up_voxel_size_is_in_the_json_csv_and_pdf(tmp_path):
    from core.report.pdf import write_pdf

    volume = nifti_without_slice_spacing(tmp_path)
    report = make_report(volume)
    assert [w for w in report.warnings if PIXDIM in w]
    data = report_json(report)
    assert [w for w in data["warnings"] if PIXDIM in w]
    assert report_from_json(data) == report
    assert all(PIXDIM in row["warnings"] for row in report_csv_rows(report))
    path = write_pdf(report, volume, tmp_path / "report.pdf")
    first_page = pages_text(path)[0]
    assert "Image warnings:" in first_page and "pixdim[3] is nan" in first_page


def test_the_sr_carries_the_warning_and_the_anonymised_one_withholds_the_file(tmp_path):
    files = write_series(tmp_path / "ct", 6, shuffle_names=False)
    frame = pydicom.dcmread(files[0]).FrameOfReferenceUID
    for path in files:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame
        if path.name == "0005.dcm":
            del ds.ImagePositionPatient
        ds.save_as(path, enforce_file_format=True)
    report = make_sr_report(load_series(files), 1)
    warning = "1 slice(s) without a position were left out, e.g. 0005.dcm"
    assert report.warnings == (warning,)

    def texts(sr_report) -> list[str]:
        sr = srmod.build_sr(sr_report, [pydicom.dcmread(f) for f in files])
        evaluations = sr.ContentSequence[-1].ContentSequence
        return [item.TextValue for item in evaluations if item.ValueType == "TEXT"]

    assert warning in texts(report)
    hidden = anonymised(report, new_salt())
    assert hidden.warnings == ("1 slice(s) without a position were left out, e.g. (withheld)",)
    assert hidden.warnings[0] in texts(hidden) and "0005" not in " ".join(texts(hidden))
    assert_valid(srmod.write_sr(report, files, tmp_path / "report.dcm"))  # dciodvfy: still a valid SR
