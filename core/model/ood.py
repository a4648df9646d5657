"""Out of distribution: why a nodule lies outside what the model was trained for.

Reasons, each a short line without patient data:

* the series' slice thickness (the larger of the header's SliceThickness and the slice spacing) or
  pixel spacing outside the model card's ``"domain"`` widened by ``TOLERANCE`` either way; a card
  without a domain (trained before it was recorded) is held to the nominal training protocol,
  1.25 mm slices and 0.7 mm pixels, with the same tolerance (0.83-1.88 mm, 0.47-1.05 mm);
* a modality other than CT;
* a contrast-enhanced series (ContrastBolusAgent present and not "none");
* a marker on air or bone: the median HU inside the marker's sphere below ``AIR_HU`` or above
  ``BONE_HU``, far outside the nodules' range (ground glass about -700 HU to soft tissue and
  partly calcified nodules at a few hundred HU).
"""

from __future__ import annotations

import numpy as np

from core.volume import CTVolume

TOLERANCE = 1.5  # a factor either way around the trained range
NOMINAL_DOMAIN = {"slice_thickness_mm": [1.25, 1.25], "pixel_spacing_mm": [0.7, 0.7]}
AIR_HU = -950.0
BONE_HU = 350.0
NO_AGENT = {"", "NONE", "NO", "N", "NIL", "0"}


def card_domain(card: dict) -> dict:
    """The ranges the model was trained on: the card's ``"domain"``, else the nominal protocol."""
    domain = card.get("domain")
    return domain if isinstance(domain, dict) else NOMINAL_DOMAIN


def _outside(name: str, value: float, bounds) -> str:
    try:
        low, high = float(bounds[0]) / TOLERANCE, float(bounds[1]) * TOLERANCE
    except (TypeError, ValueError, IndexError):
        return ""  # a range the card does not give (or gives badly) is not checked
    if low <= value <= high:
        return ""
    return f"{name} {value:.2f} mm outside the model's {low:.2f}-{high:.2f} mm"


def series_warnings(volume: CTVolume, domain: dict) -> list[str]:
    """The reasons that hold for every nodule of ``volume``."""
    meta = volume.metadata
    sx, sy, sz = volume.spacing
    thickness = max(meta.slice_thickness or 0.0, sz)
    reasons = [
        _outside("slice thickness", thickness, domain.get("slice_thickness_mm")),
        _outside("pixel spacing", max(sx, sy), domain.get("pixel_spacing_mm")),
    ]
    if meta.modality and meta.modality.upper() != "CT":
        reasons.append(f"modality {meta.modality}, not CT")
    if meta.contrast_agent.strip().upper() not in NO_AGENT:
        reasons.append("contrast-enhanced series (ContrastBolusAgent present); trained on non-contrast CT")
    return [r for r in reasons if r]


def marker_warnings(volume: CTVolume, centre_mm, diameter_mm: float) -> list[str]:
    """A marker on air or bone, judged by the median HU inside its sphere."""
    centre = volume.mm_to_voxel(np.asarray(centre_mm, dtype=float))
    radius = np.maximum(diameter_mm / 2 / np.asarray(volume.spacing), 0.5)  # voxels along x, y, z
    low = np.clip(np.floor(centre - radius).astype(int), 0, np.array(volume.shape[::-1]) - 1)
    high = np.clip(np.ceil(centre + radius).astype(int), 0, np.array(volume.shape[::-1]) - 1)
    zs, ys, xs = (np.arange(low[i], high[i] + 1) for i in (2, 1, 0))
    box = volume.array[np.ix_(zs, ys, xs)].astype(np.float32)
    inside = (
        ((zs[:, None, None] - centre[2]) / radius[2]) ** 2
        + ((ys[None, :, None] - centre[1]) / radius[1]) ** 2
        + ((xs[None, None, :] - centre[0]) / radius[0]) ** 2
    ) <= 1.0
    median = float(np.median(box[inside] if inside.any() else box))
    if median < AIR_HU:
        return [f"marker on air (median {median:.0f} HU inside it)"]
    if median > BONE_HU:
        return [f"marker on bone (median {median:.0f} HU inside it)"]
    return []
