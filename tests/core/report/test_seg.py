"""DICOM SEG of the nodule masks (core.report.seg): highdicom reads back segments equal to the masks,
with the report's labels and tracking UIDs, only the frames that hold a mask, each linked to its CT
slice; dciodvfy finds no errors; bad input is refused with its reason and leaves nothing behind."""

from __future__ import annotations

import warnings
from dataclasses import replace

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from core.dicom.series import load_series
from core.measure.mask import NoduleMask
from core.report import seg as segmod
from core.report.anonymise import anonymised, new_salt, remap_uid
from core.report.content import tracking_uid
from tests.core.report.test_sr import dciodvfy, make_report
from tests.dicom_factory import ct_dataset, write_series


def box(origin, shape, fill=None, **kwargs) -> NoduleMask:
    mask = np.zeros(shape, dtype=bool) if fill is not None else np.ones(shape, dtype=bool)
    if fill is not None:
        mask[fill] = True
    return NoduleMask(origin, mask, kwargs.pop("method", "classical/threshold"), **kwargs)


def with_masks(report, masks: dict[str, NoduleMask]):
    nodules = tuple(replace(n, mask=masks.get(n.marker.name)) for n in report.nodules)
    return replace(report, nodules=nodules)


def read_segments(path, volume) -> dict[int, np.ndarray]:
    """Segment number -> its whole-volume mask, rebuilt from the SEG's frames and plane positions
    through the volume's affine (independent of how the writer laid them out)."""
    seg = pydicom.dcmread(path)
    inverse = np.linalg.inv(volume.affine)
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    out: dict[int, np.ndarray] = {}
    shared = seg.SharedFunctionalGroupsSequence[0]  # one segment: its number is shared by all frames
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        identification = item.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        number = int(identification[0].ReferencedSegmentNumber)
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        x, y, z = (inverse @ [*position, 1.0])[:3]
        assert abs(x) < 1e-3 and abs(y) < 1e-3 and abs(z - round(z)) < 1e-3
        full = out.setdefault(number, np.zeros(volume.array.shape, dtype=bool))
        full[round(z)] = frame.astype(bool)
    return out


def slice_uids(files, volume) -> dict[int, str]:
    """Volume slice index -> the SOP Instance UID of the CT file at that position."""
    inverse = np.linalg.inv(volume.affine)
    out = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        z = (inverse @ [*map(float, ds.ImagePositionPatient), 1.0])[2]
        out[round(z)] = ds.SOPInstanceUID
    return out


MASKS = {  # on the factory's 6 x 32 x 32 volume; N3 reaches past its edge and is clipped
    "N1": box((1, 5, 6), (3, 4, 5), fill=(slice(1, None), slice(1, 3), slice(1, 4))),
    "N2": box((3, 20, 20), (2, 2, 2), method="learned/unet3d", edited=True),
    "N3": box((4, 28, 0), (4, 6, 3), method="truth"),
}


@pytest.fixture(scope="module")
def written(series, tmp_path_factory):
    files, volume = series
    report = with_masks(make_report(volume, 4), MASKS)  # N4 has no mask
    path = segmod.write_seg(report, volume, files, tmp_path_factory.mktemp("seg") / "report-seg.dcm")
    return report, path


