"""Temperature calibration: the fit recovers a known over-confidence, leaves the ranking alone, lowers
the ECE; the Predictor applies a card's temperature; ``calibrate`` rewrites only the card."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import calibrate as calibrate_cli
from core.model.calibration import (
    apply_temperature,
    card_calibration,
    card_temperature,
    fit_temperature,
    fit_temperature_bias,
    logit,
)
from core.model.checkpoints import CheckpointError, read_card, read_verified, rewrite_card
from core.model.inference import Predictor
from core.nodule.prediction import Marker
from core.training.metrics import expected_calibration_error, roc_auc
from core.training.reliability import calibrated_ece, reliability_png
from main import main
from tests.core.model.test_patches import sphere_volume


def overconfident(n: int = 20000, factor: float = 2.5, seed: int = 0):
    """Labels drawn from sigmoid(z) and a model that reports sigmoid(factor * z): T should be ``factor``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return labels, 1 / (1 + np.exp(-factor * z))


def test_fit_recovers_a_known_overconfidence_and_lowers_the_ece():
    labels, probs = overconfident()
    t = fit_temperature(labels, probs)
    assert t == pytest.approx(2.5, rel=0.05)
    after = apply_temperature(probs, t)
    assert expected_calibration_error(labels, after) < 0.02 < expected_calibration_error(labels, probs)
    assert roc_auc(labels, after) == pytest.approx(roc_auc(labels, probs))  # monotone: ranking kept
    under = 1 / (1 + np.exp(-0.5 * logit(overconfident(factor=1.0)[1])))  # an under-confident model
    assert fit_temperature(overconfident(factor=1.0)[0], under) == pytest.approx(0.5, rel=0.05)


