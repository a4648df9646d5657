"""The issue's protocol end to end on the miniature: prepare from the DICOM + XML download, then
cross-validate by patient; what was put in comes out."""

from __future__ import annotations

import numpy as np

from core.model.patches import PatchConfig
from core.training.crossval import crossval, format_table
from core.training.lidc_cache import load_prepared, prepare
from core.training.trainer import TrainConfig
from models.mtmr import MTMRNet, MTMRNetConfig


def test_prepare_then_crossval_recovers_the_miniature(miniature, tmp_path):
    import torch

    torch.set_num_threads(1)
    patch = PatchConfig(size=32, max_slices=3)
    report = prepare(miniature["root"].parent, tmp_path / "cache", patch, workers=1)
    assert not report.failed
    truth = [n for s in miniature["series"].values() for n in s["nodules"] if n.diameter_mm >= 3.0]
    data = load_prepared(tmp_path / "cache", split="train")  # the four default patients are train
    assert len(data.labels) == len(truth)
    assert sorted(data.nodule_ids.tolist()) == sorted(n.nodule_id for n in truth)
    by_id = {n.nodule_id: n for n in truth}
    for i, nodule_id in enumerate(data.nodule_ids):
        expected = {"benign": 0, "malignant": 1, "indeterminate": -1}[by_id[nodule_id].label]
        assert data.labels[i] == expected
        assert abs(data.diameters[i] - by_id[nodule_id].diameter_mm) < 1e-3

    again = prepare(miniature["root"].parent, tmp_path / "cache", patch, workers=1)
    assert {p.status for p in again.patients} == {"resumed"}  # resumable: nothing redone

    result = crossval(
        data,
        folds=2,
        config=TrainConfig(epochs=1, batch_size=8, patience=1),
        model_factory=lambda: MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32)),
    )
    tested = [p for fold in result["folds"] for p in fold["test_patients"]]
    assert sorted(tested) == sorted(set(data.patient_ids.tolist()))  # each patient held out once
    assert len(result["predictions"]) == len(truth)  # and each nodule scored once
    table = format_table(result)
    assert "AUC" in table and np.isfinite(result["summary"]["accuracy"]["mean"])