def test_segments_read_back_equal_to_the_masks_with_the_report_labels(written, series):
    files, volume = series
    report, path = written
    seg = hd.seg.segread(path)
    segmented = [n for n in report.nodules if n.mask is not None]  # numbered in the report's order
    names = [n.marker.name for n in segmented]
    assert sorted(names) == ["N1", "N2", "N3"] and names != sorted(names)  # by rank, not by name
    descriptions = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert [descriptions[k].SegmentLabel for k in (1, 2, 3)] == names
    assert [descriptions[k].TrackingUID for k in (1, 2, 3)] == [n.tracking_uid for n in segmented]
    assert [descriptions[k].TrackingID for k in (1, 2, 3)] == names
    rebuilt = read_segments(path, volume)
    for number, nodule in enumerate(segmented, start=1):
        assert np.array_equal(rebuilt[number], nodule.mask.in_volume(volume.array.shape)), nodule.marker.name
    # highdicom's own reader, by CT instance in the volume's slice order, agrees
    uids = slice_uids(files, volume)
    pixels = seg.get_pixels_by_source_instance(
        [uids[k] for k in range(volume.array.shape[0])], segment_numbers=[1, 2, 3]
    )
    expected = np.stack([n.mask.in_volume(volume.array.shape) for n in segmented], axis=-1)
    assert np.array_equal(pixels.astype(bool), expected)
    # only the frames that hold a mask: N1 on 2 slices, N2 on 2, N3 (clipped) on 2
    assert seg.NumberOfFrames == 6 and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == report.study["study_uid"] and seg.PatientID == "TEST-001"
    assert seg.FrameOfReferenceUID == report.study["frame_of_reference_uid"]


def test_each_frame_references_the_ct_slice_it_lies_on(written, series):
    files, volume = series
    _, path = written
    seg = pydicom.dcmread(path)
    uids = slice_uids(files, volume)
    inverse = np.linalg.inv(volume.affine)
    for item in seg.PerFrameFunctionalGroupsSequence:
        z = (inverse @ [*map(float, item.PlanePositionSequence[0].ImagePositionPatient), 1.0])[2]
        (source,) = item.DerivationImageSequence[0].SourceImageSequence
        assert source.ReferencedSOPInstanceUID == uids[round(z)]
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == volume.metadata.series_uid


def test_segment_codes_and_algorithm_say_what_made_each_mask(written):
    _, path = written
    seg = hd.seg.segread(path)
    by_label = {s.SegmentLabel: s for s in seg.SegmentSequence}
    for item in by_label.values():
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"  # SCT abnormal structure
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"  # SCT Nodule
        assert item.AnatomicRegionSequence[0].CodeValue == "39607008"  # SCT Lung
    assert by_label["N1"].SegmentAlgorithmType == "AUTOMATIC"
    assert by_label["N1"].SegmentAlgorithmName == "classical/threshold"
    assert by_label["N2"].SegmentAlgorithmType == "SEMIAUTOMATIC"  # reader-edited
    assert by_label["N2"].SegmentAlgorithmName == "learned/unet3d (reader-edited)"
    assert by_label["N3"].SegmentAlgorithmType == "MANUAL"  # the LIDC readers' consensus outline


def test_dciodvfy_finds_no_errors_in_the_seg(written):
    errors, _ = dciodvfy(written[1])
    assert errors == []


def test_overlapping_masks_keep_both_segments(series, tmp_path):
    files, volume = series
    masks = {"N1": box((1, 4, 4), (3, 6, 6)), "N2": box((2, 6, 6), (3, 6, 6))}  # share voxels
    report = with_masks(make_report(volume, 2), masks)
    path = segmod.write_seg(report, volume, files, tmp_path / "seg.dcm")
    rebuilt = read_segments(path, volume)
    seg = pydicom.dcmread(path)
    for item in seg.SegmentSequence:
        expected = masks[item.SegmentLabel].in_volume(volume.array.shape)
        assert np.array_equal(rebuilt[item.SegmentNumber], expected), item.SegmentLabel
    assert seg.SegmentsOverlap == "YES" and len(seg.SegmentSequence) == 2
    assert dciodvfy(path)[0] == []


def test_masks_given_directly_get_the_sr_tracking_uids(series, tmp_path):
    """``write_seg({marker id: mask})`` (for ``measure --seg``): labels from ``names``, tracking UIDs as
    the SR of the same series gives those markers."""
    files, volume = series
    masks = {"marker-a": MASKS["N1"], "marker-b": MASKS["N2"]}
    path = segmod.write_seg(masks, volume, files, tmp_path / "seg.dcm", names={"marker-a": "R1"})
    seg = hd.seg.segread(path)
    series_uid = volume.metadata.series_uid
    assert [(s.SegmentLabel, s.TrackingUID) for s in seg.SegmentSequence] == [
        ("R1", tracking_uid(series_uid, "marker-a")),
        ("marker-b", tracking_uid(series_uid, "marker-b")),
    ]
    rebuilt = read_segments(path, volume)
    assert np.array_equal(rebuilt[1], MASKS["N1"].in_volume(volume.array.shape))


