"""Pair the prior study's nodules with the current study's: by distance after registration, within a gate
that grows with the nodule's size, one-to-one (Hungarian assignment), with the reader's overrides.

The prior centres are carried into the current frame by ``transform`` (the registration; identity by
default). A prior and a current nodule may pair when their registered distance is within
``gate_mm(prior, current)``: ``GATE_BASE_MM`` plus ``GATE_PER_DIAMETER`` times the larger diameter,
since a large nodule's centre moves more with segmentation and registration error than a small one's.
Among the pairs within their gates the assignment takes as many as possible and, among those, the
smallest summed distance (``scipy.optimize.linear_sum_assignment``): a greedy nearest-first pairing
would steal a neighbour's partner when the patient shifted by about the nodules' spacing.
Unpaired current nodules are "new", unpaired prior ones "resolved / not found".

The reader's ``Overrides`` win: a manual pair is kept whatever its distance; an unpaired couple never
pairs automatically (``Overrides.pair`` and ``unpair`` make the next ones; ``nearest`` lists the
prior nodules to choose from). They are data: undo and saving are the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

GATE_BASE_MM = 5.0
GATE_PER_DIAMETER = 0.75

Point = tuple[float, float, float]
Transform = Callable[[Point], Sequence[float]]


@dataclass(frozen=True)
class Candidate:
    """One nodule of one study: its id, centre (mm, in its own study's patient frame) and diameter."""

    id: str
    centre_mm: Point
    diameter_mm: float

    def __post_init__(self) -> None:
        centre = tuple(float(v) for v in self.centre_mm)
        if len(centre) != 3 or not all(math.isfinite(v) for v in centre):
            raise ValueError(f"nodule {self.id}: centre must be three finite mm, not {self.centre_mm!r}")
        if not (math.isfinite(self.diameter_mm) and self.diameter_mm > 0):
            raise ValueError(f"nodule {self.id}: diameter must be a positive number of mm")
        object.__setattr__(self, "centre_mm", centre)


@dataclass(frozen=True)
class Pair:
    prior_id: str
    current_id: str
    distance_mm: float  # registered distance of the centres
    gate_mm: float
    manual: bool = False  # paired by the reader


@dataclass(frozen=True)
class Overrides:
    """The reader's corrections: ``pairs`` to keep, ``unpaired`` couples never to pair (prior, current)."""

    pairs: tuple[tuple[str, str], ...] = ()
    unpaired: tuple[tuple[str, str], ...] = ()

    def pair(self, prior_id: str, current_id: str) -> Overrides:
        """These two paired by the reader, whatever their distance: a hand-made pair of either with
        another nodule, and their own unpairing, go."""
        kept = tuple(p for p in self.pairs if p[0] != prior_id and p[1] != current_id)
        apart = tuple(p for p in self.unpaired if p != (prior_id, current_id))
        return Overrides((*kept, (prior_id, current_id)), apart)

    def unpair(self, prior_id: str, current_id: str) -> Overrides:
        """These two never paired again (the reader unpaired them), by hand or automatically."""
        kept = tuple(p for p in self.pairs if p != (prior_id, current_id))
        apart = tuple(p for p in self.unpaired if p != (prior_id, current_id))
        return Overrides(kept, (*apart, (prior_id, current_id)))

    def to_dict(self) -> dict:
        return {"pairs": [list(p) for p in self.pairs], "unpaired": [list(p) for p in self.unpaired]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Overrides:
        """ValueError when saved overrides are malformed (each entry a [prior id, current id] list)."""
        if not isinstance(data, Mapping):
            raise ValueError("saved nodule pairings are malformed (not an object)")
        found = []
        for key in ("pairs", "unpaired"):
            entries = data.get(key, [])
            ok = isinstance(entries, list) and all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(i, str) for i in e) for e in entries
            )
            if not ok:
                raise ValueError(f"saved nodule pairings are malformed ({key} is not a list of id pairs)")
            found.append(tuple((a, b) for a, b in entries))
        return cls(*found)


@dataclass(frozen=True)
class Matching:
    pairs: tuple[Pair, ...]
    new: tuple[str, ...]  # current ids without a prior
    resolved: tuple[str, ...]  # prior ids without a current nodule: resolved or not found


