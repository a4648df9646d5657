"""The fixed patient splits of the project (by LIDC-IDRI patient number, never by nodule).

* train: LIDC-IDRI-0001 .. 0700
* val:   LIDC-IDRI-0701 .. 0850 (model selection, early stopping, thresholds)
* test:  LIDC-IDRI-0851 .. 1012 (reserved: read only to report final figures)
"""

from __future__ import annotations

import re

SPLITS = ("train", "val", "test")
_RANGES = {"train": (1, 700), "val": (701, 850), "test": (851, 1012)}


def patient_number(patient_id: str) -> int:
    """``LIDC-IDRI-0042`` -> 42. Raises ``ValueError`` for anything else."""
    match = re.fullmatch(r"LIDC-IDRI-(\d{4})", patient_id.strip())
    if not match:
        raise ValueError(f"not a LIDC-IDRI patient id: {patient_id!r}")
    return int(match.group(1))


def split_of(patient_id: str) -> str:
    number = patient_number(patient_id)
    for split, (low, high) in _RANGES.items():
        if low <= number <= high:
            return split
    raise ValueError(f"{patient_id} is outside LIDC-IDRI's 1..1012")
