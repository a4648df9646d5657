"""Open whatever the reader points at (folder, DICOM file(s), NIfTI/MHD/NRRD) as one ``CTVolume``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from core.dicom.catalogue import Catalogue, catalogue
from core.dicom.series import load_series
from core.imaging.volume_files import is_volume_file, load_volume_file
from core.volume import CTVolume


def open_study(
    source: str | Path | Sequence[str | Path],
    series_uid: str | None = None,
    *,
    resample: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[CTVolume, Catalogue | None]:
    """Load a volume file directly, or catalogue DICOM and load one CT series.

    Without ``series_uid`` the CT series with the most images is chosen. Raises a
    ``StudyLoadError`` subclass naming the path and the reason.
    """
    if isinstance(source, (str, Path)) and is_volume_file(source):
        return load_volume_file(source), None
    found = catalogue(source)
    series = found.find_series(series_uid)
    volume = load_series(series.files, resample=resample, progress=progress, cancelled=cancelled)
    return volume, found
