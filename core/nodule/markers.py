"""Nodule markers: a centre in patient LPS mm and a diameter, with a short name for the reader.

``markers.json``, the file the app imports and exports and ``main.py predict`` reads::

    {
      "schema": "mtmr-reader/markers/1",
      "markers": [
        {"id": "3f2a...", "name": "N1", "center_mm": [x, y, z], "diameter_mm": 8.0, "notes": ""}
      ]
    }

* ``id``: unique within the file (the app makes uuid4 hex ids); ``center_mm``: patient LPS mm
  (x towards the patient's Left, y Posterior, z Superior, as in DICOM); ``diameter_mm``: in (0, 100].
* ``centre_mm`` is read as ``center_mm`` (the phantom's ground truth spells it so); files are
  always written with ``center_mm``.
* ``name``, ``notes`` and ``schema`` may be missing (older files have only id, center_mm and
  diameter_mm); they read as empty.
* A phantom's ``ground_truth.json`` (``core.phantom.study``) reads as the markers of its nodules.
* No patient name or ID is ever part of it.

The JSON Schema: ``docs/markers.schema.json``; in words: ``docs/markers.md``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.util.atomic import atomic_write_text

if TYPE_CHECKING:
    from core.nodule.prediction import Marker
    from core.volume import CTVolume

TRUTH_SCHEMA = "mtmr-reader/phantom-ground-truth/1"

SCHEMA = "mtmr-reader/markers/1"
DEFAULT_DIAMETER_MM = 8.0
MAX_DIAMETER_MM = 100.0


class MarkerError(ValueError):
    """A marker or markers file that cannot be used; the message names the marker or file and why."""


@dataclass(frozen=True)
class NoduleMarker:
    id: str
    name: str
    centre_mm: tuple[float, float, float]  # patient LPS mm
    diameter_mm: float = DEFAULT_DIAMETER_MM
    notes: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise MarkerError(f"marker {self.name or self.id!r}: the id must be non-empty text")
        label = f"marker {self.name or self.id}"
        try:
            centre = tuple(float(v) for v in self.centre_mm)
        except (TypeError, ValueError) as exc:
            raise MarkerError(f"{label}: centre {self.centre_mm!r} is not a 3D point") from exc
        if len(centre) != 3 or not all(math.isfinite(v) for v in centre):
            raise MarkerError(f"{label}: centre {self.centre_mm!r} is not a 3D point")
        try:
            diameter = float(self.diameter_mm)
        except (TypeError, ValueError) as exc:
            raise MarkerError(f"{label}: diameter {self.diameter_mm!r} is not a number") from exc
        if not (math.isfinite(diameter) and 0 < diameter <= MAX_DIAMETER_MM):
            raise MarkerError(f"{label}: diameter {self.diameter_mm!r} mm is not in (0, {MAX_DIAMETER_MM:g}]")
        object.__setattr__(self, "centre_mm", centre)
        object.__setattr__(self, "diameter_mm", diameter)
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "notes", str(self.notes))

    def to_inference(self) -> Marker:
        from core.nodule.prediction import Marker

        return Marker(self.id, self.centre_mm, self.diameter_mm)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "center_mm": list(self.centre_mm),
            "diameter_mm": self.diameter_mm,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NoduleMarker:
        """One entry of ``markers.json``; MarkerError says which key or value is wrong."""
        if not isinstance(data, Mapping):
            raise MarkerError(f"is not a JSON object but {type(data).__name__}")
        if "id" not in data:
            raise MarkerError("has no 'id'")
        marker_id = data["id"]
        if isinstance(marker_id, bool) or not isinstance(marker_id, str | int):
            raise MarkerError(f"id {marker_id!r} is not text")
        name, notes = data.get("name", ""), data.get("notes", "")
        label = f"marker {name or marker_id}"
        if not isinstance(name, str) or not isinstance(notes, str):
            raise MarkerError(f"{label}: name and notes must be text")
        if "center_mm" in data and "centre_mm" in data and data["center_mm"] != data["centre_mm"]:
            raise MarkerError(f"{label}: center_mm and centre_mm disagree (give one)")
        if "center_mm" not in data and "centre_mm" not in data:
            raise MarkerError(f"{label}: has no 'center_mm'")
        if "diameter_mm" not in data:
            raise MarkerError(f"{label}: has no 'diameter_mm'")
        centre, diameter = data.get("center_mm", data.get("centre_mm")), data["diameter_mm"]
        if not isinstance(centre, list | tuple):
            raise MarkerError(f"{label}: center_mm {centre!r} is not a 3D point")
        if isinstance(diameter, bool) or not isinstance(diameter, int | float):
            raise MarkerError(f"{label}: diameter_mm {diameter!r} is not a number")
        return cls(id=str(marker_id), name=name, centre_mm=tuple(centre), diameter_mm=diameter, notes=notes)


class MarkerSet:
    """The markers of one series, in the reader's order; ids unique. No signals: the app wraps it.

    Unknown ids raise KeyError; adding an id already present raises MarkerError.
    """

    def __init__(self, markers: Iterable[NoduleMarker] = ()) -> None:
        self._markers: list[NoduleMarker] = []
        for marker in markers:
            self.add(marker)

    def __iter__(self) -> Iterator[NoduleMarker]:
        return iter(tuple(self._markers))

    def __len__(self) -> int:
        return len(self._markers)

    def __contains__(self, marker_id: object) -> bool:
        if isinstance(marker_id, NoduleMarker):
            marker_id = marker_id.id
        return any(m.id == marker_id for m in self._markers)

    def __repr__(self) -> str:
        return f"MarkerSet({[m.name or m.id for m in self._markers]})"

    @property
    def markers(self) -> tuple[NoduleMarker, ...]:
        return tuple(self._markers)

    def index(self, marker_id: str) -> int:
        for i, marker in enumerate(self._markers):
            if marker.id == marker_id:
                return i
        raise KeyError(f"no marker with id {marker_id!r}")

    def get(self, marker_id: str) -> NoduleMarker:
        return self._markers[self.index(marker_id)]

    def add(self, marker: NoduleMarker, index: int | None = None) -> None:
        """Append, or insert at ``index`` (how an undone removal puts a marker back in its place)."""
        if not isinstance(marker, NoduleMarker):
            raise TypeError(f"expected a NoduleMarker, got {type(marker).__name__}")
        if marker.id in self:
            raise MarkerError(f"marker {marker.name or marker.id}: id {marker.id!r} is already in use")
        if index is None:
            self._markers.append(marker)
        else:
            self._markers.insert(index, marker)

    def remove(self, marker_id: str) -> tuple[int, NoduleMarker]:
        """Remove a marker; returns where it was and what it was, for undo."""
        index = self.index(marker_id)
        return index, self._markers.pop(index)

    def replace(self, marker: NoduleMarker) -> NoduleMarker:
        """Put ``marker`` in place of the one with its id (moved, resized, renamed); returns the old one."""
        index = self.index(marker.id)
        old, self._markers[index] = self._markers[index], marker
        return old

    def new_marker(
        self, centre_mm: Sequence[float], diameter_mm: float = DEFAULT_DIAMETER_MM
    ) -> NoduleMarker:
        """A new marker with a fresh id and the first free name N1, N2, ...; NOT added to the set."""
        used = {m.name for m in self._markers}
        number = 1
        while f"N{number}" in used:
            number += 1
        return NoduleMarker(
            id=uuid.uuid4().hex,
            name=f"N{number}",
            centre_mm=tuple(centre_mm),  # type: ignore[arg-type]
            diameter_mm=diameter_mm,
        )


def check_inside(volume: CTVolume, centre_mm: Sequence[float]) -> None:
    """MarkerError, in words a reader understands, when ``centre_mm`` is not inside ``volume``."""
    import numpy as np

    point = np.asarray(centre_mm, dtype=np.float64)
    if point.shape == (3,) and np.all(np.isfinite(point)) and volume.contains_mm(point):
        return
    z, y, x = volume.shape
    corners = np.array(
        [[i, j, k] for i in (-0.5, x - 0.5) for j in (-0.5, y - 0.5) for k in (-0.5, z - 0.5)], np.float64
    )
    lps = volume.voxel_to_mm(corners)
    low, high = lps.min(axis=0), lps.max(axis=0)
    extent = ", ".join(f"{axis} from {a:.1f} to {b:.1f}" for axis, a, b in zip("xyz", low, high, strict=True))
    where = ", ".join(f"{v:.1f}" for v in point.ravel())
    raise MarkerError(f"marker at ({where}) mm is outside the series ({extent} mm)")


def read_markers(path: str | Path) -> list[NoduleMarker]:
    """The markers of a ``markers.json``; MarkerError names the file and the reason."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise MarkerError(f"{path}: no such markers file") from exc
    except IsADirectoryError as exc:
        raise MarkerError(f"{path}: is a folder, not a markers file") from exc
    except OSError as exc:
        raise MarkerError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise MarkerError(f"{path}: not a markers file (not UTF-8 text)") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MarkerError(
            f"{path}: not a markers file (invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from exc
    if isinstance(data, dict) and "markers" not in data:
        data = _from_ground_truth(data)
    if not isinstance(data, dict) or not isinstance(data.get("markers"), list):
        raise MarkerError(f'{path}: not a markers file (no "markers" list)')
    if data.get("schema", SCHEMA) != SCHEMA:
        raise MarkerError(f"{path}: not a markers file (schema {data.get('schema')!r}, expected {SCHEMA!r})")
    markers: list[NoduleMarker] = []
    for number, entry in enumerate(data["markers"], start=1):
        try:
            markers.append(NoduleMarker.from_dict(entry))
        except MarkerError as exc:
            reason = str(exc) if str(exc).startswith("marker ") else f"marker #{number} {exc}"
            raise MarkerError(f"{path}: {reason}") from exc
    try:
        _check_unique(markers)
    except MarkerError as exc:
        raise MarkerError(f"{path}: {exc}") from exc
    return markers


def _from_ground_truth(data: dict) -> dict:
    """A phantom's ``ground_truth.json`` as a markers document (its nodules n1, n2, ...); anything
    else unchanged."""
    nodules = data.get("nodules")
    if data.get("schema") != TRUTH_SCHEMA or not isinstance(nodules, list):
        return data
    return {"markers": [markers_entry(n) if isinstance(n, dict) else n for n in nodules]}


def markers_entry(nodule: Mapping) -> dict:
    """One ground-truth nodule (id, centre_mm, diameter_mm) as a ``markers.json`` entry."""
    return {k: v for k, v in nodule.items() if k in ("id", "centre_mm", "diameter_mm")} | {
        "name": str(nodule.get("id", ""))
    }


def write_markers(path: str | Path, markers: Iterable[NoduleMarker]) -> None:
    """Write ``markers.json`` atomically (the previous file survives any failure)."""
    markers = list(markers)
    _check_unique(markers)
    document = {"schema": SCHEMA, "markers": [m.to_dict() for m in markers]}
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def _check_unique(markers: Sequence[NoduleMarker]) -> None:
    seen: set[str] = set()
    for marker in markers:
        if marker.id in seen:
            raise MarkerError(f"duplicate marker id {marker.id!r}")
        seen.add(marker.id)
