"""``python main.py info``: text and JSON, real subprocesses, and the error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.dicom_factory import write_series

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, timeout=120
    )


def test_info_json_with_load(tmp_path):
    write_series(tmp_path / "s", 6)
    (tmp_path / "s" / "junk.bin").write_bytes(b"\x00" * 10)
    result = run("info", str(tmp_path / "s"), "--json", "--load")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "mtmr-reader/catalogue/1"
    assert report["skipped"][0]["path"].endswith("junk.bin")
    volume = report["volume"]
    assert volume["shape_zyx"] == [6, 32, 32]
    assert volume["spacing_xyz_mm"] == [0.8, 0.7, 2.5]
    assert volume["hu_min"] == -1000 and volume["hu_max"] == 50


def test_info_text_and_anonymise(tmp_path):
    write_series(tmp_path, 3)
    text = run("info", str(tmp_path), "--load").stdout
    assert "Patient TEST-001" in text and "Loaded volume" in text
    anonymous = run("info", str(tmp_path), "--json", "--anonymise").stdout
    assert "TEST-001" not in anonymous


def test_info_bad_input_is_a_message_not_a_traceback(tmp_path):
    result = run("info", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "x.txt").write_text("x")
    result = run("info", str(tmp_path), "--load")
    assert result.returncode == 2 and "no CT series found" in result.stderr


def test_info_on_an_empty_folder_says_so(tmp_path):
    """Review: ``info EMPTY_FOLDER`` printed nothing at all (exit 0), as if it had hung or crashed."""
    (tmp_path / "empty").mkdir()
    result = run("info", str(tmp_path / "empty"))
    assert result.returncode == 0 and result.stdout == f"No DICOM files found under {tmp_path / 'empty'}\n"
    result = run("info", str(tmp_path / "empty"), "--anonymise")
    assert result.stdout == "No DICOM files found\n"  # no path when anonymised
