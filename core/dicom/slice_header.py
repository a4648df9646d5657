"""The slice-header record the catalogue and loader share (its own module: breaks headers <-> fastheader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


@dataclass(frozen=True)
class SliceHeader:
    """What the catalogue and loader need from one image file (one or more frames)."""

    path: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    modality: str
    rows: int
    columns: int
    n_frames: int
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) as in DICOM
    slice_thickness: float | None
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    slope: float
    intercept: float
    padding_value: int | None
    transfer_syntax: str
    pixel_offset: int | None  # byte offset of native little-endian pixel data, else None
    pixel_bytes: int | None  # length of that pixel data element

    @property
    def is_enhanced(self) -> bool:
        return self.n_frames > 1

    @property
    def fast_path(self) -> bool:
        """Whether the pixels can be read raw (native little endian, 16 bits, one sample)."""
        return (
            self.pixel_offset is not None
            and self.bits_allocated == 16
            and self.samples_per_pixel == 1
            and self.n_frames == 1
        )
