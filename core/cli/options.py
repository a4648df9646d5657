"""The command-line options several commands share, defined once: the model, the device, the series.

``add_model``, ``add_device`` and ``add_series`` add the option to a command's parser with the same
name, default and help everywhere; ``model_path(args)`` is the checkpoint ``--model`` names, else the
built-in demo model; ``positive_int`` is the argparse type of counts that must be at least 1 (epochs,
batch size...), so that 0 or a negative number is refused at once with a usage message (``calendar_date``
the same for a date, ``YYYY-MM-DD`` or ``YYYYMMDD``);
``output_problem(out)`` says why a file named by ``--out`` could not be written, checked before any work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
from pathlib import Path

DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps"


def _checked(text: str, convert, ok, expected: str):
    """``convert(text)`` when it converts and ``ok`` holds (NaN fails every comparison), else argparse's
    usage error naming what was given."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1."""
    return _checked(text, int, lambda v: v >= 1, "a whole number >= 1")


def non_negative_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 0."""
    return _checked(text, int, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (NaN and infinity refused)."""
    return _checked(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def unit_fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1) (an EMA decay)."""
    return _checked(text, float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")


def calendar_date(text: str) -> dt.date:
    """An argparse ``type``: a calendar date written ``YYYY-MM-DD`` or ``YYYYMMDD`` (DICOM's DA)."""

    def convert(value: str) -> dt.date | None:
        digits = value.strip().replace("-", "")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{8}", value.strip()):
            return None
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))  # ValueError: no such day

    return _checked(text, convert, lambda v: True, "a date YYYY-MM-DD or YYYYMMDD")


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model PATH``: the checkpoint to use (default: the built-in demo model)."""
    parser.add_argument("--model", help="checkpoint (default: the built-in demo model)")


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``: where torch runs (``core.model.device.pick_device``)."""
    parser.add_argument("--device", default=default, help=DEVICE_HELP)


def add_series(parser: argparse.ArgumentParser) -> None:
    """``--series UID``: which series of the study (default: the largest CT series)."""
    parser.add_argument("--series", help="SeriesInstanceUID (default: the largest CT series)")


def model_path(args: argparse.Namespace) -> Path:
    """The checkpoint ``--model`` names, else the built-in demo model's."""
    if args.model:
        return Path(args.model)
    from core.model.store import default_model_path

    return default_model_path()


def output_problem(out: Path, example: str = "results.json", makes_folder: bool = False) -> str:
    """Why the file ``out`` cannot be written (it is a folder, or its folder is missing where the command
    does not make it: ``makes_folder``), or "". Every command checks its output this way before any
    work, never only after it."""
    out = Path(out)
    if out.is_dir():
        return f"{out}: is a folder; --out takes a file name such as {out / example}"
    if not makes_folder and not out.parent.is_dir():
        return f"{out}: its folder {out.parent} does not exist (make it first)"
    return ""
