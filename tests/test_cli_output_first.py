"""Review of issues 15/16/21: ``--out`` is checked before any work. ``evaluate`` rendered the data and
evaluated, then died with a traceback on a missing folder or a folder; ``train --out FOLDER`` trained
every epoch and failed only when the finished model was saved; ``batch --out FOLDER`` analysed every
study and then could not write."""

from __future__ import annotations

import pytest

import core.training.data
from main import main


@pytest.fixture
def no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data was rendered before --out was checked")

    monkeypatch.setattr(core.training.data, "cached_dataset", refuse)


@pytest.mark.parametrize("command", [["train"], ["evaluate", "--split", "val"]])
def test_train_and_evaluate_refuse_a_folder_as_out_first(command, tmp_path, no_work, capsys):
    assert main([*command, "--out", str(tmp_path)]) == 2
    assert "is a folder; --out takes a file name such as" in capsys.readouterr().err


def test_evaluate_refuses_a_missing_folder_first(tmp_path, no_work, capsys):
    out = tmp_path / "missing" / "metrics.json"
    assert main(["evaluate", "--split", "val", "--out", str(out)]) == 2
    assert "does not exist (make it first)" in capsys.readouterr().err


def test_evaluate_refuses_a_reliability_png_it_could_not_write_first(tmp_path, no_work, capsys):
    png = tmp_path / "missing" / "reliability.png"
    assert main(["evaluate", "--split", "val", "--out", str(tmp_path / "m.json"), "--png", str(png)]) == 2
    assert f"{png}: its folder" in capsys.readouterr().err


def test_train_still_makes_the_folder_of_out(tmp_path, no_work):
    """train writes its state (and so the folder) itself: a missing folder is no reason to refuse."""
    with pytest.raises(AssertionError, match="rendered"):
        main(["train", "--out", str(tmp_path / "new" / "m.safetensors")])


def test_batch_refuses_a_folder_as_out_before_analysing(tmp_path, capsys):
    (tmp_path / "studies").mkdir()
    (tmp_path / "ranking").mkdir()
    assert main(["batch", str(tmp_path / "studies"), "--out", str(tmp_path / "ranking")]) == 2
    captured = capsys.readouterr()
    assert "is a folder; --out takes a file name such as" in captured.err
    assert "reading the headers" not in captured.err


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--slice-thickness", "0", "slice thickness must be 0.625-3 mm"),
        ("--noise", "nan", "noise must be >= 0 HU"),
        ("--pixel-spacing", "-1", "pixel spacing must be 0.5-1.0 mm"),
    ],
)
def test_evaluate_refuses_phantom_options_out_of_range_first(
    option, value, message, tmp_path, no_work, capsys
):
    """Review: these were tracebacks (ZeroDivisionError; ValueError from the cache key's JSON; the
    renderer's ValueError), the first two after the model was loaded."""
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--split", "val", "--out", str(out), option, value]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--fov-mm", "0"), ("--fov-mm", "nan"), ("--neighbours", "-1")])
def test_train_refuses_a_patch_option_out_of_range_as_a_message(option, value, tmp_path, no_work, capsys):
    """Review: PatchConfig's ValueError was a traceback."""
    assert main(["train", "--out", str(tmp_path / "m.safetensors"), option, value]) == 2
    assert capsys.readouterr().err.startswith("error: ")
