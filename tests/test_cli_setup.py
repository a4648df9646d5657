"""Issue 21: scripts/setup.sh takes torch's CPU build from PyTorch's CPU index on a stock Linux
machine without an NVIDIA driver, and leaves a configured pip alone (dry runs, nothing installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or Path("/proc/driver/nvidia/version").exists()
    or shutil.which("nvidia-smi"),
    reason="the CPU index is chosen on Linux without an NVIDIA driver only",
)


def dry_run(tmp_path: Path, *args: str, **pip_env: str) -> list[str]:
    """The pip commands setup.sh would run, with a venv whose pip is this interpreter's."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    shim = venv / "bin" / "pip"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pip "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"MTMR_VENV": str(venv), "MTMR_SETUP_DRY_RUN": "1", "PIP_CONFIG_FILE": os.devnull, **pip_env}
    result = subprocess.run(
        ["sh", str(REPO / "scripts" / "setup.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [line.replace(str(venv), "VENV") for line in result.stdout.splitlines()]


def test_a_stock_pip_gets_the_cpu_build_first(tmp_path):
    lines = dry_run(tmp_path, "test")
    assert lines[-2:] == [
        f"VENV/bin/pip install torch==2.13.0 {CPU_INDEX}",
        "VENV/bin/pip install torch==2.13.0 -e .[test]",
    ]


def test_a_configured_pip_is_left_alone(tmp_path):
    assert dry_run(tmp_path, PIP_FIND_LINKS="/opt/wheels") == ["VENV/bin/pip install torch==2.13.0 -e ."]
    assert dry_run(tmp_path, "test", PIP_INDEX_URL="file:///srv/wheels/simple")[-1].endswith("-e .[test]")
    assert not any(CPU_INDEX in line for line in dry_run(tmp_path, PIP_INDEX_URL="file:///srv/wheels/simple"))