def test_no_mask_inside_the_volume_is_refused_and_an_old_file_kept(series, tmp_path):
    files, volume = series
    path = tmp_path / "seg.dcm"
    path.write_bytes(b"old")
    for masks in (
        {},
        {"N1": box((10, 0, 0), (2, 2, 2))},
        {"N1": box((1, 1, 1), (2, 2, 2), fill=(slice(0, 0),))},
    ):
        report = with_masks(make_report(volume, 2), masks)  # none, beyond the last slice, empty
        with pytest.raises(ValueError, match="no nodule has a 3D mask"):
            segmod.write_seg(report, volume, files, path)
    assert path.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [path]


def test_anonymised_seg_carries_no_identity_or_source_uids(series, tmp_path):
    files, volume = series
    salt = new_salt()
    report = with_masks(make_report(volume, 2), MASKS)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    anonymous = anonymised(report, salt)
    instance_map = {ds.SOPInstanceUID: remap_uid(ds.SOPInstanceUID, salt) for ds in sources}
    anonymous = replace(anonymous, uid_map=anonymous.uid_map | instance_map)
    path = segmod.write_seg(anonymous, volume, files, tmp_path / "seg.dcm")
    data = path.read_bytes()
    secrets = {"Test^Patient", "TEST-001", "20260101", report.study["study_uid"], report.study["series_uid"]}
    secrets |= {ds.SOPInstanceUID for ds in sources} | {ds.FrameOfReferenceUID for ds in sources}
    secrets |= {n.tracking_uid for n in report.nodules}
    assert [s for s in secrets if s.encode() in data] == []
    seg = pydicom.dcmread(path)
    assert seg.PatientIdentityRemoved == "YES" and seg.PatientName == "" and seg.PatientID == ""
    assert seg.StudyInstanceUID == anonymous.study["study_uid"]
    assert seg.FrameOfReferenceUID == anonymous.study["frame_of_reference_uid"]
    referenced = {
        i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced <= set(instance_map.values()) and referenced
    assert [s.TrackingUID for s in seg.SegmentSequence] == [n.tracking_uid for n in anonymous.nodules]
    assert dciodvfy(path)[0] == []


def test_a_one_part_patient_name_is_not_quoted_in_a_warning(doe_series, tmp_path):
    """highdicom quotes a person name without a caret in a warning: the patient's name in the logs."""
    files, volume = doe_series
    report = with_masks(make_report(volume, 1), {"N1": box((0, 2, 2), (2, 3, 3))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = segmod.write_seg(report, volume, files, tmp_path / "seg.dcm")
    assert [str(w.message) for w in caught if "DOE" in str(w.message)] == []
    assert pydicom.dcmread(path).PatientName == "DOE"


def _series(folder, positions, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)) -> list:
    """One CT series (one frame of reference) with an image at each of ``positions``."""
    series_uid, study_uid, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir()
    files = []
    for k, position in enumerate(positions):
        ds = ct_dataset(k, series_uid, study_uid, position=position, orientation=orientation)
        ds.FrameOfReferenceUID = frame
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
        files.append(folder / f"{k}.dcm")
    return files


def test_frames_lie_on_the_ct_images_of_a_series_with_a_gap(tmp_path):
    """The loader spaces a series with a gap evenly (with a warning); the mask on the slice after the
    gap belongs to the image at z = 10 mm, not to the even grid's 7.5 mm."""
    files = _series(tmp_path / "gap", [(-10.0, -12.0, z) for z in (0.0, 2.5, 5.0, 10.0, 12.5)])
    volume = load_series(files)
    assert any("gap" in w for w in volume.warnings)
    path = segmod.write_seg({"a": box((3, 10, 10), (1, 3, 4))}, volume, files, tmp_path / "seg.dcm")
    (frame,) = pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == [-10.0, -12.0, 10.0]
    (source,) = frame.DerivationImageSequence[0].SourceImageSequence
    assert source.ReferencedSOPInstanceUID == pydicom.dcmread(files[3]).SOPInstanceUID


@pytest.mark.parametrize(
    "positions, orientation",
    [
        ([(-10.0, -12.0, -2.5 * k) for k in range(5)], (1, 0, 0, 0, 1, 0)),  # feet first: z falls
        ([(2.0 * k, -12.0, 20.0) for k in range(5)], (0, 1, 0, 0, 0, -1)),  # sagittal images
        ([(-16.0, -16.0 + 0.5 * k, 2.0 * k) for k in range(5)], (1, 0, 0, 0, 0.966, -0.259)),  # tilt
    ],
    ids=["descending", "sagittal", "tilted"],
)
def test_masks_read_back_on_other_geometries(tmp_path, positions, orientation):
    files = _series(tmp_path / "ct", positions, orientation)
    volume = load_series(files)
    mask = box((1, 10, 10), (2, 3, 4))
    path = segmod.write_seg({"a": mask}, volume, files, tmp_path / "seg.dcm")
    assert np.array_equal(read_segments(path, volume)[1], mask.in_volume(volume.array.shape))
    uids = slice_uids(files, volume)
    for item in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence:
        (source,) = item.DerivationImageSequence[0].SourceImageSequence
        assert source.ReferencedSOPInstanceUID in uids.values()
    assert dciodvfy(path)[0] == []


def test_a_long_marker_name_with_a_backslash_is_a_valid_label(series, tmp_path):
    """SegmentLabel is LO: 64 characters at most and no backslash (its value separator); the tracking
    ID (UT) keeps the whole name, as the SR's tracking identifier has it."""
    files, volume = series
    report = with_masks(make_report(volume, 1), {"N1": box((1, 2, 2), (2, 3, 3))})
    name = "left\\upper " + "x" * 80
    (nodule,) = report.nodules
    report = replace(report, nodules=(replace(nodule, marker=replace(nodule.marker, name=name)),))
    path = segmod.write_seg(report, volume, files, tmp_path / "seg.dcm")
    (item,) = pydicom.dcmread(path).SegmentSequence
    assert item.SegmentLabel == ("left upper " + "x" * 80)[:64] and item.TrackingID == name
    assert dciodvfy(path)[0] == []


def test_a_source_that_is_not_dicom_is_named_and_nothing_written(series, tmp_path):
    files, volume = series
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    report = with_masks(make_report(volume, 1), {"N1": box((1, 2, 2), (2, 3, 3))})
    with pytest.raises(ValueError, match=r"^notes\.txt: not a readable DICOM file \(.+\)$"):
        segmod.write_seg(report, volume, [*files, bad], tmp_path / "seg.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_series_whose_slices_name_different_frames_of_reference(tmp_path):
    """A frame of reference is one per series, but some writers (and this test factory) give each
    slice its own: highdicom refused them as 'not part of the same series'. The volume was read as
    one, so the SEG is placed in the frame the SR names (the first slice's)."""
    files = write_series(tmp_path / "ct", n=4)
    assert len({pydicom.dcmread(f).FrameOfReferenceUID for f in files}) == 4
    volume = load_series(files)
    mask = box((1, 4, 4), (2, 3, 3))
    path = segmod.write_seg({"a": mask}, volume, files, tmp_path / "seg.dcm")
    assert pydicom.dcmread(path).FrameOfReferenceUID == volume.metadata.frame_of_reference_uid
    assert np.array_equal(read_segments(path, volume)[1], mask.in_volume(volume.array.shape))
