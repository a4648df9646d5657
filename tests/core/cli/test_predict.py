"""``python main.py predict`` on a phantom study with its ground-truth markers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from core.model.checkpoints import save_checkpoint
from core.model.patches import PatchConfig
from core.phantom.study import PhantomOptions, write_phantom
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.nodule_factory import ellipsoid_nodule

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, timeout=180
    )


def test_predict_ranks_the_markers_and_names_the_model(tmp_path):
    options = PhantomOptions(
        seed=4, split="train", nodules=2, size=160, pixel_spacing=1.0, slice_thickness=2.5
    )
    nodules = [
        ellipsoid_nodule("LIDC-IDRI-0002/scan-1/nodule-1"),
        ellipsoid_nodule("LIDC-IDRI-0005/scan-1/nodule-1"),
    ]
    write_phantom(tmp_path / "study", options, nodules)
    truth = json.loads((tmp_path / "study" / "ground_truth.json").read_text())
    markers = {
        "markers": [
            {"id": n["id"], "center_mm": n["centre_mm"], "diameter_mm": n["diameter_mm"]}
            for n in truth["nodules"]
        ]
    }
    (tmp_path / "markers.json").write_text(json.dumps(markers))
    torch.manual_seed(0)
    card = {
        "name": "tiny",
        "version": "t",
        "trained_on": "test data",
        "preprocessing": PatchConfig(size=32).to_dict(),
    }
    save_checkpoint(tmp_path / "m.safetensors", MTMRNet(MTMRNetConfig(width=8, input_size=32)), card)
    model = ["--model", str(tmp_path / "m.safetensors"), "--device", "cpu"]
    markers_file = str(tmp_path / "markers.json")
    result = run(
        "predict",
        str(tmp_path / "study"),
        "--markers",
        markers_file,
        *model,
        "--out",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [n["rank"] for n in report["nodules"]] == [1, 2]
    assert {n["id"] for n in report["nodules"]} == {"n1", "n2"}
    assert "trained on test data" in report["model"] and report["device"] == "cpu"


def test_predict_bad_markers_file_is_a_message(tmp_path):
    (tmp_path / "markers.json").write_text("{not json")
    result = run(
        "predict", str(tmp_path), "--markers", str(tmp_path / "markers.json"), "--out", str(tmp_path / "r")
    )
    assert (
        result.returncode == 2 and "not a markers file" in result.stderr and "Traceback" not in result.stderr
    )
