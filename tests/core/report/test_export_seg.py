"""The export writes the DICOM SEG beside the SR (report-seg.dcm) when any nodule has a mask, and the
SR's volumetric groups reference it; a SEG that cannot be written is reported and the SR keeps its
planar groups."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from core.dicom.series import load_series
from core.measure.mask import NoduleMask
from core.report.content import build_report
from core.report.export import SEG_FILE, existing, write_report
from core.report.sr_codes import VOLUME
from tests.core.report.test_seg import slice_uids
from tests.core.report.test_sr import dciodvfy, make_report
from tests.core.report.test_sr_volumetric import measured_report, measurement


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


def test_a_phantom_segmented_from_its_markers_round_trips(tmp_path):
    """End to end on a small rendered study: markers -> segment_nodule -> report -> SEG + SR; the SEG
    reads back (highdicom, by CT instance) equal to the masks, the SR's volumes to the record's, and
    both validate."""
    from core.measure.segment import segment_nodule
    from core.nodule.markers import read_markers
    from core.phantom.study import PhantomOptions, write_phantom
    from tests.nodule_factory import ellipsoid_nodule

    options = PhantomOptions(
        seed=5, split="train", nodules=2, size=160, pixel_spacing=1.0, slice_thickness=2.5
    )
    nodules = [
        ellipsoid_nodule("LIDC-IDRI-0003/scan-1/nodule-1", radii_mm=(5, 4, 4)),
        ellipsoid_nodule("LIDC-IDRI-0007/scan-1/nodule-2", radii_mm=(4, 4, 3)),
    ]
    study = write_phantom(tmp_path / "study", options, nodules)
    files = sorted((study / "CT").iterdir())
    volume = load_series(files)
    markers = read_markers(study / "markers.json")
    masks = {m.id: segment_nodule(volume, m.centre_mm, m.diameter_mm) for m in markers}
    voxel_mm3 = float(np.prod(volume.spacing))
    sizes = {k: measurement("solid", None, volume_mm3=mask.voxels * voxel_mm3) for k, mask in masks.items()}
    report = build_report(volume, markers, {}, {}, {}, masks=masks, measurements=sizes)
    out = tmp_path / "out"
    out.mkdir()
    done = write_report(report, out, ["sr"], volume=volume, source_files=files)
    assert [o.error for o in done.outcomes] == ["", ""]

    seg = hd.seg.segread(out / SEG_FILE)
    by_slice = slice_uids(files, volume)
    uids = [by_slice[k] for k in range(volume.array.shape[0])]
    numbers = {item.TrackingUID: int(item.SegmentNumber) for item in seg.SegmentSequence}
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=sorted(numbers.values()))
    volumetric, _ = groups(out / "report.dcm")
    volumes = {str(g.tracking_uid): g.get_measurements(name=VOLUME)[0].value for g in volumetric}
    for nodule in report.nodules:
        number = numbers[nodule.tracking_uid]
        assert np.array_equal(pixels[..., number - 1].astype(bool), nodule.mask.in_volume(volume.array.shape))
        assert volumes[nodule.tracking_uid] == pytest.approx(nodule.measurement.volume_mm3, abs=0.01)
    assert dciodvfy(out / SEG_FILE)[0] == [] and dciodvfy(out / "report.dcm")[0] == []


def test_masks_with_no_voxels_write_no_seg_and_no_error(series, tmp_path):
    """A mask the reader erased to nothing is no mask: no SEG, no failed outcome, a planar SR."""
    files, volume = series
    empty = NoduleMask((1, 1, 1), np.zeros((2, 2, 2), dtype=bool), "edited", edited=True)
    report = measured_report(volume, 2, masks={"N1": empty})
    done = write_report(report, tmp_path, ["sr"], volume=volume, source_files=files)
    assert [(o.format, o.error) for o in done.outcomes] == [("sr", "")]
    assert not (tmp_path / SEG_FILE).exists() and groups(tmp_path / "report.dcm")[0] == []


def test_a_failing_sr_leaves_the_previous_sr_and_seg(series, tmp_path, monkeypatch):
    """The SEG is staged and moved into place only with its SR: an SR that fails must not leave a new
    SEG beside the old SR (which references the old one)."""
    import core.report.sr as srmod

    files, volume = series
    (tmp_path / "report.dcm").write_bytes(b"old sr")
    (tmp_path / SEG_FILE).write_bytes(b"old seg")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(srmod, "write_sr", broken)
    report = measured_report(volume)
    done = write_report(report, tmp_path, ["sr"], volume=volume, source_files=files, overwrite=True)
    assert [(o.format, o.error) for o in done.outcomes] == [
        ("seg", "not written: the DICOM SR it belongs to failed"),
        ("sr", "RuntimeError: disk on fire"),
    ]
    assert (tmp_path / "report.dcm").read_bytes() == b"old sr"
    assert (tmp_path / SEG_FILE).read_bytes() == b"old seg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-seg.dcm", "report.dcm"]  # no temporaries
