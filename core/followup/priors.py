"""Where a patient's other studies come from, and which of them is the prior.

One interface, ``StudySource`` (a Protocol): ``studies(patient)`` lists the studies a source knows
that may be the patient's (a superset is fine: a folder lists what it holds, a PACS answers
by Patient ID and by name), each a ``StudyRef`` with its study UID, date, description,
the patient identity of its header and where to open it. Sources: ``CatalogueSource`` (the folder a
study was opened from, ``core.dicom.catalogue``) and ``SessionSource`` (the sessions behind the
worklist); ``core.followup.pacs_priors.PacsSource`` (a PACS node, queried by Patient ID and by name) is
a third, listed last so that a study already here is opened from here.

``find_priors`` keeps the studies of the same patient: the same Patient ID, name and birth date. A study
that agrees on the Patient ID, or on the name and birth date, but not on all three (or lacks one of them)
is listed as needing confirmation, with the fields that disagree, never paired silently. The list runs
from the newest study to the oldest (undated ones last); the default prior is the most recent study
dated before the current one that matches on all three. Messages name fields, never their values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.dicom.catalogue import Catalogue, iter_files
from core.dicom.errors import StudyLoadError
from core.dicom.headers import read_descriptive
from core.followup.growth import study_date

HEADER_TRIES = 50  # files of a session's source read at most to find one header of its study


@dataclass(frozen=True)
class PatientIdentity:
    patient_id: str
    name: str  # DICOM PN, "FAMILY^GIVEN^..."
    birth_date: str  # DICOM DA, "" when absent

    @classmethod
    def of(cls, dataset: Any) -> PatientIdentity:
        """From a pydicom dataset's PatientID, PatientName and PatientBirthDate."""
        return cls(
            *(str(dataset.get(k, "") or "").strip() for k in ("PatientID", "PatientName", "PatientBirthDate"))
        )

    def mismatches(self, other: PatientIdentity) -> tuple[str, ...]:
        """The fields that do not agree, or cannot be compared because one side lacks them."""
        found = []
        for label, mine, theirs in (
            ("Patient ID", self.patient_id, other.patient_id),
            ("name", _name(self.name), _name(other.name)),
            ("birth date", self.birth_date, other.birth_date),
        ):
            if not mine or not theirs:
                found.append(f"{label} missing")
            elif mine != theirs:
                found.append(f"{label} differs")
        return tuple(found)


@dataclass(frozen=True)
class StudyRef:
    study_uid: str
    date: str  # DICOM DA (StudyDate, else AcquisitionDate); "" when unknown
    description: str
    location: str  # where to open it: a folder or file of this workstation; "" while only on a PACS
    patient: PatientIdentity
    source: str  # which StudySource listed it: "folder", "sessions", "PACS <node>"
    node: Any = None  # the PACS node (``core.pacs.nodes``) to retrieve it from; None: it is local


class StudySource(Protocol):
    """Anything that can list a patient's studies; ``problems`` says, without patient data, what it
    could not read."""

    name: str
    problems: list[str]

    def studies(self, patient: PatientIdentity) -> Iterable[StudyRef]: ...


@dataclass(frozen=True)
class PriorCandidate:
    study: StudyRef
    mismatches: tuple[str, ...]  # empty: the same patient by ID, name and birth date

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.mismatches)


@dataclass(frozen=True)
class Priors:
    candidates: tuple[PriorCandidate, ...]  # newest first, undated last
    default: PriorCandidate | None  # the most recent earlier study that matches on all three
    problems: tuple[str, ...] = ()


