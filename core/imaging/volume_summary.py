"""What ``main.py info`` says about a loaded volume: its geometry, HU range and warnings, as JSON-ready
data (the ``volume`` object of ``docs/info-json.md``)."""

from __future__ import annotations

import numpy as np

from core.volume import CTVolume


def volume_summary(volume: CTVolume) -> dict:
    """Shape (z, y, x), spacing and origin (mm, LPS), direction cosines, HU min/max/mean, the series
    UID and the loader's warnings."""
    array = volume.array
    return {
        "shape_zyx": list(volume.shape),
        "spacing_xyz_mm": [round(s, 4) for s in volume.spacing],
        "origin_lps_mm": [round(o, 3) for o in volume.origin],
        "direction": np.round(volume.direction, 6).tolist(),
        "hu_min": int(array.min()),
        "hu_max": int(array.max()),
        "hu_mean": round(float(array.mean(dtype=np.float64)), 2),
        "series_uid": volume.metadata.series_uid,
        "warnings": list(volume.warnings),
    }
