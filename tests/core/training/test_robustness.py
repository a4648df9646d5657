"""The protocol matrix bench: figures per cell, floors, beyond-size regression, and a run end to end."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.model.checkpoints import read_card, rewrite_card, save_checkpoint
from core.model.patches import PatchConfig
from core.training.robustness import (
    beyond_size,
    card_record,
    card_summary,
    cell_figures,
    markdown,
    miscalibration,
    probabilities_as_reported,
    strata_aucs,
    verdicts,
)
from models.mtmr import MTMRNet, MTMRNetConfig

REPO = Path(__file__).resolve().parents[3]


def _labels_and_sizes(n=400, seed=0):
    rng = np.random.default_rng(seed)
    diameter = rng.uniform(4, 28, n)
    hidden = rng.normal(size=n)  # what the image shows beyond size
    y = (0.15 * (diameter - 12) + 1.5 * hidden + rng.normal(0, 0.5, n) > 0).astype(int)
    return y, diameter, hidden


def test_cell_figures_pair_the_model_with_diameter_on_the_same_nodules():
    y, d, hidden = _labels_and_sizes()
    informed = 1 / (1 + np.exp(-(0.15 * (d - 12) + 1.5 * hidden)))
    cell = cell_figures(y, informed, d, oracle=informed, samples=200, seed=0)
    assert cell["auc"] > cell["diameter_auc"] + 0.05
    lo, hi = cell["auc_minus_diameter_95ci"]
    assert 0 < lo < cell["auc_minus_diameter"] < hi
    assert cell["n"] == 400 and cell["malignant"] == int(y.sum())
    assert [s["n"] for s in cell["strata"]] == [
        int(((d >= a) & (d < b)).sum()) for a, b in ((0, 6), (6, 10), (10, 20), (20, 99))
    ]
    size_only = cell_figures(y, d / 30, d, oracle=informed, samples=200, seed=0)
    assert size_only["auc_minus_diameter"] == 0
    assert size_only["ece"] > 0


def test_miscalibration_tells_a_shift_from_a_scale():
    rng = np.random.default_rng(3)
    z = rng.normal(-1.0, 1.5, 4000)
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-z))).astype(int)
    shifted = 1 / (1 + np.exp(-(z + 1.5)))  # every logit moved up, as a sharp kernel does
    m = miscalibration(y, shifted, shifted)
    assert m["mean_predicted"] > m["observed"] + 0.1
    assert m["best_temperature_bias"][1] == pytest.approx(-1.5, abs=0.15)
    assert m["ece_best_temperature"] > 0.05 > 0.02 > m["ece_best_temperature_bias"]
    scaled = 1 / (1 + np.exp(-2.0 * z))  # over-confident, no shift: a temperature suffices
    m = miscalibration(y, scaled, scaled)
    assert m["best_temperature"] == pytest.approx(2.0, rel=0.1) and m["ece_best_temperature"] < 0.03


def test_strata_with_one_class_have_no_auc():
    strata = strata_aucs(
        np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), np.array([4.0, 5.0, 25.0, 22.0])
    )
    assert strata[0]["auc"] is None and strata[3]["auc"] is None and strata[1]["n"] == 0


@pytest.mark.parametrize(
    ("auc", "expected"),
    [(0.90, (True, True, True)), (0.86, (False, False, False)), (0.882, (True, False, False))],
)
def test_verdicts_apply_the_floors(auc, expected):
    cell = {"auc": auc, "diameter_auc": 0.87, "oracle_auc": 0.90}
    v = verdicts(cell, nominal_auc=0.90)
    assert (v["beats_diameter"], v["near_oracle"], v["holds_nominal"]) == expected
    assert verdicts({"auc": None, "diameter_auc": 0.8, "oracle_auc": 0.9}, 0.9)["beats_diameter"] is None
    assert verdicts(cell | {"ece": 0.08}, 0.9)["ece_within_floor"] is True
    assert verdicts(cell | {"ece": 0.081}, 0.9)["ece_within_floor"] is False
    assert verdicts(cell, 0.9)["ece_within_floor"] is None
    assert verdicts(cell | {"ece": float("nan")}, 0.9)["ece_within_floor"] is None


def test_beyond_size_tells_information_from_a_size_echo():
    y, d, hidden = _labels_and_sizes(seed=1)
    informed = 1 / (1 + np.exp(-(0.1 * (d - 12) + 1.5 * hidden)))
    echo = 1 / (1 + np.exp(-(0.2 * (d - 12) + np.random.default_rng(2).normal(0, 0.05, len(d)))))
    cells = {"x": (y, informed, d)}
    adds = beyond_size(y, informed, d, cells, samples=200, seed=0)
    lo, hi = adds["score_coefficient_95ci"]
    assert lo > 0.5 and adds["combined_auc"]["x"] > 0.85
    repeats = beyond_size(y, echo, d, {"x": (y, echo, d)}, samples=200, seed=0)
    lo, hi = repeats["score_coefficient_95ci"]
    assert lo < 0 < hi or abs(repeats["score_coefficient"]) < adds["score_coefficient"] / 3


def test_uncalibrated_card_reports_raw_probabilities():
    mapping, note = probabilities_as_reported({"name": "m"})
    assert note.startswith("raw")
    assert np.array_equal(mapping(np.array([0.2, 0.7])), np.array([0.2, 0.7]))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    patch = PatchConfig(mode="paper", size=32, max_slices=2, channels=3, neighbour_fraction=0.25)
    card = {"name": "tiny", "version": "t1", "trained_on": "test data", "preprocessing": patch.to_dict()}
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_checkpoint(path, MTMRNet(MTMRNetConfig(width=8, input_size=32, in_channels=3)), card)
    return path


def _bench():
    spec = importlib.util.spec_from_file_location("bench_robustness", REPO / "bench" / "bench_robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_runs_end_to_end_on_a_tiny_model(tiny_model, tmp_path, capsys):
    out = tmp_path / "matrix.json"
    cells = "1.25mm-soft-standard,5mm-sharp-low"
    argv = [str(tiny_model), "--cells", cells, "--nodules", "6", "--bootstrap", "20", "--chest-size", "192"]
    assert _bench().main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["cells"]) == cells.split(",")
    for cell in result["cells"].values():
        assert cell["n"] == result["nodules"] and set(cell["verdicts"]) == {
            "beats_diameter",
            "near_oracle",
            "holds_nominal",
            "ece_within_floor",
        }
        assert 0 <= cell["ece_if_calibrated"] <= 1 and 0 <= cell["ece_p_value"] <= 1
        assert 0 <= cell["ece"] <= 1
        if "miscalibration" in cell:  # both classes among the nodules
            assert set(cell["miscalibration"]) >= {"mean_predicted", "observed", "best_temperature_bias"}
    assert result["cells"]["5mm-sharp-low"]["protocol"]["slice_thickness_mm"] == 5.0
    assert result["beyond_size"]["fitted_on"].startswith("val")
    printed = capsys.readouterr().out
    assert markdown(result).splitlines()[0] in printed and "5mm-sharp-low" in printed
    # what --record keeps in a card (it refuses a partial matrix: below), read back beside the weights
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_model.read_bytes())
    rewrite_card(copy, {"robustness": card_record(result, "2026-12-07")})
    kept = read_card(copy)
    assert kept["weights_sha256"] == read_card(tiny_model)["weights_sha256"]
    assert set(kept["robustness"]["cells"]) == set(cells.split(","))
    low = kept["robustness"]["cells"]["5mm-sharp-low"]
    assert low["auc"] == result["cells"]["5mm-sharp-low"]["auc"] and "strata" not in low
    assert card_summary(kept).startswith("2 protocols: AUC") and card_summary(read_card(tiny_model)) == ""
    for damaged in ([], "x", {"cells": []}, {"cells": {"a": None, "b": {"auc": "high"}}}):
        assert card_summary({"robustness": damaged}) == ""  # the Models page must still open


def test_bench_refuses_bad_input(tiny_model, tmp_path, capsys):
    bench = _bench()
    assert bench.main([str(tiny_model), "--cells", "7mm-soft-standard"]) == 2
    assert "unknown cell" in capsys.readouterr().err
    before = tiny_model.read_bytes()
    assert bench.main([str(tiny_model), "--nodules", "6", "--record"]) == 2
    assert "--record keeps the whole matrix only" in capsys.readouterr().err
    assert tiny_model.read_bytes() == before
    missing = tmp_path / "none.safetensors"
    assert bench.main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert "none.safetensors" in err and "Traceback" not in err


def test_a_calibrated_card_reports_probabilities_after_its_temperature_and_bias():
    mapping, note = probabilities_as_reported({"calibration": {"temperature": 2.0}})
    assert "temperature 2.000" in note and "bias" not in note
    assert mapping(np.array([0.9]))[0] == pytest.approx(0.75)
    mapping, note = probabilities_as_reported({"calibration": {"temperature": 2.0, "bias": -np.log(3)}})
    assert "bias -1.099" in note
    assert mapping(np.array([0.9]))[0] == pytest.approx(0.5)  # logit 2.197 / 2 - 1.099 = 0
    mapping, note = probabilities_as_reported({})
    assert note.startswith("raw") and mapping(np.array([0.9]))[0] == 0.9


def test_bench_record_keeps_the_whole_matrix_in_the_card_and_says_when_it_cannot(
    tiny_model, tmp_path, monkeypatch, capsys
):
    """``--record`` through the bench itself (the matrix replaced by a tiny run's, since all twelve cells
    of the whole split take minutes): the card gains it, the weights stay, a damaged file is refused."""
    import core.training.robustness as robustness

    bench = _bench()
    out = tmp_path / "matrix.json"
    argv = [str(tiny_model), "--cells", "2.5mm-soft-low", "--nodules", "6", "--bootstrap", "20"]
    assert bench.main([*argv, "--chest-size", "192", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    monkeypatch.setattr(robustness, "run_matrix", lambda *a, **k: json.loads(json.dumps(result)))
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_model.read_bytes())
    capsys.readouterr()
    assert bench.main([str(copy), "--record"]) == 0
    assert "kept the matrix in" in capsys.readouterr().out
    kept = read_card(copy)
    assert kept["robustness"]["cells"]["2.5mm-soft-low"]["auc"] == result["cells"]["2.5mm-soft-low"]["auc"]
    assert kept["weights_sha256"] == read_card(tiny_model)["weights_sha256"]
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF  # the weights no longer match the card's hash
    copy.write_bytes(bytes(data))
    import core.model.checkpoints as checkpoints

    # loading would refuse it first; past that, the record's own rewrite must refuse it too
    monkeypatch.setattr(checkpoints, "load_checkpoint", lambda *a, **k: (None, read_card(tiny_model)))
    assert bench.main([str(copy), "--record"]) == 1
    err = capsys.readouterr().err
    assert "cannot be rewritten" in err and "the model is unchanged" in err and "Traceback" not in err
    assert copy.read_bytes() == bytes(data)
