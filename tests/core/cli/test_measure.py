"""``python main.py measure``: each marker measured from its mask, or its reason; exit codes; the saved
session's mask used while it fits; bad input refused with a one-line message before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.uid import generate_uid

from core.measure.mask import NoduleMask
from core.reading.session import Session, SessionStore
from main import main
from tests.core.report.test_sr import dciodvfy
from tests.dicom_factory import ct_dataset

SPACING, SLICE = 0.75, 1.25  # mm: pixels, slices
ROWS = 56
KEYS = (
    "volume_mm3", "long_axis_mm", "short_axis_mm", "mean_diameter_mm", "solid_diameter_mm",
    "touches_pleura", "method", "warnings", "plane", "texture", "effective_diameter_mm",
)  # fmt: skip


def _lps(x: float, y: float, k: float) -> list[float]:
    return [-10.0 + x * SPACING, -12.0 + y * SPACING, k * SLICE]


@pytest.fixture
def study(tmp_path):
    """16 slices of lung (-850 HU) with a chest wall in the first 8 columns, a free 8 mm solid nodule
    at (x 34, y 28, slice 8) and a 6 mm one on the wall at (x 12, y 20, slice 8)."""
    z, y, x = np.indices((16, ROWS, ROWS))
    hu = np.full(z.shape, -850, dtype=np.int16)
    hu[x < 8] = 40
    free = ((x - 34) * SPACING) ** 2 + ((y - 28) * SPACING) ** 2 + ((z - 8) * SLICE) ** 2 <= 16
    walled = ((x - 11) * SPACING) ** 2 + ((y - 20) * SPACING) ** 2 + ((z - 8) * SLICE) ** 2 <= 9
    hu[free | walled] = 40
    folder = tmp_path / "study"
    folder.mkdir()
    series, study_uid = generate_uid(), generate_uid()
    for k in range(16):
        ds = ct_dataset(k, series, study_uid, z=k * SLICE, hu=hu[k], spacing=(SPACING, SPACING))
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
    markers = {
        "markers": [
            {"id": "free", "name": "N1", "center_mm": _lps(34, 28, 8), "diameter_mm": 8.0},
            {"id": "air", "name": "N2", "center_mm": _lps(45, 45, 3), "diameter_mm": 5.0},
            {"id": "wall", "name": "N3", "center_mm": _lps(11, 20, 8), "diameter_mm": 6.0},
            {"id": "out", "name": "N4", "center_mm": [400.0, 0.0, 10.0], "diameter_mm": 5.0},
        ]
    }
    (tmp_path / "markers.json").write_text(json.dumps(markers))
    return folder, tmp_path / "markers.json", (study_uid, series)


def measure(folder, markers, out) -> int:
    return main(["measure", str(folder), "--markers", str(markers), "--out", str(out)])


def test_every_marker_gets_its_measurement_or_its_reason(study, tmp_path, capsys):
    folder, markers, _ = study
    out = tmp_path / "measures.json"
    assert measure(folder, markers, out) == 0
    captured = capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["schema"] == "mtmr-reader/measurements/1"
    entries = data["measurements"]
    assert [e["id"] for e in entries] == ["free", "air", "wall", "out"]
    free, air, wall, outside = entries
    for key in KEYS:
        assert key in free and key in wall
    assert free["long_axis_mm"] == pytest.approx(8.0, abs=1.0) and free["solid_diameter_mm"] is None
    assert free["volume_mm3"] == pytest.approx(4 / 3 * np.pi * 4**3, rel=0.25)
    assert free["touches_pleura"] is False and wall["touches_pleura"] is True
    assert free["texture"] == "solid" and free["edited"] is False
    assert air["error"] and "volume_mm3" not in air
    assert "outside the series" in outside["error"]
    assert "N1: " in captured.out and "mm3, long" in captured.out
    assert "N4: not measured: " in captured.err and "Traceback" not in captured.err


def test_nothing_measurable_exits_1_and_still_writes_the_reasons(study, tmp_path, capsys):
    folder, _, _ = study
    markers = tmp_path / "bad.json"
    markers.write_text(json.dumps({"markers": [{"id": "o", "center_mm": [400, 0, 0], "diameter_mm": 5}]}))
    out = tmp_path / "m.json"
    assert measure(folder, markers, out) == 1
    assert "outside the series" in json.loads(out.read_text())["measurements"][0]["error"]
    assert "none of the 1 marker(s) could be measured" in capsys.readouterr().err


def test_unusable_input_is_a_one_line_message_before_any_work(study, tmp_path, capsys):
    folder, markers, _ = study
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert measure(folder, broken, tmp_path / "m.json") == 2
    assert "not a markers file" in capsys.readouterr().err
    assert measure(tmp_path / "nowhere", markers, tmp_path / "m.json") == 2
    assert "nowhere" in capsys.readouterr().err
    assert measure(folder, markers, tmp_path) == 2  # a folder as --out, refused before loading
    err = capsys.readouterr().err
    assert "is a folder" in err and "loading" not in err
    assert not (tmp_path / "m.json").exists()


def test_a_reader_edited_mask_in_the_saved_session_is_measured(study, tmp_path):
    folder, markers, key = study
    centre = _lps(34, 28, 8)
    edited = NoduleMask((8, 28, 34), np.ones((1, 2, 4), bool), "edited", centre, 8.0, edited=True)
    SessionStore().save(Session(*key, masks={"free": edited}))
    out = tmp_path / "measures.json"
    assert measure(folder, markers, out) == 0
    free = json.loads(out.read_text())["measurements"][0]
    assert free["edited"] is True and free["method"] == "edited"
    assert free["volume_mm3"] == pytest.approx(8 * SPACING * SPACING * SLICE)


def test_seg_holds_one_segment_per_measured_marker(study, tmp_path, capsys):
    import highdicom as hd
    import pydicom

    folder, markers, _ = study
    out, seg = tmp_path / "measures.json", tmp_path / "masks-seg.dcm"
    code = main(["measure", str(folder), "--markers", str(markers), "--out", str(out), "--seg", str(seg)])
    assert code == 0, capsys.readouterr().err
    segmentation = hd.seg.segread(seg)
    labels = sorted(s.SegmentLabel for s in segmentation.SegmentSequence)
    assert labels == ["N1", "N3"]  # the two measured markers; air and outside have none
    entries = [e for e in json.loads(out.read_text())["measurements"] if "volume_mm3" in e]
    voxels = {e["name"]: e["volume_mm3"] / (SPACING * SPACING * SLICE) for e in entries}
    uids = [
        pydicom.dcmread(folder / f"{k:03d}.dcm", stop_before_pixels=True).SOPInstanceUID for k in range(16)
    ]
    numbers = {s.SegmentLabel: int(s.SegmentNumber) for s in segmentation.SegmentSequence}
    pixels = segmentation.get_pixels_by_source_instance(uids, segment_numbers=sorted(numbers.values()))
    for label, number in numbers.items():
        # the SEG holds the mask's voxels; volume_mm3 is partial-volume corrected (core.measure.axes:
        # its band also counts the nodule tissue a tight mask left out, 13 voxels on N3's 146)
        assert pixels[..., number - 1].sum() == pytest.approx(voxels[label], rel=0.10)
    assert f"wrote {seg}: 2 segment(s)" in capsys.readouterr().out
    errors, _ = dciodvfy(seg)
    assert errors == []


def test_seg_of_a_volume_file_or_onto_out_is_refused_before_any_work(study, tmp_path, capsys):
    folder, markers, _ = study
    out = tmp_path / "m.json"
    nifti = tmp_path / "ct.nii.gz"
    nifti.write_bytes(b"not read: refused by its name")
    seg = str(tmp_path / "s.dcm")
    assert main(["measure", str(nifti), "--markers", str(markers), "--out", str(out), "--seg", seg]) == 2
    assert "--seg needs a DICOM study" in capsys.readouterr().err
    assert (
        main(["measure", str(folder), "--markers", str(markers), "--out", str(out), "--seg", str(out)]) == 2
    )
    assert "--seg and --out name the same file" in capsys.readouterr().err
    assert (
        main(["measure", str(folder), "--markers", str(markers), "--out", str(out), "--seg", str(tmp_path)])
        == 2
    )
    assert "is a folder" in capsys.readouterr().err
    assert not out.exists()