def find_priors(
    patient: PatientIdentity, current_uid: str, current_date: str, sources: Sequence[StudySource]
) -> Priors:
    """The other studies of ``patient`` that ``sources`` know (see the module docstring). A study listed
    by two sources is kept once, as the first source lists it."""
    seen: set[str] = {current_uid}
    candidates = []
    for source in sources:
        for study in source.studies(patient):
            if study.study_uid in seen:
                continue
            mismatches = patient.mismatches(study.patient)
            same_id = "Patient ID differs" not in mismatches and "Patient ID missing" not in mismatches
            same_person = not any(m.startswith(("name", "birth date")) for m in mismatches)
            if same_id or same_person:
                seen.add(study.study_uid)
                candidates.append(PriorCandidate(study, mismatches))
    candidates.sort(key=lambda c: c.study.date or "", reverse=True)
    candidates.sort(key=lambda c: not c.study.date)
    earlier = [c for c in candidates if c.study.date and current_date and c.study.date < current_date]
    default = next((c for c in earlier if not c.needs_confirmation), None)
    problems = tuple(problem for source in sources for problem in source.problems)
    return Priors(tuple(candidates), default, problems)


@dataclass
class CatalogueSource:
    """The studies of a catalogued folder (``core.dicom.catalogue``)."""

    catalogue: Catalogue
    name: str = "folder"
    problems: list[str] = field(default_factory=list)

    def studies(self, patient: PatientIdentity) -> Iterable[StudyRef]:
        wanted = (patient.patient_id, _name(patient.name))
        for entry in self.catalogue.patients:
            if entry.patient_id != wanted[0] and _name(entry.name) != wanted[1]:
                continue  # neither the ID nor the name: not worth reading its headers again
            for study in entry.studies:
                files = [path for series in study.series for path in series.files]
                if not files:
                    continue
                header = _header(files[:1], study.study_uid)
                if header is None:
                    self.problems.append("a study of the folder could not be read again: it is not listed")
                    continue
                location = os.path.commonpath([str(path.parent) for path in files])
                yield study_ref(header, location, self.name)


@dataclass
class SessionSource:
    """The studies with a saved session (the worklist): each is read from where it was opened."""

    entries: Sequence[tuple[str, str]]  # (study UID, source path) of each session
    name: str = "sessions"
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_store(cls, store: Any) -> SessionSource:
        """From a ``core.reading.session.SessionStore`` (anything with ``summaries()`` whose items have
        ``study_uid`` and ``path``); sessions that cannot be read are counted in ``problems``."""
        entries, unreadable = [], 0
        for summary in store.summaries():
            try:
                source = json.loads(Path(summary.path).read_bytes()).get("source", "")
            except (OSError, ValueError, AttributeError):
                unreadable += 1
                continue
            if isinstance(source, str) and source:
                entries.append((summary.study_uid, source))
        found = cls(entries)
        if unreadable:
            found.problems.append(f"{unreadable} saved session(s) could not be read")
        return found

    def studies(self, patient: PatientIdentity) -> Iterable[StudyRef]:
        missing = 0  # sessions hold no patient data: each study's header says whose it is
        for study_uid, source in self.entries:
            try:
                header = _header(iter_files(source), study_uid)
            except StudyLoadError:
                header = None
            if header is None:
                missing += 1
                continue
            yield study_ref(header, source, self.name)
        if missing:
            self.problems.append(
                f"{missing} session(s) not considered: the study is no longer readable as DICOM where it "
                "was opened from"
            )


def study_ref(header: Any, location: str, source: str) -> StudyRef:
    try:
        date = study_date(
            str(header.get("StudyDate", "") or ""), str(header.get("AcquisitionDate", "") or "")
        )
    except ValueError:
        date = None  # listed as undated: never the default prior
    return StudyRef(
        str(header.get("StudyInstanceUID", "")),
        "" if date is None else date.strftime("%Y%m%d"),
        str(header.get("StudyDescription", "") or ""),
        location,
        PatientIdentity.of(header),
        source,
    )


def _header(paths: Iterable[Path], study_uid: str) -> Any | None:
    """The header of the first of ``paths`` (up to ``HEADER_TRIES``) that belongs to ``study_uid``."""
    for count, path in enumerate(paths):
        if count >= HEADER_TRIES:
            break
        try:
            header = read_descriptive(path)
        except StudyLoadError:
            continue
        if str(header.get("StudyInstanceUID", "")) == study_uid:
            return header
    return None


def _name(value: str) -> str:
    """A person name compared as a reader would: case, spaces and empty trailing components ignored."""
    parts = [" ".join(part.split()).casefold() for part in value.split("^")]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)
