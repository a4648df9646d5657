"""What the model takes in and gives back per nodule: the Marker it reads and the NoduleResult it returns.

``interval``: the malignancy probability's test-time-augmentation interval (``core.model.inference``):
how far the score moves when the nodule is seen in eight orientations. It is not a confidence
interval with a guaranteed coverage. ``warnings``: why the nodule lies outside what the model was
trained for (``core.model.ood``); a nodule with any shows the warning instead of a confident score.

The decision band: the malignancy probabilities 10 % and 70 % at which management changes in the
BTS 2015 nodule guideline (below 10 %: CT surveillance; 10-70 %: further work-up; above 70 %:
treatment), whatever the threshold and Lung-RADS. A nodule whose interval crosses either edge is
*indeterminate*: its orientations disagree on the band it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Marker:
    """What the model needs of a nodule marker: an id, a centre (patient LPS mm) and a diameter."""

    id: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float


DECISION_BAND = (0.10, 0.70)


@dataclass(frozen=True)
class NoduleResult:
    id: str
    malignancy: float
    uncertainty: float
    attributes: dict[str, float]  # original LIDC scales
    rank: int = 0
    interval: tuple[float, float] | None = None  # TTA range of the malignancy probability
    warnings: tuple[str, ...] = ()  # out-of-distribution reasons

    @property
    def indeterminate(self) -> bool:
        """The interval crosses an edge of the decision band (``DECISION_BAND``)."""
        if self.interval is None:
            return False
        return any(self.interval[0] < edge < self.interval[1] for edge in DECISION_BAND)

    @property
    def score_text(self) -> str:
        """``p = 0.34 (0.22-0.47)``: the probability and its interval, as every display writes them."""
        text = f"p = {self.malignancy:.2f}"
        return text + (f" ({self.interval[0]:.2f}-{self.interval[1]:.2f})" if self.interval else "")

    @property
    def warning_text(self) -> str:
        """``""``, or ``out of distribution: reason; reason``."""
        return "out of distribution: " + "; ".join(self.warnings) if self.warnings else ""

    @property
    def flags_text(self) -> str:
        """What the command lines print after the score: the interval, ``indeterminate``, the warnings."""
        parts = [f"interval {self.interval[0]:.2f}-{self.interval[1]:.2f}"] if self.interval else []
        parts += ["indeterminate"] * self.indeterminate + ([self.warning_text] if self.warnings else [])
        return f" ({'; '.join(parts)})" if parts else ""

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "malignancy_probability": round(self.malignancy, 4),
            "malignancy_interval": None if self.interval is None else [round(v, 4) for v in self.interval],
            "indeterminate": self.indeterminate,
            "ood_warnings": list(self.warnings),
            "uncertainty": round(self.uncertainty, 4),
            "attributes": {k: round(v, 3) for k, v in self.attributes.items()},
            "rank": self.rank,
        }
