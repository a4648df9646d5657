"""A marker's model result with what it was computed from (the marker's centre and size, the weights'
hash, with the temperature once the model is calibrated: ``Predictor.identity``): a marker moved or
resized, or another model or calibration, makes it stale. Saved in the session as a dict.
And of many: the results still current, ranked, and the markers to analyse again."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult


@dataclass(frozen=True)
class Analysed:
    """A marker's result and what it was computed from."""

    result: NoduleResult
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    weights: str

    def fits(self, marker: NoduleMarker, weights: str) -> bool:
        return (
            self.weights == weights
            and self.diameter_mm == marker.diameter_mm
            and all(abs(a - b) < 1e-6 for a, b in zip(self.centre_mm, marker.centre_mm, strict=True))
        )

    def to_dict(self) -> dict:
        return self.result.to_dict() | {
            "center_mm": list(self.centre_mm),
            "diameter_mm": self.diameter_mm,
            "weights_sha256": self.weights,
        }

    @classmethod
    def from_dict(cls, marker_id: str, data: dict) -> Analysed | None:
        try:
            interval = data["malignancy_interval"]  # absent before calibration and TTA: recomputed
            result = NoduleResult(
                id=marker_id,
                malignancy=float(data["malignancy_probability"]),
                uncertainty=float(data["uncertainty"]),
                attributes={str(k): float(v) for k, v in data["attributes"].items()},
                interval=None if interval is None else (float(interval[0]), float(interval[1])),
                warnings=tuple(str(w) for w in data.get("ood_warnings", ())),
            )
            centre = tuple(float(v) for v in data["center_mm"])
            numbers = [result.malignancy, result.uncertainty, *result.attributes.values(), *centre]
            numbers += list(result.interval or ())
            if not all(math.isfinite(v) for v in numbers):  # 1e999 in a damaged file reads as infinity;
                raise ValueError("not finite")  # kept, it would make every save of the session fail
            return cls(result, centre, float(data["diameter_mm"]), str(data["weights_sha256"]))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None  # from another version: it will simply be recomputed


def current_results(
    results: Mapping[str, Analysed], markers: Iterable[NoduleMarker], weights: str
) -> dict[str, NoduleResult]:
    """The results that still fit their markers and ``weights``, re-ranked among themselves (1 = most
    suspicious)."""
    fitting = {
        m.id: results[m.id].result for m in markers if m.id in results and results[m.id].fits(m, weights)
    }
    order = sorted(fitting, key=lambda k: -fitting[k].malignancy)
    return {k: replace(fitting[k], rank=rank) for rank, k in enumerate(order, start=1)}


def stale_markers(
    results: Mapping[str, Analysed], markers: Iterable[NoduleMarker], weights: str
) -> list[NoduleMarker]:
    """The markers without a result that fits them and ``weights``: the ones to analyse (again)."""
    return [m for m in markers if m.id not in results or not results[m.id].fits(m, weights)]
