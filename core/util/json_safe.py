"""Standard JSON only: Python's ``json`` writes NaN and Infinity, which no other JSON reader accepts.

Every writer passes ``allow_nan=False`` (``tests/test_json_writers.py`` holds them to it), so a
non-finite number fails where it is written. Where a value may legitimately be undefined (a metric
of a split with one class, a rating nobody gave) ``json_safe`` makes it ``null`` first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def json_safe(value):
    """NaN and infinities as None, numpy scalars as numbers: standard JSON for cards and reports."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
