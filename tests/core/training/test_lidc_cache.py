"""``core.training.lidc_cache`` and ``lidc prepare`` on a fake importer: synthetic CT with bright spheres.

The importer (``core.lidc.importer``) is replaced by the fakes below, so these tests do not depend on
it; the fakes are module-level so that the worker processes of the parallel run can unpickle them.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from core.lidc.records import LidcNodule
from core.model.patches import PatchConfig, extract_patches
from core.nodule.ratings import ATTRIBUTES, RATINGS, to_unit_scale
from core.training import lidc_cache as prepare_module
from core.training.lidc_cache import CacheError, load_prepared, prepare, read_settings
from core.volume import CTVolume
from main import main

SPACING = (0.8, 0.8, 1.5)  # x, y, z mm
ORIGIN = (-25.0, -30.0, -120.0)  # LPS of voxel (0, 0, 0)
SHAPE = (20, 64, 64)  # z, y, x
PATCH = PatchConfig(size=16, fov_mm=24.0, max_slices=3)
OTHER_RATINGS = {"subtlety": 4, "internal_structure": 1, "calcification": 6, "sphericity": 3}
OTHER_RATINGS |= {"margin": 4, "lobulation": 2, "spiculation": 1, "texture": 5}


@dataclass(frozen=True)
class FakeNodule:
    voxel: tuple[float, float, float]  # centre (x, y, z) in voxels
    diameter_mm: float = 8.0
    malignancy: int = 5
    readers: int = 4


@dataclass(frozen=True)
class FakeSeries:
    """Stands in for ``core.lidc.importer.LidcSeries`` (same fields, plus what the fake importer draws)."""

    patient_id: str
    series_uid: str
    nodules: tuple[FakeNodule, ...] = ()
    fail: str = ""
    study_uid: str = "1.2.840.1"
    files: tuple = ()
    xml_files: tuple = ()


class FakeImportError(Exception):
    pass


def fake_volume(item: FakeSeries) -> CTVolume:
    rng = np.random.default_rng(zlib.crc32(item.series_uid.encode()))
    hu = -850.0 + rng.normal(0, 15, SHAPE)
    z, y, x = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    for nodule in item.nodules:
        vx, vy, vz = nodule.voxel
        inside = ((x - vx) * SPACING[0]) ** 2 + ((y - vy) * SPACING[1]) ** 2 + ((z - vz) * SPACING[2]) ** 2
        hu[inside <= (nodule.diameter_mm / 2) ** 2] = 40.0
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    return CTVolume(hu.astype(np.int16), affine)


def lps_of(nodule: FakeNodule) -> tuple[float, float, float]:
    return tuple(ORIGIN[i] + nodule.voxel[i] * SPACING[i] for i in range(3))


def fake_record(item: FakeSeries, i: int, nodule: FakeNodule) -> LidcNodule:
    vx, vy, vz = nodule.voxel
    ratings = {name: (OTHER_RATINGS[name],) * nodule.readers for name in RATINGS[:8]}
    ratings["malignancy"] = (nodule.malignancy,) * nodule.readers
    return LidcNodule(
        nodule_id=f"{item.patient_id}/{item.series_uid}/nodule-{i + 1}",
        patient_id=item.patient_id,
        scan_id=1,
        series_uid=item.series_uid,
        annotation_ids=tuple(range(nodule.readers)),
        ratings=ratings,
        # the scan frame (LIDC's): column and row times pixel spacing, the slice's z position
        centroid_mm=(vx * SPACING[0], vy * SPACING[1], ORIGIN[2] + vz * SPACING[2]),
        diameter_mm=nodule.diameter_mm,
        bbox_mm=((0.0, 1.0),) * 3,
        mask=np.ones((1, 1, 1), bool),
    )


def fake_import_series(item: FakeSeries, min_readers: int = 1):
    if item.fail == "die":  # a decoder crashing the process; only ever run in a worker process
        os._exit(3)
    if item.fail:
        raise FakeImportError(f"{item.series_uid}: {item.fail}")
    nodules = [fake_record(item, i, n) for i, n in enumerate(item.nodules)]
    problems = [] if nodules else ["no readers' XML for this series"]
    return SimpleNamespace(volume=fake_volume(item), nodules=nodules, problems=problems)


def fake_centre_lps(volume: CTVolume, nodule: LidcNodule, slice_z=None) -> tuple[float, float, float]:
    x, y, z = nodule.centroid_mm
    sx, sy, sz = volume.spacing
    return tuple(float(v) for v in volume.voxel_to_mm([x / sx, y / sy, (z - volume.origin[2]) / sz]))


@pytest.fixture
def fake_lidc(monkeypatch, tmp_path):
    """``install(series, problems=())`` -> a LIDC root whose importer yields those series."""
    root = tmp_path / "LIDC-IDRI"
    root.mkdir()
    found: dict = {"series": [], "problems": []}
    importer = SimpleNamespace(
        find_series=lambda path: (list(found["series"]), list(found["problems"])),
        import_series=fake_import_series,
        nodule_centre_lps=fake_centre_lps,
        LidcImportError=FakeImportError,
    )
    monkeypatch.setattr(prepare_module, "_importer", lambda: importer)

    def install(series, problems=()):
        found["series"], found["problems"] = list(series), list(problems)
        return root

    return install


BENIGN = FakeNodule((30.0, 32.0, 9.0), diameter_mm=6.0, malignancy=2)
MALIGNANT = FakeNodule((20.5, 40.0, 10.0), diameter_mm=12.0, malignancy=5)
INDETERMINATE = FakeNodule((44.0, 20.0, 8.0), diameter_mm=7.0, malignancy=3)
TINY = FakeNodule((45.0, 45.0, 12.0), diameter_mm=2.4, malignancy=4)
LONE_READER = FakeNodule((14.0, 16.0, 11.0), diameter_mm=9.0, malignancy=4, readers=1)


def standard_series() -> list[FakeSeries]:
    return [
        FakeSeries("LIDC-IDRI-0001", "1.1", (BENIGN, MALIGNANT, TINY)),
        FakeSeries("LIDC-IDRI-0001", "1.2", (INDETERMINATE,)),  # a second scan of the same patient
        FakeSeries("LIDC-IDRI-0702", "2.1", (MALIGNANT, LONE_READER)),
        FakeSeries("LIDC-IDRI-0900", "3.1", (BENIGN,)),
        FakeSeries("LIDC-IDRI-0003", "4.1", ()),  # a series without annotations
    ]


def test_one_file_per_patient_with_the_papers_selection_and_labels(fake_lidc, tmp_path):
    out = tmp_path / "cache"
    report = prepare(fake_lidc(standard_series(), ["notes.txt: not DICOM"]), out, PATCH, workers=1)
    assert [p.patient_id for p in report.patients] == [
        "LIDC-IDRI-0001", "LIDC-IDRI-0003", "LIDC-IDRI-0702", "LIDC-IDRI-0900",
    ]  # fmt: skip
    assert {p.status for p in report.patients} == {"done"} and not report.failed
    assert sorted(f.name for f in out.glob("*.npz")) == [
        "LIDC-IDRI-0001.npz", "LIDC-IDRI-0003.npz", "LIDC-IDRI-0702.npz", "LIDC-IDRI-0900.npz",
    ]  # fmt: skip
    first = {p.patient_id: p for p in report.patients}["LIDC-IDRI-0001"]
    assert first.series == ("1.1", "1.2") and first.nodules == 3
    assert first.labels == {"benign": 1, "malignant": 1, "indeterminate": 1}
    assert first.excluded == {"under_min_diameter": 1}  # the 2.4 mm one: the paper keeps >= 3 mm
    assert report.labels() == {"benign": 2, "malignant": 3, "indeterminate": 1}

    data = load_prepared(out, patients=["LIDC-IDRI-0001"])
    assert data.nodule_ids.tolist() == [
        "LIDC-IDRI-0001/1.1/nodule-1", "LIDC-IDRI-0001/1.1/nodule-2", "LIDC-IDRI-0001/1.2/nodule-1",
    ]  # fmt: skip
    assert data.labels.tolist() == [0, 1, -1]  # mean malignancy exactly 3: out of classification
    assert data.patches.dtype == np.float16 and data.patches.shape[1:] == (1, 16, 16)
    assert set(data.patient_ids.tolist()) == {"LIDC-IDRI-0001"}
    np.testing.assert_allclose(data.diameters, [6.0, 12.0, 7.0])
    expected_attributes = to_unit_scale(np.array([[OTHER_RATINGS[a] for a in ATTRIBUTES]] * 3, float))
    np.testing.assert_allclose(data.attributes, expected_attributes, atol=1e-6)
    # the patches are the real pixels cut at the nodule's LPS centre, as the Predictor would cut them
    series = standard_series()
    for n, (item, nodule) in enumerate(
        [(series[0], BENIGN), (series[0], MALIGNANT), (series[1], INDETERMINATE)]
    ):
        expected = extract_patches(fake_volume(item), lps_of(nodule), nodule.diameter_mm, PATCH)
        got = data.patches[data.nodule_index == n]
        np.testing.assert_array_equal(got, expected.astype(np.float16))
        middle = got[len(got) // 2, 0]
        assert middle[8, 8] > 0.4 and middle[0, 0] < -0.6  # the sphere (40 HU) at the centre, lung around


def test_manifest_records_settings_status_counts_and_problems(fake_lidc, tmp_path):
    out = tmp_path / "cache"
    prepare(fake_lidc(standard_series(), ["notes.txt: not DICOM"]), out, PATCH, min_readers=2, workers=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "mtmr-reader/lidc-cache/1"
    assert manifest["settings"]["min_readers"] == 2 and manifest["settings"]["min_diameter_mm"] == 3.0
    assert read_settings(out).patch == PATCH
    assert manifest["problems"] == ["notes.txt: not DICOM"]
    entry = manifest["patients"]["LIDC-IDRI-0702"]
    assert entry["status"] == "done" and entry["file"] == "LIDC-IDRI-0702.npz"
    assert entry["nodules"] == 1 and entry["excluded"] == {"under_min_readers": 1}
    assert entry["series"] == ["2.1"] and entry["settings_key"] == manifest["settings_key"]
    empty = manifest["patients"]["LIDC-IDRI-0003"]
    assert empty["status"] == "done" and empty["nodules"] == 0
    assert empty["problems"] == ["series 4.1: no readers' XML for this series"]


def test_min_diameter_and_min_readers_filters(fake_lidc, tmp_path):
    root = fake_lidc(standard_series())
    loose = prepare(root, tmp_path / "a", PATCH, min_diameter_mm=2.0, workers=1)
    strict = prepare(root, tmp_path / "b", PATCH, min_diameter_mm=7.0, min_readers=4, workers=1)
    assert sum(p.nodules for p in loose.patients) == 7  # everything, the 2.4 mm nodule included
    # >= 7 mm and 4 readers: the 6 mm benign nodules (twice), the 2.4 mm one and the lone reader go
    assert sum(p.nodules for p in strict.patients) == 3
    counts = {p.patient_id: p.excluded for p in strict.patients}
    assert counts["LIDC-IDRI-0001"] == {"under_min_diameter": 2}
    assert counts["LIDC-IDRI-0702"] == {"under_min_readers": 1}
    with pytest.raises(ValueError):
        prepare(root, tmp_path / "c", PATCH, min_readers=0, workers=1)


def test_a_failing_patient_is_reported_and_skipped_and_a_second_run_resumes(fake_lidc, tmp_path):
    out = tmp_path / "cache"
    series = standard_series()
    broken = [*series[:3], FakeSeries("LIDC-IDRI-0900", "3.1", (BENIGN,), fail="truncated pixel data")]
    seen = []
    report = prepare(fake_lidc(broken), out, PATCH, workers=1, progress=lambda *a: seen.append(a))
    assert [(d, t, r.patient_id) for d, t, r in seen] == [
        (1, 3, "LIDC-IDRI-0001"), (2, 3, "LIDC-IDRI-0702"), (3, 3, "LIDC-IDRI-0900"),
    ]  # fmt: skip
    (failed,) = report.failed
    assert failed.patient_id == "LIDC-IDRI-0900" and "truncated pixel data" in failed.error
    assert "FakeImportError" in failed.error
    assert not (out / "LIDC-IDRI-0900.npz").exists()
    assert json.loads((out / "manifest.json").read_text())["patients"]["LIDC-IDRI-0900"]["status"] == "failed"
    with pytest.raises(CacheError, match="not prepared"):
        load_prepared(out, patients=["LIDC-IDRI-0900"])
    assert len(load_prepared(out).labels) == 5  # the others are usable

    written = (out / "LIDC-IDRI-0001.npz").stat().st_mtime_ns
    again = prepare(fake_lidc(series), out, PATCH, workers=1)  # the patient is readable now
    status = {p.patient_id: p.status for p in again.patients}
    assert status == {
        "LIDC-IDRI-0001": "resumed", "LIDC-IDRI-0003": "done", "LIDC-IDRI-0702": "resumed",
        "LIDC-IDRI-0900": "done",
    }  # fmt: skip
    assert (out / "LIDC-IDRI-0001.npz").stat().st_mtime_ns == written
    resumed = {p.patient_id: p for p in again.patients}["LIDC-IDRI-0001"]
    assert resumed.nodules == 3 and resumed.labels["indeterminate"] == 1
    assert "4 patients prepared (2 now, 2 already done)" in again.summary()


def test_other_settings_or_other_series_redo_the_patient(fake_lidc, tmp_path):
    out = tmp_path / "cache"
    series = standard_series()
    prepare(fake_lidc(series), out, PATCH, workers=1)
    wider = PatchConfig(size=16, fov_mm=32.0, max_slices=3)
    redone = prepare(fake_lidc(series[:2]), out, wider, workers=1)  # only patient 0001 found this time
    assert [(p.patient_id, p.status) for p in redone.patients] == [("LIDC-IDRI-0001", "done")]
    assert read_settings(out).patch == wider
    # the others were cut with the old settings: stale, never mixed in
    assert set(load_prepared(out).patient_ids.tolist()) == {"LIDC-IDRI-0001"}
    with pytest.raises(CacheError, match="other settings"):
        load_prepared(out, patients=["LIDC-IDRI-0702"])
    extra = [*series[:2], FakeSeries("LIDC-IDRI-0001", "1.3", (MALIGNANT,))]  # a new scan appeared
    grown = prepare(fake_lidc(extra), out, wider, workers=1)
    assert [(p.status, p.nodules) for p in grown.patients] == [("done", 4)]


def test_a_nodule_outside_the_pixels_is_left_out_not_the_patient(fake_lidc, tmp_path):
    outside = FakeNodule((30.0, 30.0, 45.0), diameter_mm=8.0)  # slice 45 of 20
    report = prepare(
        fake_lidc([FakeSeries("LIDC-IDRI-0005", "5.1", (BENIGN, outside))]), tmp_path / "c", PATCH
    )
    (patient,) = report.patients
    assert patient.status == "done" and patient.nodules == 1 and patient.excluded == {"outside_volume": 1}
    assert any("outside the volume" in p for p in patient.problems)


def test_load_prepared_by_the_fixed_patient_splits(fake_lidc, tmp_path):
    out = tmp_path / "cache"
    prepare(fake_lidc(standard_series()), out, PATCH, workers=1)
    train = load_prepared(out, "train")
    assert set(train.patient_ids.tolist()) == {"LIDC-IDRI-0001"}  # 0003 has no nodules
    assert set(load_prepared(out, "val").patient_ids.tolist()) == {"LIDC-IDRI-0702"}
    test = load_prepared(out, "test")
    assert set(test.patient_ids.tolist()) == {"LIDC-IDRI-0900"} and test.labels.tolist() == [0]
    both = load_prepared(out, ["train", "val"])
    assert len(both.labels) == 5 and both.nodule_index.max() == 4
    assert len(load_prepared(out).labels) == 6
    with pytest.raises(ValueError, match="unknown split"):
        load_prepared(out, "validation")
    with pytest.raises(CacheError, match="no nodules"):
        load_prepared(out, patients=["LIDC-IDRI-0003"])
    with pytest.raises(CacheError, match="not a prepared LIDC cache"):
        load_prepared(tmp_path)
    (out / "LIDC-IDRI-0900.npz").write_bytes(b"not a zip")
    with pytest.raises(CacheError, match=r"LIDC-IDRI-0900\.npz: unreadable"):
        load_prepared(out, "test")


def test_parallel_workers_give_the_same_files(fake_lidc, tmp_path):
    root = fake_lidc(standard_series()[:4])
    serial = prepare(root, tmp_path / "serial", PATCH, workers=1)
    parallel = prepare(root, tmp_path / "parallel", PATCH, workers=2)
    assert [(p.patient_id, p.status, p.nodules) for p in parallel.patients] == [
        (p.patient_id, p.status, p.nodules) for p in serial.patients
    ]
    a, b = load_prepared(tmp_path / "serial"), load_prepared(tmp_path / "parallel")
    np.testing.assert_array_equal(a.patches, b.patches)
    assert a.nodule_ids.tolist() == b.nodule_ids.tolist()


def test_a_worker_process_that_dies_fails_its_patients_not_the_run(fake_lidc, tmp_path):
    series = [*standard_series()[:3], FakeSeries("LIDC-IDRI-0900", "3.1", fail="die")]
    report = prepare(fake_lidc(series), tmp_path / "cache", PATCH, workers=2)
    assert "LIDC-IDRI-0900" in [p.patient_id for p in report.failed]
    assert all("a worker process died" in p.error for p in report.failed)
    assert len(report.patients) == 3  # every patient accounted for: prepared, or failed to retry later


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(CacheError, match="no such folder"):
        prepare(tmp_path / "nowhere", tmp_path / "cache")


# -- the command -----------------------------------------------------------------------------------


def test_cli_prepare_reports_and_resumes(fake_lidc, tmp_path, capsys):
    series = standard_series()
    series[3] = FakeSeries("LIDC-IDRI-0900", "3.1", fail="no pixel data")
    root = fake_lidc(series, ["LIDC-IDRI-0004: no CT series"])
    out = tmp_path / "cache"
    assert (
        main(["lidc", "prepare", str(root), "--out", str(out), "--workers", "1", "--min-readers", "2"]) == 0
    )
    captured = capsys.readouterr()
    assert "3 patients prepared (3 now, 0 already done), 1 failed; 4 nodules" in captured.out
    assert "1 patients skipped" in captured.out and "run the same command again" in captured.out
    assert "failed: LIDC-IDRI-0900: FakeImportError: 3.1: no pixel data" in captured.err
    assert "note: LIDC-IDRI-0004: no CT series" in captured.err and "patients 4/4" in captured.err
    settings = read_settings(out)
    assert settings.min_readers == 2 and settings.patch.mode == "fixed-fov" and settings.patch.max_slices == 3
    assert (
        main(["lidc", "prepare", str(root), "--out", str(out), "--workers", "1", "--min-readers", "2"]) == 0
    )
    assert "(0 now, 3 already done), 1 failed" in capsys.readouterr().out


def test_cli_prepare_exit_codes(fake_lidc, tmp_path, capsys):
    assert main(["lidc", "prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    root = fake_lidc([])
    assert main(["lidc", "prepare", str(root), "--out", str(tmp_path / "c")]) == 1
    assert "no CT series" in capsys.readouterr().err
    fake_lidc([FakeSeries("LIDC-IDRI-0001", "1.1", fail="bad")])
    assert main(["lidc", "prepare", str(root), "--out", str(tmp_path / "c"), "--patch-mode", "paper"]) == 1
    assert "no patient could be prepared" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lidc", "prepare", str(root), "--out", str(tmp_path / "c"), "--workers", "0"])
