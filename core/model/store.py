"""Where models live: the built-in demo model in resources/, trained versions in the user folder."""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEMO_MODEL = RESOURCES / "models" / "mtmr-compact-demo.safetensors"


def default_model_path() -> Path:
    """The model the app and the CLI use when none is named: the built-in demo weights."""
    return DEMO_MODEL