def shifted(n: int = 20000, scale: float = 1.0, shift: float = 1.2, seed: int = 0):
    """Labels drawn from sigmoid(z) and a model that reports sigmoid(scale * z + shift), as a sharp
    kernel moves every logit up: (T, b) = (scale, -shift / scale) undoes it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return labels, 1 / (1 + np.exp(-(scale * z + shift)))


def test_fit_with_bias_recovers_a_known_shift_that_no_temperature_undoes():
    labels, probs = shifted()
    t, b = fit_temperature_bias(labels, probs)
    assert t == pytest.approx(1.0, rel=0.05) and b == pytest.approx(-1.2, abs=0.06)
    after = apply_temperature(probs, t, b)
    assert expected_calibration_error(labels, after) < 0.02
    t_only = apply_temperature(probs, fit_temperature(labels, probs))
    assert expected_calibration_error(labels, t_only) > 0.05  # a temperature alone leaves the shift
    assert roc_auc(labels, after) == pytest.approx(roc_auc(labels, probs))  # monotone: ranking kept


def test_fit_with_bias_recovers_scale_and_shift_together():
    labels, probs = shifted(scale=2.0, shift=1.5, seed=1)
    t, b = fit_temperature_bias(labels, probs)
    assert t == pytest.approx(2.0, rel=0.05) and b == pytest.approx(-0.75, abs=0.06)
    labels, probs = overconfident()  # no shift: the bias stays near 0
    t, b = fit_temperature_bias(labels, probs)
    assert t == pytest.approx(2.5, rel=0.05) and abs(b) < 0.05
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature_bias(np.ones(5), np.full(5, 0.3))


def test_fit_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature(np.zeros(10), np.full(10, 0.3))
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature([], [])


def test_card_temperature_defaults_to_one():
    assert card_temperature({}) == 1.0
    assert card_temperature({"calibration": {"temperature": 2.0}}) == 2.0
    for broken in ("x", None, -1.0, float("nan"), 0.0):
        assert card_temperature({"calibration": {"temperature": broken}}) == 1.0
    assert np.array_equal(apply_temperature([0.2, 0.9], 1.0), [0.2, 0.9])
    assert np.array_equal(apply_temperature([0.2, 0.9], 1.0, 0.0), [0.2, 0.9])


def test_card_bias_defaults_to_zero_and_round_trips():
    assert card_calibration({}) == (1.0, 0.0)
    assert card_calibration({"calibration": {"temperature": 2.0}}) == (2.0, 0.0)
    assert card_calibration({"calibration": {"temperature": 2.0, "bias": -0.5}}) == (2.0, -0.5)
    for broken in ("x", None, float("nan"), float("inf"), 50.0):
        assert card_calibration({"calibration": {"temperature": 2.0, "bias": broken}}) == (2.0, 0.0)
    assert apply_temperature([0.5], 1.0, -np.log(3))[0] == pytest.approx(0.25)


def test_calibrated_ece_reports_both():
    labels, probs = overconfident(5000)
    out = calibrated_ece(labels, probs, 2.5)
    assert out["ece"] < out["ece_uncalibrated"] and out["temperature"] == 2.5


def test_reliability_png_draws_two_panels():
    labels, probs = overconfident(2000)
    image = Image.open(io.BytesIO(reliability_png(labels, probs, apply_temperature(probs, 2.5), "t")))
    assert image.format == "PNG" and image.width > 2 * image.height * 0.8
    pixels = np.asarray(image.convert("RGB"))
    bars = (pixels == (120, 160, 220)).all(axis=2)  # bar fill colour
    half = pixels.shape[1] // 2
    columns = bars.any(axis=0)  # both panels whole, side by side: most of each half's width has bars
    assert columns[:half].sum() > 0.6 * 360 and columns[half:].sum() > 0.6 * 360


def test_rewrite_card_keeps_the_weights_and_refuses_a_damaged_file(checkpoint):
    card, before = read_verified(checkpoint)
    new = rewrite_card(checkpoint, {"calibration": {"temperature": 2.0}, "weights_sha256": "forged"})
    card2, after = read_verified(checkpoint)  # verified against the (unchanged) hash
    assert card2["weights_sha256"] == card["weights_sha256"] == new["weights_sha256"]
    assert card2["calibration"] == {"temperature": 2.0} and card2["name"] == "tiny"
    assert all(torch.equal(before[k], after[k]) for k in before)
    data = bytearray(checkpoint.read_bytes())
    data[-10] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the hash"):
        rewrite_card(checkpoint, {"calibration": {"temperature": 3.0}})
    assert checkpoint.read_bytes() == bytes(data)  # left as it was


def test_predictor_applies_the_cards_temperature(checkpoint):
    volume = sphere_volume(6.0)
    markers = [Marker("a", (0.0, 0.0, 0.0), 12.0), Marker("b", (10.0, 5.0, 3.0), 6.0)]
    raw = Predictor(checkpoint, device="cpu").predict(volume, markers)
    rewrite_card(checkpoint, {"calibration": {"temperature": 3.0}})
    calibrated = Predictor(checkpoint, device="cpu").predict(volume, markers)
    for r, c in zip(raw, calibrated, strict=True):
        assert c.malignancy == pytest.approx(float(apply_temperature(r.malignancy, 3.0)), abs=1e-6)
        assert c.rank == r.rank and c.malignancy != pytest.approx(r.malignancy)


def test_predictor_applies_the_cards_bias_to_score_and_interval(checkpoint):
    volume = sphere_volume(6.0)
    markers = [Marker("a", (0.0, 0.0, 0.0), 12.0), Marker("b", (10.0, 5.0, 3.0), 6.0)]
    rewrite_card(checkpoint, {"calibration": {"temperature": 2.0}})
    scaled = Predictor(checkpoint, device="cpu")
    plain = scaled.predict(volume, markers)
    rewrite_card(checkpoint, {"calibration": {"temperature": 2.0, "bias": -1.5}})
    shifted_predictor = Predictor(checkpoint, device="cpu")
    moved = shifted_predictor.predict(volume, markers)
    for p, m in zip(plain, moved, strict=True):
        expected = 1 / (1 + np.exp(-(logit(p.malignancy)[()] - 1.5)))
        assert m.malignancy == pytest.approx(expected, abs=1e-6) and m.rank == p.rank
        low, high = (1 / (1 + np.exp(-(logit(end)[()] - 1.5))) for end in p.interval)
        assert m.interval == pytest.approx((low, high), abs=1e-6)
    assert shifted_predictor.identity != scaled.identity  # results saved before the bias go stale


def test_calibrating_makes_earlier_results_stale(checkpoint):
    from core.nodule.analysed import Analysed, stale_markers
    from core.nodule.markers import NoduleMarker

    before = Predictor(checkpoint, device="cpu")
    assert before.identity == before.card["weights_sha256"]  # uncalibrated: as before
    marker = NoduleMarker("a", "N1", (0.0, 0.0, 0.0), 12.0)
    result = before.predict(sphere_volume(6.0), [marker.to_inference()])[0]
    saved = {"a": Analysed(result, marker.centre_mm, marker.diameter_mm, before.identity)}
    rewrite_card(checkpoint, {"calibration": {"temperature": 3.0}})
    after = Predictor(checkpoint, device="cpu")  # same weights, other probabilities
    assert after.card["weights_sha256"] == before.card["weights_sha256"] != after.identity
    assert stale_markers(saved, [marker], before.identity) == []
    assert stale_markers(saved, [marker], after.identity) == [marker]


def test_calibrate_refuses_the_test_split_and_leaves_the_model(checkpoint, capsys):
    before = checkpoint.read_bytes()
    for protocols in ("nominal", "random", "matrix"):
        assert main(["calibrate", str(checkpoint), "--split", "test", "--protocols", protocols]) == 2
        assert "val only" in capsys.readouterr().err and checkpoint.read_bytes() == before
    assert main(["calibrate", str(checkpoint), "--split", "test", "--data", "cache"]) == 2
    assert "val only" in capsys.readouterr().err and checkpoint.read_bytes() == before


def test_calibrate_refuses_conflicting_options_before_any_work(checkpoint, monkeypatch, capsys):
    def never(*args):
        raise AssertionError("rendered or read data despite the bad options")

    monkeypatch.setattr(calibrate_cli, "_validation_outputs", never)
    before = checkpoint.read_bytes()
    for extra, said in (
        (["--protocols", "random", "--slice-thickness", "2.5"], "--protocols random sets the renderings"),
        (["--data", "cache", "--protocols", "matrix"], "--data fits on the cache's CT"),
        (["--data", "cache", "--noise", "40"], "--data fits on the cache's CT"),
    ):
        assert main(["calibrate", str(checkpoint), *extra]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and checkpoint.read_bytes() == before


def test_calibrate_with_bias_writes_both_and_inference_uses_them(checkpoint, monkeypatch, capsys):
    labels, probs = shifted(5000, shift=1.2)
    fitted = {"phantom": {"seed": 1, "protocols": "random", "spec": ["k"]}}
    monkeypatch.setattr(calibrate_cli, "_validation_outputs", lambda *a: (labels, probs, fitted))
    weights = read_card(checkpoint)["weights_sha256"]
    args = ["calibrate", str(checkpoint), "--protocols", "random", "--method", "temperature+bias"]
    assert main([*args, "--device", "cpu"]) == 0
    card = read_card(checkpoint)
    assert card["weights_sha256"] == weights and read_verified(checkpoint)
    calibration = card["calibration"]
    assert (
        calibration["method"] == "temperature+bias"
        and calibration["fitted_on"]["phantom"]["protocols"] == "random"
    )
    assert calibration["bias"] == pytest.approx(-1.2, abs=0.1) and calibration["ece_after"] < 0.03
    assert Predictor(checkpoint, device="cpu").bias == calibration["bias"]
    assert f", bias {calibration['bias']:+.3f} fitted on val, random protocols" in capsys.readouterr().out


def test_calibrating_again_removes_a_protocol_matrix_measured_under_the_old_calibration(
    checkpoint, monkeypatch, capsys
):
    labels, probs = overconfident(3000)
    source = {"phantom": {"seed": 1, "protocols": "random", "spec": ["k"]}}
    monkeypatch.setattr(calibrate_cli, "_validation_outputs", lambda *a: (labels, probs, source))
    rewrite_card(checkpoint, {"robustness": {"cells": {"1.25mm-soft-standard": {"auc": 0.9, "ece": 0.3}}}})
    assert main(["calibrate", str(checkpoint), "--protocols", "random", "--device", "cpu"]) == 0
    assert read_card(checkpoint)["robustness"] is None  # its ECEs no longer describe the model
    assert "measured under the old calibration and was removed" in capsys.readouterr().out
    assert main(["calibrate", str(checkpoint), "--protocols", "random", "--device", "cpu"]) == 0
    assert "measured under the old calibration" not in capsys.readouterr().out


def test_calibrate_writes_temperature_and_diagram(checkpoint, tmp_path, monkeypatch, capsys):
    labels, probs = overconfident(3000)
    fitted = {"seed": 1, "slice_thickness": 1.25, "pixel_spacing": 0.7, "noise": 20.0, "spec": "k"}
    source = {"phantom": fitted}
    monkeypatch.setattr(calibrate_cli, "_validation_outputs", lambda *a: (labels, probs, source))
    weights = read_card(checkpoint)["weights_sha256"]
    png = tmp_path / "rel.png"
    assert main(["calibrate", str(checkpoint), "--png", str(png), "--device", "cpu"]) == 0
    card = read_card(checkpoint)
    assert card["weights_sha256"] == weights and read_verified(checkpoint)
    calibration = card["calibration"]
    assert calibration["temperature"] == pytest.approx(2.5, rel=0.1)
    assert calibration["fitted_on"]["split"] == "val" and calibration["fitted_on"]["phantom"] == fitted
    assert calibration["method"] == "temperature" and "bias" not in calibration
    assert calibration["ece_after"] < calibration["ece_before"] and calibration["bins"] == 15
    assert Image.open(png).format == "PNG" and "ECE" in capsys.readouterr().out


def test_calibrate_refuses_a_damaged_model_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert main(["calibrate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_calibrate_checks_png_before_work_and_keeps_the_model_when_the_write_fails(
    checkpoint, tmp_path, monkeypatch, capsys
):
    before = checkpoint.read_bytes()
    assert main(["calibrate", str(checkpoint), "--png", str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err and checkpoint.read_bytes() == before
    labels, probs = overconfident(1000)
    monkeypatch.setattr(calibrate_cli, "_validation_outputs", lambda *a: (labels, probs, {}))

    def full_disk(path, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("core.model.checkpoints.write_document_file", full_disk)
    assert main(["calibrate", str(checkpoint), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "cannot be rewritten" in err and "unchanged" in err and "Traceback" not in err
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("protocols", ["nominal", "random", "matrix"])
def test_calibrate_renders_validation_under_the_protocols_asked(checkpoint, monkeypatch, protocols):
    from core.phantom.protocol import MATRIX
    from tests.core.training.fake_data import fake_dataset

    specs = []

    def cached(spec, *args, **kwargs):
        specs.append(spec)
        return fake_dataset(size=32)

    monkeypatch.setattr("core.training.data.cached_dataset", cached)
    args = ["calibrate", str(checkpoint), "--protocols", protocols, "--seed", "4", "--device", "cpu"]
    assert main(args) == 0
    assert all(s.split == "val" and s.seed == 4 and s.variants == 0 for s in specs)
    if protocols == "matrix":
        assert [s.protocol for s in specs] == list(MATRIX.values())
    elif protocols == "random":
        assert len(specs) == 1 and specs[0].randomise and specs[0].protocol is None
    else:
        assert len(specs) == 1 and not specs[0].randomise and specs[0].protocol is None
    fitted = read_card(checkpoint)["calibration"]["fitted_on"]
    assert fitted["n"] == 23 * len(specs)  # every rendering's labelled nodules, pooled
    assert fitted["phantom"]["protocols"] == protocols and fitted["phantom"]["spec"] == [
        s.key() for s in specs
    ]
