"""The loading exception hierarchy: every message names the file and the reason.

Callers (the CLI, the app) catch ``StudyLoadError`` and show ``str(error)``; no traceback is ever
needed to understand what went wrong.
"""

from __future__ import annotations

from pathlib import Path


class StudyLoadError(Exception):
    """A study, series or file could not be read. ``path`` is what failed, ``reason`` says why."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)

    def __reduce__(self):  # path and reason, not the message: raised again in another process
        return type(self), (self.path, self.reason)


class NotDicomError(StudyLoadError):
    """The file is not DICOM at all, or is truncated/corrupt beyond reading."""


class NotAnImageError(StudyLoadError):
    """A DICOM object without image pixels (SR, RT structure set, DICOMDIR, ...)."""


class NotCTError(StudyLoadError):
    """An image series of another modality where a CT was required."""


class InconsistentSeriesError(StudyLoadError):
    """Files of one series disagree on size, orientation or pixel format."""


class PixelDecodeError(StudyLoadError):
    """The pixel data could not be decoded (missing codec, corrupt or truncated data)."""


class SeriesNotFoundError(StudyLoadError):
    """The requested series is not in the catalogue, or nothing loadable was found."""


class ImageFormatError(StudyLoadError):
    """A NIfTI / MHD / NRRD file that SimpleITK could not read or that is not a 3D scalar image."""
