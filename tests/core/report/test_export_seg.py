"""The export writes the DICOM SEG beside the SR (report-seg.dcm) when any nodule has a mask, and the
SR's volumetric groups reference it; a SEG that cannot be written is reported and the SR keeps its
planar groups."""

from __future__ import annotations

import highdicom as hd
import pydicom

from core.report.export import SEG_FILE, existing, write_report
from tests.core.report.test_sr import make_report
from tests.core.report.test_sr_volumetric import measured_report


def groups(path):
    sr = hd.sr.srread(path)
    return sr.content.get_volumetric_roi_measurement_groups(), sr.content.get_planar_roi_measurement_groups()


def test_the_seg_is_written_beside_the_sr_and_referenced(series, tmp_path):
    files, volume = series
    done = write_report(measured_report(volume), tmp_path, ["sr"], volume=volume, source_files=files)
    assert [(o.format, o.path.name, o.error) for o in done.outcomes] == [
        ("seg", SEG_FILE, ""),
        ("sr", "report.dcm", ""),
    ]
    seg = pydicom.dcmread(tmp_path / SEG_FILE)
    volumetric, planar = groups(tmp_path / "report.dcm")
    assert len(volumetric) == 3 and len(planar) == 1  # N1-N3 have masks, N4 has none
    for group in volumetric:
        reference = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-seg.dcm", "report.dcm"]  # no temporaries
    assert existing(tmp_path, ["sr"]) == [tmp_path / "report.dcm", tmp_path / SEG_FILE]


def test_no_mask_no_seg(series, tmp_path):
    files, volume = series
    done = write_report(make_report(volume, 2), tmp_path, ["sr"], volume=volume, source_files=files)
    assert [o.format for o in done.outcomes] == ["sr"] and not (tmp_path / SEG_FILE).exists()
    assert groups(tmp_path / "report.dcm")[0] == []


def test_a_seg_not_written_leaves_the_sr_planar(series, tmp_path):
    files, volume = series
    report = measured_report(volume)
    done = write_report(report, tmp_path, ["sr"], source_files=files)  # no volume: masks cannot be placed
    outcome = {o.format: o for o in done.outcomes}
    assert outcome["seg"].error == "needs the study's images" and outcome["sr"].written
    assert outcome["seg"].text == f"DICOM SEG not written ({SEG_FILE}): needs the study's images"
    assert groups(tmp_path / "report.dcm")[0] == [] and not (tmp_path / SEG_FILE).exists()

    (tmp_path / "report.dcm").unlink()
    (tmp_path / SEG_FILE).write_bytes(b"old")  # a SEG already there is kept, and not referenced
    done = write_report(report, tmp_path, ["sr"], volume=volume, source_files=files, overwrite=False)
    assert {o.format: o.error for o in done.outcomes}["seg"] == "the file exists and was not overwritten"
    assert (tmp_path / SEG_FILE).read_bytes() == b"old" and groups(tmp_path / "report.dcm")[0] == []
    done = write_report(report, tmp_path, ["sr"], volume=volume, source_files=files, overwrite=True)
    assert all(o.written for o in done.outcomes) and len(groups(tmp_path / "report.dcm")[0]) == 3


def test_anonymised_export_seg_and_sr_agree_and_name_nobody(series, tmp_path):
    files, volume = series
    report = measured_report(volume)
    done = write_report(report, tmp_path, ["sr"], volume=volume, source_files=files, anonymise=True)
    assert all(o.written for o in done.outcomes)
    data = (tmp_path / SEG_FILE).read_bytes()
    secrets = {"Test^Patient", "TEST-001", report.study["study_uid"], report.study["series_uid"]}
    secrets |= {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert [s for s in secrets if s.encode() in data] == []
    seg = pydicom.dcmread(tmp_path / SEG_FILE)
    sr = hd.sr.srread(tmp_path / "report.dcm")
    evidence = {e[2] for e in sr.get_evidence()}
    sources = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert sources and sources <= evidence and seg.SOPInstanceUID in evidence
    assert seg.PatientIdentityRemoved == "YES" and seg.StudyInstanceUID == sr.StudyInstanceUID
