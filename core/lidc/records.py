"""The nodule record shared by the LIDC table, the phantoms, training and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.nodule.ratings import label_for


@dataclass(frozen=True, eq=False)
class LidcNodule:
    """One nodule: the readers' annotations of the same lesion grouped together.

    ``mask`` is the consensus (voxels inside the contours of at least half of the readers, exclusion
    contours removed), a bool array ``(z, y, x)`` on the scan's own grid cropped to the nodule:
    ``mask_spacing`` is (column, row, slice) spacing in mm and ``mask_origin_mm`` the scan-frame
    position (x, y, z) of mask voxel (0, 0, 0). Scan-frame mm: x = column * pixel spacing,
    y = row * pixel spacing, z = the slice's z position (LIDC/pylidc convention).
    """

    nodule_id: str  # "LIDC-IDRI-0001/scan-0012/nodule-1": stable across rebuilds
    patient_id: str
    scan_id: int
    series_uid: str
    annotation_ids: tuple[int, ...]
    ratings: dict[str, tuple[int, ...]]  # per rating name, one value per reader (annotation order)
    centroid_mm: tuple[float, float, float]
    diameter_mm: float
    bbox_mm: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # (min, max) x, y, z
    mask: np.ndarray = field(repr=False)
    mask_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mask_origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def n_readers(self) -> int:
        return len(self.annotation_ids)

    @property
    def mean_ratings(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.ratings.items()}

    @property
    def label(self) -> str:
        return label_for(self.mean_ratings["malignancy"])

    @property
    def split(self) -> str:
        from core.lidc.splits import split_of

        return split_of(self.patient_id)
