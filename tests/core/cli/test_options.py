"""core.cli.options: the options several commands share are the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from core.cli.options import add_device, add_model, add_series, model_path
from core.model.store import default_model_path
from main import build_parser


def test_shared_options_parse_with_their_defaults():
    parser = argparse.ArgumentParser()
    add_model(parser)
    add_device(parser)
    add_series(parser)
    args = parser.parse_args([])
    assert (args.model, args.device, args.series) == (None, "auto", None)
    assert model_path(args) == default_model_path()
    args = parser.parse_args(["--model", "m.safetensors", "--device", "cpu", "--series", "1.2"])
    assert model_path(args) == Path("m.safetensors") and args.series == "1.2"


def test_the_model_commands_share_the_options():
    commands = {
        "predict": ["predict", "s", "--markers", "m.json", "--out", "o.json"],
        "report": ["report", "s", "--markers", "m.json", "--out", "o"],
        "batch": ["batch", "root", "--out", "o.csv"],
        "evaluate": ["evaluate", "--split", "val", "--out", "o.json"],
    }
    for name, argv in commands.items():
        args = build_parser().parse_args([*argv, "--model", "m.safetensors", "--device", "cpu"])
        assert (model_path(args), args.device) == (Path("m.safetensors"), "cpu"), name
        assert build_parser().parse_args(argv).device == "auto", name


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--variants", "-1", "whole number >= 0"),
        ("--lr", "nan", "finite number > 0"),
        ("--lr", "0", "finite number > 0"),
        ("--ema", "5", "up to (not including) 1"),
        ("--ema", "nan", "up to (not including) 1"),
    ],
)
def test_train_refuses_out_of_range_options_before_any_work(option, value, said, capsys):
    """--variants -1, --lr nan and --ema 5 used to be accepted and fail (or train nonsense) later."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--out", "m.safetensors", option, value])
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err


def test_train_keeps_its_defaults_and_accepts_an_ema_decay():
    args = build_parser().parse_args(["train", "--out", "m.safetensors", "--ema", "0.998", "--variants", "0"])
    assert (args.ema, args.variants, args.lr) == (0.998, 0, 3e-3)
