"""Review of issues 15/16/21: a count of 0 or less (epochs, batch size...) is a usage error at once,
not a traceback after the training data was rendered (``train --epochs 0`` ended in ``TypeError``)."""

from __future__ import annotations

import pytest

from main import build_parser

COUNTS = [
    ["train", "--out", "m.safetensors", "--epochs"],
    ["train", "--out", "m.safetensors", "--step-size"],
    ["train", "--out", "m.safetensors", "--batch-size"],
    ["finetune", "--library", "--epochs"],
    ["finetune", "--library", "--batch-size"],
    ["lidc", "crossval", "cache", "--epochs"],
]


@pytest.mark.parametrize("argv", COUNTS, ids=lambda argv: " ".join(argv[:1] + argv[-1:]))
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_count_below_one_is_a_usage_error(argv, value, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*argv, value])
    assert stop.value.code == 2
    assert f"expected a whole number >= 1, got '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", COUNTS, ids=lambda argv: " ".join(argv[:1] + argv[-1:]))
def test_a_positive_count_is_taken(argv):
    args = build_parser().parse_args([*argv, "3"])
    assert 3 in vars(args).values()
