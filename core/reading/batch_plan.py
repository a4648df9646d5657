"""Which CT series under a folder ``main.py batch`` analyses, and with which markers.

Every CT series under ROOT is found by its headers (``core.dicom.catalogue``); its markers come from

1. the saved reading session of that series (``core.reading.session``, by StudyInstanceUID and
   SeriesInstanceUID) when it holds markers; the session's labels give the reader's malignancy;
2. otherwise the nearest ``markers.json`` (``core.nodule.markers``) in the series' folder or a folder
   above it, up to ROOT (a phantom's ``ground_truth.json`` serves where a folder has no
   ``markers.json``). One file serves one study: a file that several studies would share is refused,
   and when several CT series of one study share it, the largest series is used (as ``predict``).

``plan`` returns the jobs in folder order, what was skipped before any analysis (where, why) and notes;
nothing here loads images or runs the model (``core.report.batch_ranking`` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MARKERS_NAME = "markers.json"
TRUTH_NAME = "ground_truth.json"  # a phantom's (core.phantom.study), read as its nodules' markers


@dataclass
class Job:
    """One CT series to analyse and the markers to analyse on it."""

    study_uid: str
    series: object  # core.dicom.catalogue.SeriesEntry
    folder: Path
    source: str  # "session" | "markers.json" | "ground_truth.json"
    where: Path  # the session file or the markers file, for messages
    markers: list = field(default_factory=list)  # NoduleMarker
    labels: dict = field(default_factory=dict)  # marker id -> NoduleLabel


def plan(root: Path, progress=None) -> tuple[list[Job], list[tuple[Path, str]], list[str]]:
    """The series to analyse under ``root`` in folder order, what was skipped (where, why), and notes."""
    from core.dicom.catalogue import OTHER_SUFFIXES, catalogue
    from core.nodule.markers import MarkerError, read_markers
    from core.reading.session import SessionCorrupt, SessionStore

    found = catalogue(root, progress)
    skipped: list[tuple[Path, str]] = []
    notes: list[str] = []
    store = SessionStore()
    summaries = store.summaries()
    with_markers = {(s.study_uid, s.series_uid) for s in summaries if s.marker_count}
    readable = {s.path for s in summaries}

    # Files that look like images but are not readable DICOM: one line per folder.
    unreadable: dict[Path, list] = {}
    for entry in found.skipped:
        if entry.path.suffix.lower() not in OTHER_SUFFIXES:
            unreadable.setdefault(entry.path.parent, []).append(entry)
    for folder, entries in sorted(unreadable.items()):
        first = entries[0]
        skipped.append(
            (folder, f"{len(entries)} file(s) not analysable (e.g. {first.path.name}: {first.reason})")
        )

    jobs: list[Job] = []
    by_file: dict[Path, list[Job]] = {}
    beside_sessions: set[Path] = set()
    for patient in found.patients:
        for study in patient.studies:
            for series in study.series:
                if not series.is_ct:
                    continue
                folder = Path(os.path.commonpath([str(p.parent) for p in series.files]))
                markers_file = nearest_markers(folder, root)
                key = (study.study_uid, series.series_uid)
                session_path = store.path_for(*key)
                session = None
                if key in with_markers:
                    try:
                        session = store.load(*key)
                    except SessionCorrupt as exc:
                        skipped.append((session_path, str(exc)))
                elif session_path.exists() and session_path not in readable:
                    skipped.append((session_path, "the saved session of a series here cannot be read"))
                if session is not None and session.markers:
                    jobs.append(
                        Job(key[0], series, folder, "session", session_path, session.markers, session.labels)
                    )
                    if markers_file is not None:
                        beside_sessions.add(markers_file)
                elif markers_file is None:
                    skipped.append((folder, "CT series without markers (no saved session, no markers.json)"))
                else:
                    job = Job(key[0], series, folder, markers_file.name, markers_file)
                    by_file.setdefault(markers_file, []).append(job)

    for markers_file, claims in by_file.items():
        study_count = len({job.study_uid for job in claims})
        if study_count > 1:
            reason = (
                f"shared by {study_count} studies below it; a markers file belongs to one study: "
                "put one in each study's folder"
            )
            skipped.append((markers_file, reason))
            continue
        job = max(claims, key=lambda j: (j.series.n_images, j.series.rows * j.series.columns))
        for other in claims:
            if other is not job:
                notes.append(f"{other.folder}: not analysed, {markers_file} is used for a larger series")
        try:
            job.markers = read_markers(markers_file)
        except MarkerError as exc:
            skipped.append((markers_file, f"cannot be used ({_strip_path(str(exc), markers_file)})"))
            continue
        if not job.markers:
            skipped.append((markers_file, "holds no markers"))
            continue
        jobs.append(job)

    for markers_file in sorted(root.rglob(MARKERS_NAME)):
        if not markers_file.is_file() or markers_file in by_file:
            continue
        if markers_file in beside_sessions:
            notes.append(f"{markers_file}: not used, the series below it have saved sessions with markers")
        else:
            skipped.append((markers_file, "not used: no CT series in its folder or below"))
    jobs.sort(key=lambda j: (str(j.folder), j.series.series_uid))
    return jobs, skipped, notes


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def nearest_markers(folder: Path, root: Path) -> Path | None:
    """``markers.json`` (else a phantom's ``ground_truth.json``) in ``folder`` or the nearest folder
    above it, up to and including ``root``."""
    root = root.resolve()
    current = folder
    while True:
        here = current.resolve()
        if here != root and root not in here.parents:
            return None  # never look outside ROOT
        for name in (MARKERS_NAME, TRUTH_NAME):
            candidate = current / name
            if candidate.is_file():
                return candidate
        if here == root:
            return None
        current = current.parent
