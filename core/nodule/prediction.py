"""What the model takes in and gives back per nodule: the Marker it reads and the NoduleResult it returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Marker:
    """What the model needs of a nodule marker: an id, a centre (patient LPS mm) and a diameter."""

    id: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float


@dataclass(frozen=True)
class NoduleResult:
    id: str
    malignancy: float
    uncertainty: float
    attributes: dict[str, float]  # original LIDC scales
    rank: int = 0

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "malignancy_probability": round(self.malignancy, 4),
            "uncertainty": round(self.uncertainty, 4),
            "attributes": {k: round(v, 3) for k, v in self.attributes.items()},
            "rank": self.rank,
        }
