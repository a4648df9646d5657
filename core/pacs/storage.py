"""Where retrieved and received instances go: ``ROOT/<study UID>/<series UID>/<SOP instance UID>.dcm``.

ROOT is a folder the user names (``--out``) or the study cache (``study_cache()``). Each instance is
written atomically (``core.util.atomic``), so a kill mid-transfer leaves whole files only, and a file
already there for a SOP Instance UID is never written twice: a retrieval that stopped resumes by
asking only for what is missing. UIDs are checked before they become file names.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

from core.util.atomic import atomic_write_bytes
from core.util.paths import user_dir

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def study_cache() -> Path:
    """The local study cache that retrieved and received studies go to when no folder is named."""
    return user_dir("cache") / "studies"


def check_uid(uid: str, what: str = "UID") -> str:
    uid = str(uid).strip().rstrip("\0")
    if not (0 < len(uid) <= 64 and UID.match(uid)):
        raise ValueError(f"{what} {uid[:70]!r} is not a DICOM UID")
    return uid


def instance_path(root: Path, study: str, series: str, sop: str) -> Path:
    return (
        Path(root)
        / check_uid(study, "study UID")
        / check_uid(series, "series UID")
        / f"{check_uid(sop, 'SOP instance UID')}.dcm"
    )


def present(root: Path, study: str, series: str | None = None) -> set[str]:
    """SOP Instance UIDs already stored under ``root`` for this study (or one of its series)."""
    base = Path(root) / check_uid(study, "study UID")
    pattern = f"{check_uid(series, 'series UID')}/*.dcm" if series else "*/*.dcm"
    return {p.stem for p in base.glob(pattern) if not p.name.startswith(".")}


def write_encoded(path: Path, encoded: bytes) -> Path:
    """Store an instance already encoded as a DICOM file (preamble, meta, data set), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encoded)
    return path


def write_dataset(root: Path, ds: Dataset) -> Path:
    """Store a pydicom data set (with its file meta) under ``root`` at its UIDs, atomically."""
    path = instance_path(root, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return write_encoded(path, buffer.getvalue())


def used_bytes(root: Path) -> int:
    """Bytes taken by the files under ``root`` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


@dataclass
class Retrieved:
    """What a retrieval did: instances received now, instances already there (skipped), per series."""

    root: Path
    study_uid: str
    received: int = 0
    skipped: int = 0
    series: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.root / self.study_uid
