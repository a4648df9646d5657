"""The SR's volumetric groups (TID 1411) for segmented nodules: each references its segment in the SEG
written with it and carries the mask's volume, axes, mean and solid diameter; highdicom reads the
values back, dciodvfy finds no errors; nodules without a segment keep their planar group."""

from __future__ import annotations

from dataclasses import replace

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes

from core.measure.measurement import NoduleMeasurement
from core.report import sr as srmod
from core.report.anonymise import anonymised, new_salt, remap_uid
from core.report.seg import build_seg
from core.report.sr_codes import LONG_AXIS, METHOD_MASK, SHORT_AXIS, SOLID_DIAMETER, VOLUME
from core.report.sr_evidence import UidMap
from tests.core.report.test_seg import MASKS, with_masks
from tests.core.report.test_sr import assert_valid, make_report


def measurement(texture="part-solid", solid=3.4, **changes) -> NoduleMeasurement:
    values = dict(
        volume_mm3=123.456, effective_diameter_mm=6.2, long_axis_mm=7.3, short_axis_mm=5.1,
        mean_diameter_mm=6.2, plane="axial", slice_index=2, long_axis_ends_mm=((0, 0, 0), (7.3, 0, 0)),
        short_axis_ends_mm=((0, 0, 0), (0, 5.1, 0)), texture=texture, solid_diameter_mm=solid,
        solid_volume_mm3=20.0, mean_hu=-300.0, max_hu=50.0, calcification_fraction=0.0,
        touches_pleura=False, method="classical/threshold",
    )  # fmt: skip
    return NoduleMeasurement(**(values | changes))


MEASURED = {"N1": measurement(), "N2": measurement("solid", None, volume_mm3=33.5, long_axis_mm=4.0)}


def measured_report(volume, n=4, masks=MASKS, measurements=MEASURED):
    report = with_masks(make_report(volume, n), masks)
    nodules = tuple(replace(x, measurement=measurements.get(x.marker.name)) for x in report.nodules)
    return replace(report, nodules=nodules)


def sr_with_seg(report, files, volume, path):
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    uids = UidMap(report)
    seg = build_seg(report, volume, datasets, uids=uids)
    sr = srmod.build_sr(report, datasets, seg=seg, uids=uids)
    pydicom.dcmwrite(path, sr, enforce_file_format=True)
    return seg, path


def mask_values(group) -> dict[str, float]:
    out = {}
    for m in group.get_measurements():
        if m.method is not None and m.method.value == METHOD_MASK.value:
            out[m.name.meaning] = (m.value, m.unit.value)
    return out


@pytest.fixture(scope="module")
def built(series, tmp_path_factory):
    files, volume = series
    report = measured_report(volume)  # N1 part-solid, N2 solid, N3 a mask without measurement, N4 none
    seg, path = sr_with_seg(report, files, volume, tmp_path_factory.mktemp("sr") / "report.dcm")
    return report, seg, path


def test_segmented_nodules_get_volumetric_groups_referencing_their_segment(built):
    report, seg, path = built
    sr = hd.sr.srread(path)
    volumetric = {str(g.tracking_uid): g for g in sr.content.get_volumetric_roi_measurement_groups()}
    planar = {str(g.tracking_uid): g for g in sr.content.get_planar_roi_measurement_groups()}
    numbers = {item.TrackingUID: int(item.SegmentNumber) for item in seg.SegmentSequence}
    for nodule in report.nodules:
        if nodule.mask is None:
            assert nodule.tracking_uid in planar and nodule.tracking_uid not in volumetric
            continue
        group = volumetric[nodule.tracking_uid]
        assert nodule.tracking_uid not in planar and group.tracking_identifier == nodule.marker.name
        reference = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == pydicom.uid.SegmentationStorage
        assert reference.ReferencedSegmentNumber == numbers[nodule.tracking_uid]
        assert group.finding_type == codes.SCT.Nodule
        # the marker's diameter and the model's values stay as in the planar group
        diameters = [m.value for m in group.get_measurements(name=codes.SCT.Diameter) if m.method is None]
        assert diameters == [pytest.approx(nodule.marker.diameter_mm)]
        assert [m.value for m in group.get_measurements(name=codes.DCM.ProbabilityOfCancer)] == [
            pytest.approx(nodule.result.malignancy)
        ]
    assert {e[2] for e in sr.get_evidence()} >= {seg.SOPInstanceUID}


