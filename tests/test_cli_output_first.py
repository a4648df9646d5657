"""Review of issues 15/16/21: ``--out`` is checked before any work. ``train`` and ``evaluate`` rendered
the data and trained or evaluated, then died with a traceback on a missing folder (``train --out DIR``,
a folder, failed only when the finished model was saved); ``batch --out FOLDER`` analysed every study
and then could not write."""

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
@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_train_and_evaluate_check_out_first(command, where, tmp_path, no_work, capsys):
    out = tmp_path / "missing" / "m.safetensors" if where == "missing-folder" else tmp_path
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ("does not exist" if where == "missing-folder" else "is a folder") in err


def test_batch_refuses_a_folder_as_out_before_analysing(tmp_path, capsys):
    (tmp_path / "studies").mkdir()
    (tmp_path / "ranking").mkdir()
    assert main(["batch", str(tmp_path / "studies"), "--out", str(tmp_path / "ranking")]) == 2
    captured = capsys.readouterr()
    assert "is a folder; --out takes a file name such as" in captured.err
    assert "reading the headers" not in captured.err
