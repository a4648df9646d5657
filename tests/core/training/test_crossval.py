"""``core.training.crossval`` and the commands that train on a prepared cache: folds by patient, the table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.model.checkpoints import read_card
from core.training.crossval import PUBLISHED, assign_folds, crossval, dataset_baselines, format_table, mean_sd
from core.training.lidc_cache import prepare
from core.training.trainer import TrainConfig
from main import main
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.training import test_lidc_cache as fakes
from tests.core.training.fake_data import fake_dataset

TINY = MTMRNetConfig(depth=18, width=8, input_size=32)
fake_lidc = fakes.fake_lidc  # the fixture: a fake importer for ``prepare``


def by_patient(nodules: int = 18, per_patient: int = 2):
    """``fake_dataset`` with ``per_patient`` nodules per patient (alternating labels, the last -1)."""
    data = fake_dataset(nodules=nodules, slices=2)
    data.patient_ids = np.array([f"LIDC-IDRI-{n // per_patient + 1:04d}" for n in range(nodules)])
    return data


def test_folds_split_by_patient_stratified_and_deterministic():
    patients = [f"P{i:02d}" for i in range(20) for _ in range(3)]
    labels = [1 if i < 10 else 0 for i in range(20) for _ in range(3)]  # ten malignant, ten benign patients
    folds = assign_folds(patients, labels, 5, seed=4)
    assert sorted(folds) == sorted(set(patients)) and set(folds.values()) == set(range(5))
    for f in range(5):
        members = [p for p, g in folds.items() if g == f]
        assert sum(int(p[1:]) < 10 for p in members) == 2 and len(members) == 4  # 2 malignant + 2 benign
    assert assign_folds(patients, labels, 5, seed=4) == folds
    assert any(assign_folds(patients, labels, 5, seed=s) != folds for s in range(1, 4))
    few = assign_folds(["a", "a", "b", "c"], [1, 1, 0, -1], 3)
    assert sorted(few.values()) == [0, 1, 2]  # as many folds as patients: one each, none empty
    with pytest.raises(ValueError, match="at least 4 patients"):
        assign_folds(["a", "b", "c"], [0, 1, 0], 4)
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(["a", "b"], [0, 1], 1)


def test_crossval_tests_every_patient_once_and_never_trains_on_it():
    data = by_patient()
    events = []
    torch.set_num_threads(1)
    result = crossval(
        data,
        folds=3,
        config=TrainConfig(epochs=1, batch_size=8, seed=0),
        seed=1,
        inner_val=0.25,
        progress=events.append,
        model_factory=lambda: MTMRNet(TINY),
    )
    tested = [set(fold["test_patients"]) for fold in result["folds"]]
    assert len(tested) == 3 and all(tested)
    assert set.union(*tested) == set(data.patient_ids.tolist())
    assert sum(len(t) for t in tested) == 9  # disjoint: every patient tested exactly once
    for fold in result["folds"]:
        counts = fold["patients"]
        assert counts["train"] + counts["val"] + counts["test"] == 9 and counts["val"] >= 1
        assert fold["nodules"]["test"] == 2 * counts["test"]
        assert fold["best_epoch"] == 1 and {"auc", "accuracy", "attributes"} <= set(fold["metrics"])
    predicted = [p["nodule_id"] for p in result["predictions"]]
    assert sorted(predicted) == sorted(data.nodule_ids.tolist())  # each nodule scored once, out of fold
    for p in result["predictions"]:
        assert p["patient_id"] in result["folds"][p["fold"] - 1]["test_patients"]
    assert result["pooled"]["n"] == 17  # the indeterminate nodule only counts for the attributes
    assert result["data"] == {
        "patients": 9, "nodules": 18, "slices": 36,
        "labels": {"benign": 9, "malignant": 8, "indeterminate": 1},
    }  # fmt: skip
    for metric in ("accuracy", "sensitivity", "specificity", "auc"):
        assert set(result["summary"][metric]) == {"mean", "sd", "n"}
    assert set(result["attributes"]["spiculation"]) == {"mae", "within_1"}
    assert "early stopping" in result["protocol"]["selection"] and result["protocol"]["split_by"] == "patient"
    assert [e["fold"] for e in events if e["event"] == "epoch"] == [1, 2, 3]
    assert [e["fold"] for e in events if e["event"] == "fold"] == [1, 2, 3]
    json.dumps(result)  # ready for --out

    table = format_table(result)
    assert "3-fold cross-validation split by patient" in table and "mean +/- sd" in table
    prose = " ".join(table.split())
    assert "pooled" in table and "spiculation" in table and "not directly comparable" in prose
    assert all(method in table for method, _, _ in PUBLISHED)
    mean_row = next(line for line in table.splitlines() if line.startswith("mean +/- sd"))
    assert mean_row.count("+/-") >= 5  # accuracy, sensitivity, specificity, AUC, baselines


def test_baselines_on_datasets_and_mean_sd():
    data = fake_dataset(nodules=24)
    baselines = dataset_baselines(data, fake_dataset(nodules=24, seed=1))
    assert baselines["diameter_only"]["auc"] == 1.0  # in the fake, malignant nodules are all bigger
    assert baselines["rating_oracle"]["n"] == 23
    benign_only = data.labels.copy()
    benign_only[benign_only == 1] = 0
    data.labels = benign_only
    assert dataset_baselines(data, fake_dataset()) is None
    assert mean_sd([0.5, float("nan"), 0.7]) == pytest.approx({"mean": 0.6, "sd": math.sqrt(0.02), "n": 2})
    assert mean_sd([float("nan")])["n"] == 0


# -- the commands on a prepared cache --------------------------------------------------------------


@pytest.fixture
def cache(fake_lidc, tmp_path):
    """A prepared cache: 6 train patients, 2 val, 1 test; a benign and a malignant nodule each."""
    small = fakes.FakeNodule((30.0, 30.0, 9.0), diameter_mm=5.0, malignancy=1)
    big = fakes.FakeNodule((40.0, 36.0, 10.0), diameter_mm=14.0, malignancy=5)
    ids = [1, 2, 3, 4, 5, 6, 701, 702, 900]
    series = [fakes.FakeSeries(f"LIDC-IDRI-{n:04d}", f"9.{n}", (small, big)) for n in ids]
    out = tmp_path / "cache"
    prepare(fake_lidc(series), out, fakes.PATCH, workers=1)
    return out


def test_cli_crossval_prints_the_table_and_writes_the_results(cache, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "results.json"
    args = ["lidc", "crossval", str(cache), "--folds", "2", "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--inner-val", "0.3", "--device", "cpu", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "2-fold cross-validation split by patient" in captured.out and "mean +/- sd" in captured.out
    assert "3D-MCN" in captured.out and f"results -> {out}" in captured.out
    assert "fold 2/2 epoch 1/1" in captured.err
    result = json.loads(out.read_text())
    assert result["data"]["patients"] == 8 and result["data"]["splits"] == ["train", "val"]
    tested = [p for fold in result["folds"] for p in fold["test_patients"]]
    assert sorted(tested) == sorted(set(tested)) and "LIDC-IDRI-0900" not in tested  # the reserved split


def test_cli_crossval_errors(cache, tmp_path, capsys):
    assert main(["lidc", "crossval", str(tmp_path)]) == 2
    assert "not a prepared LIDC cache" in capsys.readouterr().err
    assert main(["lidc", "crossval", str(cache), "--folds", "9"]) == 2
    assert "9 folds need at least 9 patients; there are 8" in capsys.readouterr().err
    assert main(["lidc", "crossval", str(cache), "--out", str(tmp_path / "no" / "r.json")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["lidc", "crossval", str(cache), "--splits", "test"]) == 2  # one patient
    assert "at least 5 patients" in capsys.readouterr().err


def test_train_and_evaluate_on_a_prepared_cache(cache, tmp_path, capsys):
    torch.set_num_threads(1)
    model = tmp_path / "model.safetensors"
    args = ["train", "--data", str(cache), "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
    assert main([*args, "--neighbours", "0.25", "--out", str(model)]) == 0  # the cache's patches rule
    card = read_card(model)
    assert card["preprocessing"] == json.loads(json.dumps(fakes.PATCH.to_dict()))
    assert card["trained_on"].startswith("LIDC-IDRI CT images")
    assert card["data"]["train"]["patients"] == [f"LIDC-IDRI-000{n}" for n in range(1, 7)]
    assert card["data"]["val"]["patients"] == ["LIDC-IDRI-0701", "LIDC-IDRI-0702"]
    capsys.readouterr()
    metrics = tmp_path / "test.json"
    args = ["evaluate", "--data", str(cache), "--split", "test", "--model", str(model), "--device", "cpu"]
    png = tmp_path / "reliability.png"
    assert main([*args, "--out", str(metrics), "--png", str(png)]) == 0
    assert "test: AUC" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the split's diagram, as evaluated
    report = json.loads(metrics.read_text())
    assert report["split"] == "test" and report["metrics"]["n"] == 2 and "phantom" not in report
    assert report["data"]["cache"] == str(cache.resolve())
    assert report["baselines"]["diameter_only"]["auc"] == 1.0  # fitted on the cache's train patients
    assert report["metrics"]["temperature"] == 1.0  # no calibration in the card: as the network gives it
    assert report["metrics"]["ece"] == report["metrics"]["ece_uncalibrated"] >= 0
    # the built-in demo model was trained on other patches: refused, with the reason
    assert main(["evaluate", "--data", str(cache), "--split", "val", "--out", str(metrics)]) == 2
    assert "not the model's preprocessing" in capsys.readouterr().err


def test_evaluate_writes_its_metrics_atomically_and_leaves_other_files_alone(cache, tmp_path, capsys):
    """Review: evaluate wrote OUT.with_suffix('.tmp') unsynced, then renamed it: a reader's own
    ``test.tmp`` beside ``test.json`` was overwritten and then gone."""
    torch.set_num_threads(1)
    model = tmp_path / "model.safetensors"
    args = ["train", "--data", str(cache), "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
    assert main([*args, "--out", str(model)]) == 0
    mine = tmp_path / "test.tmp"
    mine.write_text("the reader's own notes")
    args = ["evaluate", "--data", str(cache), "--split", "test", "--model", str(model), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "test.json")]) == 0
    assert mine.read_text() == "the reader's own notes"
    assert json.loads((tmp_path / "test.json").read_text())["split"] == "test"
