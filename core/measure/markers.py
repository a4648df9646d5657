"""Each marker's mask and measurement, or the reason it has none: what ``measure``, ``report`` and the
export share.

A saved mask is used while it still fits its marker (``NoduleMask.fits``: an automatic mask of a
marker since moved or resized is stale; a reader-edited one always fits); otherwise the marker is
segmented (``core.measure.segment.segment_nodule``). A marker that cannot be measured (outside the
volume, air, nothing dense at the centre) gets a one-line reason and the others are still measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.measure.axes import measure_nodule
from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.nodule.markers import NoduleMarker, check_inside
from core.volume import CTVolume


@dataclass(frozen=True)
class MarkerMeasurements:
    """Keyed by marker id: the mask and measurement of each marker measured, the reason for each not."""

    masks: dict[str, NoduleMask] = field(default_factory=dict)
    measurements: dict[str, NoduleMeasurement] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def measure_markers(
    volume: CTVolume, markers: Sequence[NoduleMarker], masks: Mapping[str, NoduleMask] | None = None
) -> MarkerMeasurements:
    """Measure every marker: its fitting saved mask from ``masks``, else a new segmentation."""
    from core.measure.segment import segment_nodule

    done = MarkerMeasurements()
    for marker in markers:
        saved = (masks or {}).get(marker.id)
        mask = saved if saved is not None and saved.fits(marker.centre_mm, marker.diameter_mm) else None
        try:
            if mask is None:
                check_inside(volume, marker.centre_mm)
                mask = segment_nodule(volume, marker.centre_mm, marker.diameter_mm)
            measurement = measure_nodule(volume, mask)
        except ValueError as exc:  # SegmentationError and MarkerError are ValueErrors with a reason
            done.errors[marker.id] = str(exc)
            continue
        done.masks[marker.id] = mask
        done.measurements[marker.id] = measurement
    return done
