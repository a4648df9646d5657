"""core.cli.options: the options several commands share are the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

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
