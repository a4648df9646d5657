"""``train --randomise`` (its domain in the card) and ``evaluate --protocol CELL``."""

from __future__ import annotations

import json

import pytest

from core.phantom.protocol import DOMAIN, MATRIX, NOMINAL, nominal_domain
from core.training.card import TRAINED_ON_PHANTOMS, TRAINED_ON_RANDOMISED
from models.mtmr import MTMRNetConfig
from tests.core.training.fake_data import fake_dataset

TINY = MTMRNetConfig(depth=18, width=8, input_size=32)
TRAIN, VAL = fake_dataset(), fake_dataset(seed=1)


@pytest.fixture
def specs(monkeypatch):
    """Every DatasetSpec the commands ask for; the fake data comes back instead of renderings."""
    import core.training.data
    import models.mtmr

    asked = []

    def fake(spec, *args, **kwargs):
        asked.append(spec)
        return TRAIN if spec.split == "train" else VAL

    monkeypatch.setattr(core.training.data, "cached_dataset", fake)
    monkeypatch.setattr(models.mtmr.MTMRNetConfig, "compact", classmethod(lambda cls: TINY))
    return asked


def _run(*argv: str) -> int:
    from main import build_parser

    args = build_parser().parse_args(list(argv))
    return args.func(args)


def _train(tmp_path, *extra: str):
    from core.model.checkpoints import read_card

    out = tmp_path / "m.safetensors"
    assert _run("train", "--out", str(out), "--epochs", "1", "--batch-size", "16", *extra) == 0
    return out, read_card(out)


def test_randomised_training_renders_random_protocols_and_states_its_domain(tmp_path, specs):
    _, card = _train(tmp_path, "--randomise")
    assert {s.split for s in specs} == {"train", "val"} and all(s.randomise for s in specs)
    assert card["domain"] == DOMAIN and card["training"]["randomise"] is True
    assert card["trained_on"] == TRAINED_ON_RANDOMISED  # what every score it gives is shown with


def test_nominal_training_states_a_point_domain(tmp_path, specs):
    _, card = _train(tmp_path)
    assert not any(s.randomise for s in specs)
    assert all(s.scan_protocol() == NOMINAL for s in specs)
    assert card["domain"] == nominal_domain() and card["training"]["randomise"] is False
    assert card["trained_on"] == TRAINED_ON_PHANTOMS


@pytest.fixture
def model(tmp_path, specs):
    path, _ = _train(tmp_path)
    specs.clear()
    return path


def test_evaluate_renders_a_matrix_cell(tmp_path, model, specs, capsys):
    out = tmp_path / "metrics.json"
    argv = ("evaluate", "--split", "val", "--model", str(model), "--out", str(out))
    assert _run(*argv, "--protocol", "5mm-sharp-low") == 0
    assert [s.protocol for s in specs] == [MATRIX["5mm-sharp-low"]] and specs[0].seed == 1
    phantom = json.loads(out.read_text())["phantom"]
    assert phantom["protocol"] == "5mm-sharp-low" and phantom["slice_thickness_mm"] == 5.0


def test_evaluate_refuses_a_cell_with_the_old_rendering_options(tmp_path, model, specs, capsys):
    out = tmp_path / "metrics.json"
    argv = ("evaluate", "--split", "val", "--model", str(model), "--out", str(out), "--protocol")
    assert _run(*argv, "2.5mm-soft-low", "--slice-thickness", "2.5") == 2
    assert "--protocol sets the rendering" in capsys.readouterr().err
    assert not specs and not out.exists()
    with pytest.raises(SystemExit):
        _run(*argv, "4mm-soft-low")
    assert "invalid choice" in capsys.readouterr().err


def test_evaluate_refuses_noise_beyond_a_scan_protocols_range(tmp_path, model, specs, capsys):
    out = tmp_path / "metrics.json"
    argv = ("evaluate", "--split", "val", "--model", str(model), "--out", str(out), "--noise", "500")
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert "noise must be 0-200 HU" in err and "Traceback" not in err
    assert not specs and not out.exists()
