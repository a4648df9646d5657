"""Issue 21: one markers schema; a phantom's files work as markers; an empty or unwritable case is a
message, never a silent exit 0 or a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.model.checkpoints import save_checkpoint
from core.model.patches import PatchConfig
from core.nodule.markers import SCHEMA, NoduleMarker, read_markers, write_markers
from core.phantom.study import PhantomOptions, write_phantom
from main import main
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.dicom_factory import write_series
from tests.nodule_factory import ellipsoid_nodule

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    card = {
        "name": "tiny",
        "version": "t1",
        "trained_on": "test data",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_checkpoint(path, MTMRNet(MTMRNetConfig(width=8, input_size=32)), card)
    return path


@pytest.fixture
def series(tmp_path) -> Path:
    """Six 32x32 slices, x -10..11.7, y -12..12.8, z 0..12.5 mm."""
    write_series(tmp_path / "study", 6)
    return tmp_path / "study"


def write(path: Path, markers: list[dict]) -> Path:
    path.write_text(json.dumps({"markers": markers}))
    return path


def test_both_spellings_are_read_and_one_is_written(tmp_path):
    source = write(
        tmp_path / "in.json",
        [
            {"id": "a", "centre_mm": [1, 2, 3], "diameter_mm": 5},
            {"id": "b", "center_mm": [4, 5, 6], "diameter_mm": 7},
        ],
    )
    markers = read_markers(source)
    assert [m.centre_mm for m in markers] == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    write_markers(tmp_path / "out.json", markers)
    written = json.loads((tmp_path / "out.json").read_text())
    assert [sorted(m) for m in written["markers"]] == [
        ["center_mm", "diameter_mm", "id", "name", "notes"]
    ] * 2


def test_disagreeing_or_missing_centres_are_named(tmp_path):
    both = write(
        tmp_path / "both.json",
        [{"id": "a", "center_mm": [1, 2, 3], "centre_mm": [0, 0, 0], "diameter_mm": 5}],
    )
    with pytest.raises(ValueError, match=r"both.json: marker a: center_mm and centre_mm disagree"):
        read_markers(both)
    neither = write(tmp_path / "neither.json", [{"id": "a", "diameter_mm": 5}])
    with pytest.raises(ValueError, match=r"neither.json: marker a: has no 'center_mm'"):
        read_markers(neither)


def test_the_json_schema_file_describes_what_is_written():
    schema = json.loads((REPO / "docs" / "markers.schema.json").read_text())
    assert schema["properties"]["schema"]["const"] == SCHEMA
    marker = schema["$defs"]["marker"]
    written = NoduleMarker("a", "N1", (1.0, 2.0, 3.0), 5.0).to_dict()
    assert set(written) <= set(marker["properties"]) and "centre_mm" in marker["properties"]
    assert set(marker["required"]) | {"center_mm"} <= set(written)


def test_a_phantom_writes_markers_and_predict_reads_them_or_its_ground_truth(tmp_path, model, capsys):
    options = PhantomOptions(
        seed=4, split="train", nodules=2, size=160, pixel_spacing=1.0, slice_thickness=2.5
    )
    nodules = [
        ellipsoid_nodule("LIDC-IDRI-0002/scan-1/nodule-1"),
        ellipsoid_nodule("LIDC-IDRI-0005/scan-1/nodule-1"),
    ]
    study = write_phantom(tmp_path / "study", options, nodules)
    truth = json.loads((study / "ground_truth.json").read_text())
    markers = read_markers(study / "markers.json")
    assert [(m.id, m.centre_mm, m.diameter_mm) for m in markers] == [
        (n["id"], tuple(n["centre_mm"]), n["diameter_mm"]) for n in truth["nodules"]
    ]
    assert read_markers(study / "ground_truth.json") == markers
    for name in ("markers.json", "ground_truth.json"):
        out = tmp_path / f"from-{name}"
        args = [
            "predict",
            str(study),
            "--markers",
            str(study / name),
            "--model",
            str(model),
            "--out",
            str(out),
        ]
        assert main([*args, "--device", "cpu"]) == 0, capsys.readouterr().err
        assert {n["id"] for n in json.loads(out.read_text())["nodules"]} == {"n1", "n2"}


@pytest.mark.parametrize("command", ["predict", "report"])
def test_an_empty_markers_list_is_an_error(command, series, model, tmp_path, capsys):
    empty = write(tmp_path / "markers.json", [])
    out = tmp_path / ("r.json" if command == "predict" else "report")
    code = main([command, str(series), "--markers", str(empty), "--model", str(model), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{empty}: no markers" in err
    assert not out.exists()


def test_predict_checks_its_output_folder_before_the_work(series, model, tmp_path, capsys):
    markers = write(tmp_path / "markers.json", [{"id": "a", "center_mm": [0, 0, 6], "diameter_mm": 6}])
    out = tmp_path / "missing" / "r.json"
    code = main(["predict", str(series), "--markers", str(markers), "--model", str(model), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and f"{out}: its folder {out.parent} does not exist" in captured.err
    assert "predict: loading" not in captured.err  # refused before the study was read


def test_a_finished_prediction_that_cannot_be_written_is_printed(
    series, model, tmp_path, capsys, monkeypatch
):
    import core.util.atomic

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.util.atomic, "atomic_write_text", full_disk)
    markers = write(tmp_path / "markers.json", [{"id": "a", "center_mm": [0, 0, 6], "diameter_mm": 6}])
    out = tmp_path / "r.json"
    code = main(["predict", str(series), "--markers", str(markers), "--model", str(model), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "No space left on device" in captured.err and "Traceback" not in captured.err
    results = json.loads(captured.out[: captured.out.rindex("}") + 1])
    assert [n["id"] for n in results["nodules"]] == ["a"]


def test_batch_takes_a_phantoms_ground_truth_where_there_is_no_markers_file(tmp_path, model, capsys):
    import csv

    options = PhantomOptions(
        seed=5, split="train", nodules=1, size=160, pixel_spacing=1.0, slice_thickness=2.5
    )
    study = write_phantom(
        tmp_path / "root" / "old", options, [ellipsoid_nodule("LIDC-IDRI-0002/scan-1/nodule-1")]
    )
    (study / "markers.json").unlink()  # as a phantom written before phantoms wrote one
    out = tmp_path / "ranking.csv"
    code = main(
        ["batch", str(tmp_path / "root"), "--out", str(out), "--model", str(model), "--device", "cpu"]
    )
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["marker_id"], r["marker_source"]) for r in rows] == [("n1", "ground_truth.json")]
