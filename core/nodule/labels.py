"""The reader's label of a nodule: the one record the app stores, the library keeps and training reads.

A label is the reader's (or the LIDC readers') malignancy rating and attribute ratings on the original
LIDC scales (malignancy 1-5, subtlety 1-5, internal structure 1-4, calcification 1-6, the rest 1-5);
any of them may be missing. A ``LabelledNodule`` ties a label to the marker it describes and to the
study and series it is in, by UID only: no patient name or ID is ever part of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.nodule.ratings import ATTRIBUTES, RATING_MAX, label_for

SCHEMA = "mtmr-reader/label/1"
SOURCES = ("reader", "lidc", "phantom")


class LabelError(ValueError):
    """A label record that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class NoduleLabel:
    malignancy: float | None = None  # 1..5 (a mean of readers may be fractional)
    attributes: Mapping[str, float] = field(default_factory=dict)  # name -> rating, original scale
    source: str = "reader"
    reader: str = ""  # who confirmed it (free text from settings; may be empty)
    confirmed_at: str = ""  # ISO 8601 time

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise LabelError(f"source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.malignancy is not None:
            _check("malignancy", self.malignancy)
        for name, value in self.attributes.items():
            if name not in ATTRIBUTES:
                raise LabelError(f"unknown attribute {name!r}")
            _check(name, value)

    @property
    def classification(self) -> str | None:
        """benign / malignant / indeterminate (exactly 3), or None when malignancy is not given."""
        return None if self.malignancy is None else label_for(self.malignancy)

    def to_dict(self) -> dict:
        return {
            "malignancy": self.malignancy,
            "attributes": dict(self.attributes),
            "source": self.source,
            "reader": self.reader,
            "confirmed_at": self.confirmed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NoduleLabel:
        try:
            malignancy = data.get("malignancy")
            return cls(
                malignancy=None if malignancy is None else float(malignancy),
                attributes={str(k): float(v) for k, v in (data.get("attributes") or {}).items()},
                source=str(data.get("source", "reader")),
                reader=str(data.get("reader", "")),
                confirmed_at=str(data.get("confirmed_at", "")),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, LabelError):
                raise
            raise LabelError(f"not a label record ({exc})") from exc


@dataclass(frozen=True)
class LabelledNodule:
    """A label with its marker (patient LPS mm) and the UIDs of the series it was read on."""

    marker_id: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    label: NoduleLabel
    study_uid: str = ""
    series_uid: str = ""

    def __post_init__(self) -> None:
        if len(self.centre_mm) != 3 or not all(math.isfinite(v) for v in self.centre_mm):
            raise LabelError(f"marker {self.marker_id}: centre {self.centre_mm} is not a 3D point")
        if not (math.isfinite(self.diameter_mm) and 0 < self.diameter_mm <= 100):
            raise LabelError(f"marker {self.marker_id}: diameter {self.diameter_mm} mm is not in (0, 100]")

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "marker_id": self.marker_id,
            "center_mm": list(self.centre_mm),
            "diameter_mm": self.diameter_mm,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "label": self.label.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> LabelledNodule:
        if not isinstance(data, Mapping):
            raise LabelError(f"a labelled-nodule record is a JSON object, not {type(data).__name__}")
        if data.get("schema", SCHEMA) != SCHEMA:
            raise LabelError(f"schema {data.get('schema')!r} is not {SCHEMA}")
        try:
            return cls(
                marker_id=str(data["marker_id"]),
                centre_mm=tuple(float(v) for v in data["center_mm"]),
                diameter_mm=float(data["diameter_mm"]),
                label=NoduleLabel.from_dict(data["label"]),
                study_uid=str(data.get("study_uid", "")),
                series_uid=str(data.get("series_uid", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LabelError):
                raise
            raise LabelError(f"not a labelled-nodule record ({exc.__class__.__name__}: {exc})") from exc


def _check(name: str, value: float) -> None:
    top = RATING_MAX[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and 1 <= value <= top):
        raise LabelError(f"{name} {value!r} is outside its scale 1-{top}")
