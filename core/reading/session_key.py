"""The one rule that names a series' saved session: its (StudyInstanceUID, SeriesInstanceUID).

A study without UIDs (a NIfTI/MHD/NRRD file, or DICOM stripped of them) is keyed by a hash of the
absolute path it was loaded from, so the app, ``report`` and ``batch`` find the same session whatever
folder they were started in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.volume import CTVolume


def session_key(volume: CTVolume) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID), or ``("file-<hash>", "file-<hash>")`` without UIDs."""
    meta = volume.metadata
    if meta.study_uid and meta.series_uid:
        return meta.study_uid, meta.series_uid
    return path_key(volume.source)


def path_key(source: str | Path | None) -> tuple[str, str]:
    """The key of a study without UIDs, from the path it was loaded from (made absolute)."""
    where = str(Path(source).resolve()) if source else ""
    digest = hashlib.sha256(where.encode()).hexdigest()[:24]
    return f"file-{digest}", f"file-{digest}"
