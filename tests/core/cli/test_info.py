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
