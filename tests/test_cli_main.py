"""Issue 21: what main.py answers where it used to throw a traceback or stay silent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.model.device import pick_device
from main import BROKEN_PIPE, main
from tests.dicom_factory import write_series

REPO = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def python(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), *args], stderr=subprocess.PIPE, text=True, **kwargs
    )


@pytest.fixture
def marked(tmp_path) -> tuple[Path, Path]:
    write_series(tmp_path / "study", 6)
    markers = {"markers": [{"id": "a", "center_mm": [0, 0, 6], "diameter_mm": 6}]}
    (tmp_path / "markers.json").write_text(json.dumps(markers))
    return tmp_path / "study", tmp_path / "markers.json"


@no_cuda
@pytest.mark.parametrize("command", ["predict", "report"])
def test_device_cuda_without_cuda_is_a_message_offering_auto(command, marked, tmp_path, capsys):
    study, markers = marked
    out = tmp_path / "out"
    code = main([command, str(study), "--markers", str(markers), "--out", str(out), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "device 'cuda' cannot be used" in err and "--device auto" in err
    assert not out.exists()


@no_cuda
def test_every_command_with_a_device_refuses_it_before_the_work(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "m.safetensors"), "--device", "cuda:1"]) == 2
    assert "device 'cuda:1' cannot be used" in capsys.readouterr().err
    assert main(["evaluate", "--split", "val", "--out", str(tmp_path / "e.json"), "--device", "gpu"]) == 2
    assert "device 'gpu' is not a device name" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_auto_and_cpu_still_pick_a_device():
    assert pick_device("cpu") == "cpu" and pick_device("auto") in ("cpu", "cuda", "mps")


def test_on_a_one_gpu_machine_cuda_is_taken_and_a_second_gpu_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.version, "cuda", None)  # a ROCm build names its GPUs "cuda" too
    assert pick_device("cuda") == "cuda" and pick_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match=r"'cuda:1' cannot be used: this machine has 1 CUDA GPU"):
        pick_device("cuda:1")


def test_a_closed_pipe_ends_quietly(tmp_path):
    write_series(tmp_path / "s", 3)
    process = python("info", str(tmp_path / "s"), "--json", stdout=subprocess.PIPE)
    process.stdout.close()  # as `| head` does once it has its lines
    err = process.stderr.read()
    assert process.wait(timeout=120) == BROKEN_PIPE
    assert err == ""


def test_open_of_a_missing_path_is_a_message(tmp_path, capsys):
    assert main(["open", str(tmp_path / "nothing")]) == 2
    assert f"{tmp_path / 'nothing'}: no such file or folder" in capsys.readouterr().err


def test_the_window_options_may_follow_the_path():
    from main import build_parser

    args = build_parser().parse_args(["open", "study", "--screenshot", "s.png", "--analyse"])
    assert (args.path, args.screenshot, args.analyze) == ("study", "s.png", True)
    args = build_parser().parse_args(["--screenshot", "s.png", "open", "study"])
    assert (args.screenshot, args.analyze) == ("s.png", False)


def test_a_screenshot_of_a_file_that_is_no_image_says_why(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    shot = tmp_path / "shot.png"
    process = python("open", str(tmp_path / "notes.txt"), "--screenshot", str(shot))
    err = process.stderr.read()
    assert process.wait(timeout=300) == 1
    assert f"error: {tmp_path / 'notes.txt'}: no CT series found" in err
    assert "propagateSizeHints" not in err and "Traceback" not in err


def test_phantom_tells_its_stages(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["phantom", str(out), "--nodules", "1", "--size", "160", "--slice-thickness", "2.5"]) == 0
    captured = capsys.readouterr()
    assert "phantom: rendering a 160x160x" in captured.err and "phantom: writing" in captured.err
    assert f"markers: {out / 'markers.json'}" in captured.out


def test_the_first_launch_says_it_builds_the_demo_and_is_quiet_otherwise(tmp_path):
    shot = tmp_path / "first.png"
    process = python("--screenshot", str(shot))  # a fresh user home: the demo study is not built yet
    err = process.stderr.read()
    assert process.wait(timeout=300) == 0, err
    assert err.startswith("Building the demo study (first launch only") and shot.stat().st_size > 0
    assert "propagateSizeHints" not in err