def test_the_mask_measurements_read_back_with_their_codes_and_units(built):
    report, _, path = built
    sr = hd.sr.srread(path)
    groups = {str(g.tracking_uid): g for g in sr.content.get_volumetric_roi_measurement_groups()}
    by_name = {n.marker.name: groups.get(n.tracking_uid) for n in report.nodules}
    assert mask_values(by_name["N1"]) == {
        "Volume": (pytest.approx(123.46), "mm3"),
        "Long axis": (pytest.approx(7.3), "mm"),
        "Short axis": (pytest.approx(5.1), "mm"),
        "Diameter": (pytest.approx(6.2), "mm"),
        SOLID_DIAMETER.meaning: (pytest.approx(3.4), "mm"),
    }
    assert mask_values(by_name["N2"])["Volume"] == (pytest.approx(33.5), "mm3")
    assert SOLID_DIAMETER.meaning not in mask_values(by_name["N2"])  # solid: no solid component
    assert mask_values(by_name["N3"]) == {}  # segmented but not measured: the segment, no numbers
    (volume_item,) = by_name["N1"].get_measurements(name=VOLUME)
    assert volume_item.name.value == "118565006" and volume_item.name.scheme_designator == "SCT"
    (mean,) = [m for m in by_name["N1"].get_measurements(name=codes.SCT.Diameter) if m.method is not None]
    assert mean.derivation == codes.SCT.Mean
    assert (LONG_AXIS.value, SHORT_AXIS.value) == ("103339001", "103340004")


def test_dciodvfy_finds_no_errors_in_the_volumetric_sr(built):
    assert_valid(built[2])


def test_anonymised_sr_and_seg_reference_the_same_instances(series, tmp_path):
    files, volume = series
    salt = new_salt()
    report = anonymised(measured_report(volume, 2), salt)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    report = replace(
        report,
        uid_map=report.uid_map | {s.SOPInstanceUID: remap_uid(s.SOPInstanceUID, salt) for s in sources},
    )
    seg, path = sr_with_seg(report, files, volume, tmp_path / "report.dcm")
    sr = hd.sr.srread(path)
    evidence = {e[2] for e in sr.get_evidence()}
    segment_sources = {
        i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert segment_sources <= evidence and seg.SOPInstanceUID in evidence
    assert not {s.SOPInstanceUID for s in sources} & evidence
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == report.study["study_uid"]
    assert_valid(path)


def test_a_seg_with_one_segment_is_referenced_with_the_images_it_lies_on(series, tmp_path):
    """highdicom writes a lone segment's number once, in the shared functional groups, and its own
    ReferencedSegment.from_segmentation then failed ('no attribute SegmentIdentificationSequence'),
    so no SR was written for a study with one segmented nodule."""
    files, volume = series
    report = measured_report(volume, 2, masks={"N1": MASKS["N1"]})
    seg, path = sr_with_seg(report, files, volume, tmp_path / "report.dcm")
    assert "SegmentIdentificationSequence" in seg.SharedFunctionalGroupsSequence[0]
    (group,) = hd.sr.srread(path).content.get_volumetric_roi_measurement_groups()
    segment, *sources = group.referenced_segment
    assert segment.ReferencedSOPSequence[0].ReferencedSegmentNumber == 1
    frames = {
        item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for item in seg.PerFrameFunctionalGroupsSequence
    }
    assert {s.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for s in sources} == frames
    assert len(frames) == 2
    assert_valid(path)
