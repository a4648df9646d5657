"""``calibrate --data CACHE``: a model of real LIDC crops is calibrated on the cache's validation patients
only; a missing cache, one of other preprocessing or one class only is a one-line error, the model
unchanged."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.model.checkpoints import read_card, read_verified, save_checkpoint
from core.training.lidc_cache import prepare
from main import main
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.training import test_lidc_cache as fakes

fake_lidc = fakes.fake_lidc  # the fixture: a fake importer for ``prepare``
SMALL = fakes.FakeNodule((30.0, 30.0, 9.0), diameter_mm=5.0, malignancy=1)
BIG = fakes.FakeNodule((40.0, 36.0, 10.0), diameter_mm=14.0, malignancy=5)


@pytest.fixture
def cache(fake_lidc, tmp_path):
    """2 train patients, 3 val (6 labelled nodules), 1 test; a benign and a malignant nodule each."""
    series = [
        fakes.FakeSeries(f"LIDC-IDRI-{n:04d}", f"9.{n}", (SMALL, BIG)) for n in (1, 2, 701, 702, 703, 900)
    ]
    out = tmp_path / "cache"
    prepare(fake_lidc(series), out, fakes.PATCH, workers=1)
    return out


def model_file(tmp_path, patch=fakes.PATCH):
    tmp_path.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=patch.size))
    card = {"name": "crops", "version": "0", "trained_on": "LIDC crops", "preprocessing": patch.to_dict()}
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, card)
    return path


def test_calibrate_on_the_caches_validation_patients(cache, tmp_path, capsys):
    path = model_file(tmp_path)
    weights = read_card(path)["weights_sha256"]
    args = ["calibrate", str(path), "--data", str(cache), "--method", "temperature+bias", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr().err
    card = read_card(path)
    assert card["weights_sha256"] == weights and read_verified(path)  # the weights untouched
    fitted = card["calibration"]["fitted_on"]
    assert fitted["split"] == "val" and fitted["data"] == {"cache": str(cache.resolve())}
    assert "phantom" not in fitted
    assert (fitted["n"], fitted["n_malignant"]) == (6, 3)  # 3 val patients x 2; train and test left out
    assert np.isfinite(card["calibration"]["temperature"]) and "bias" in card["calibration"]
    assert "the cache's CT (n=6)" in capsys.readouterr().out


def test_calibrate_data_errors_leave_the_model(cache, tmp_path, capsys):
    path = model_file(tmp_path)
    before = path.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["calibrate", str(path), "--data", str(empty), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "not a prepared LIDC cache" in err and "Traceback" not in err
    other = model_file(tmp_path / "other", replace(fakes.PATCH, size=24))
    other_before = other.read_bytes()
    assert main(["calibrate", str(other), "--data", str(cache), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not the model's preprocessing" in err and "Traceback" not in err
    assert other.read_bytes() == other_before
    manifest = json.loads((cache / "manifest.json").read_text())
    for patient in ("LIDC-IDRI-0701", "LIDC-IDRI-0702", "LIDC-IDRI-0703"):
        manifest["patients"][patient]["status"] = "failed"  # no val patients left
    (cache / "manifest.json").write_text(json.dumps(manifest))
    assert main(["calibrate", str(path), "--data", str(cache), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no prepared patients in the val split" in err and str(cache) in err and "Traceback" not in err
    assert path.read_bytes() == before


def test_calibrate_data_needs_both_classes_in_val(fake_lidc, tmp_path, capsys):
    series = [fakes.FakeSeries(f"LIDC-IDRI-{n:04d}", f"9.{n}", (SMALL,)) for n in (1, 701, 702)]
    series.append(fakes.FakeSeries("LIDC-IDRI-0002", "9.2", (BIG,)))  # malignant in train only
    out = tmp_path / "benign-val"
    prepare(fake_lidc(series), out, fakes.PATCH, workers=1)
    path = model_file(tmp_path)
    before = path.read_bytes()
    assert main(["calibrate", str(path), "--data", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "both classes" in err and "Traceback" not in err
    assert path.read_bytes() == before