def nearest(priors: Mapping[str, Point], current_mm: Point, transform: Transform) -> list[tuple[str, float]]:
    """The prior nodules (id -> centre, prior mm) by their registered distance (mm) to a current point,
    nearest first: what the reader chooses from to pair a current nodule by hand."""
    here = np.asarray(current_mm, float)
    found = [(i, float(np.linalg.norm(np.asarray(transform(c), float) - here))) for i, c in priors.items()]
    return sorted(found, key=lambda item: item[1])


def gate_mm(prior: Candidate, current: Candidate) -> float:
    """How far apart (mm, after registration) two nodules may be and still be the same one."""
    return GATE_BASE_MM + GATE_PER_DIAMETER * max(prior.diameter_mm, current.diameter_mm)


def match(
    priors: Sequence[Candidate],
    currents: Sequence[Candidate],
    transform: Transform | None = None,
    overrides: Overrides | None = None,
) -> Matching:
    """Pair ``priors`` with ``currents`` (see the module docstring). ValueError on duplicate ids, an
    override naming an unknown nodule or pairing one nodule twice, or a transform giving no finite point."""
    prior_by_id, current_by_id = _by_id(priors, "prior"), _by_id(currents, "current")
    overrides = overrides or Overrides()
    moved = {c.id: _moved(c, transform) for c in priors}
    for prior_id, current_id in (*overrides.pairs, *overrides.unpaired):
        if prior_id not in prior_by_id or current_id not in current_by_id:
            raise ValueError(
                f"the pairing {prior_id} -> {current_id} names a nodule that is not in the studies"
            )
    manual_priors, manual_currents = _unique([p for p, _ in overrides.pairs], [c for _, c in overrides.pairs])
    pairs = [_pair(prior_by_id[p], current_by_id[c], moved[p], manual=True) for p, c in overrides.pairs]
    free_priors = [c for c in priors if c.id not in manual_priors]
    free_currents = [c for c in currents if c.id not in manual_currents]
    pairs += _assign(free_priors, free_currents, moved, set(overrides.unpaired))
    paired_priors = {p.prior_id for p in pairs}
    paired_currents = {p.current_id for p in pairs}
    return Matching(
        tuple(pairs),
        tuple(c.id for c in currents if c.id not in paired_currents),
        tuple(c.id for c in priors if c.id not in paired_priors),
    )


def _assign(
    priors: list[Candidate], currents: list[Candidate], moved: dict[str, np.ndarray], forbidden: set
) -> list[Pair]:
    if not priors or not currents:
        return []
    from scipy.optimize import linear_sum_assignment

    distance = np.array([[_distance(moved[p.id], c) for c in currents] for p in priors])
    gate = np.array([[gate_mm(p, c) for c in currents] for p in priors])
    allowed = distance <= gate
    for i, p in enumerate(priors):
        for j, c in enumerate(currents):
            if (p.id, c.id) in forbidden:
                allowed[i, j] = False
    # an infeasible couple costs more than all feasible ones together: the most pairs, then the closest
    infeasible = float(distance[allowed].sum()) + 1.0 if allowed.any() else 1.0
    rows, columns = linear_sum_assignment(np.where(allowed, distance, infeasible))
    return [
        _pair(priors[i], currents[j], moved[priors[i].id])
        for i, j in zip(rows, columns, strict=True)
        if allowed[i, j]
    ]


def _pair(prior: Candidate, current: Candidate, moved: np.ndarray, manual: bool = False) -> Pair:
    return Pair(prior.id, current.id, _distance(moved, current), gate_mm(prior, current), manual)


def _distance(moved: np.ndarray, current: Candidate) -> float:
    return float(np.linalg.norm(moved - np.asarray(current.centre_mm)))


def _moved(candidate: Candidate, transform: Transform | None) -> np.ndarray:
    point = np.asarray(candidate.centre_mm if transform is None else transform(candidate.centre_mm), float)
    if point.shape != (3,) or not np.isfinite(point).all():
        raise ValueError(f"the registration moved prior nodule {candidate.id} to no finite point")
    return point


def _by_id(candidates: Iterable[Candidate], which: str) -> dict[str, Candidate]:
    found: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.id in found:
            raise ValueError(f"two {which} nodules have the id {candidate.id}")
        found[candidate.id] = candidate
    return found


def _unique(priors: list[str], currents: list[str]) -> tuple[set[str], set[str]]:
    for ids, which in ((priors, "prior"), (currents, "current")):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"{which} nodule {twice[0]} is paired twice by hand")
    return set(priors), set(currents)
