"""``python main.py batch ROOT --out ranking.csv``: rank the marked nodules of every study under a folder.

Every CT series under ROOT is found by its headers (``core.dicom.catalogue``); its markers come from

1. the saved reading session of that series (``core.reading.session``, by StudyInstanceUID and
   SeriesInstanceUID) when it holds markers; the session's labels give the reader's malignancy;
2. otherwise the nearest ``markers.json`` (``core.nodule.markers``) in the series' folder or a folder above
   (a phantom's ``ground_truth.json`` serves where a folder has no ``markers.json``)
   it, up to ROOT. One file serves one study: a file that several studies would share is refused,
   and when several CT series of one study share it, the largest series is used (as ``predict``).

The model is loaded once; each series is loaded, analysed in one ``Predictor.predict`` call and
released before the next. A series that cannot be loaded, a markers file that cannot be used (a
marker outside the series included) or an unreadable session is reported on stderr (file and reason)
and skipped; it never stops the batch. Exit code 0 when at least one study was analysed, 2 when none
was (or ROOT, the output folder or the model cannot be used).

CSV columns (one row per nodule, most suspicious first; UTF-8, written atomically)::

    rank                    1 = highest malignancy probability across all studies
    rank_in_study           1 = highest within its study (same StudyInstanceUID)
    study                   anonymous study number, 1.. in the order of the studies' folders
    study_uid               StudyInstanceUID
    series_uid              SeriesInstanceUID
    marker_source           "session", "markers.json" or "ground_truth.json" (a phantom's)
    marker_id, marker_name  the marker's id and short name (N1, ...)
    location                side, zone and slice, e.g. "right upper zone, slice 87" (core.imaging.location)
    center_x_mm, center_y_mm, center_z_mm   marker centre, patient LPS mm
    diameter_mm             marker diameter
    malignancy_probability  the model's probability (4 decimals)
    uncertainty             spread of the slice/mirror probabilities (core.model.inference)
    subtlety, internal_structure, calcification, sphericity, margin, lobulation, spiculation, texture
                            the model's attribute ratings on the original LIDC scales (3 decimals)
    lung_rads, lung_rads_rule   Lung-RADS v2022 baseline estimate and the rule that fired
                                (core.nodule.lungrads)
    reader_malignancy       the session label's malignancy (1-5), empty without one
    reader_label            benign / indeterminate / malignant from that label, empty without one
    label_source            who gave the label: reader, lidc or phantom; empty without one
    model_name, model_version   from the model card
    weights_sha256          first 12 hex digits of the weights hash in the model card

No patient name, patient ID, date or folder name is ever written: studies are known by number and UID.
``--json`` writes the same rows (numbers as numbers) with the model's description and device.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from core.nodule.ratings import ATTRIBUTES

SCHEMA = "mtmr-reader/batch-ranking/1"
MARKERS_NAME = "markers.json"
TRUTH_NAME = "ground_truth.json"  # a phantom's (core.phantom.study), read as its nodules' markers
COLUMNS = (
    "rank",
    "rank_in_study",
    "study",
    "study_uid",
    "series_uid",
    "marker_source",
    "marker_id",
    "marker_name",
    "location",
    "center_x_mm",
    "center_y_mm",
    "center_z_mm",
    "diameter_mm",
    "malignancy_probability",
    "uncertainty",
    *ATTRIBUTES,
    "lung_rads",
    "lung_rads_rule",
    "reader_malignancy",
    "reader_label",
    "label_source",
    "model_name",
    "model_version",
    "weights_sha256",
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="rank the marked nodules of every study under a folder into one CSV"
    )
    parser.add_argument("root", help="folder to search for CT series (recursively)")
    parser.add_argument("--out", required=True, help="ranking CSV to write")
    parser.add_argument("--json", help="also write the ranking as JSON")
    parser.add_argument("--model", help="checkpoint (default: the built-in demo model)")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps"
    )
    parser.set_defaults(func=run)


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


class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, stream: TextIO, total: int, width: int = 24) -> None:
        self.stream, self.total, self.width = stream, total, width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.done = self.analysed = self.skipped = 0
        self.last = ""
        self._drawn = False

    def message(self, text: str) -> None:
        if self._drawn and self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        if self._drawn and self.tty:
            self._draw()
        self.stream.flush()

    def step(self, analysed: bool, name: str = "") -> None:
        """One study done (``analysed``) or skipped; ``name`` (its folder) ends the line."""
        self.done += 1
        if analysed:
            self.analysed += 1
        else:
            self.skipped += 1
        self.last = f": {name} {'analysed' if analysed else 'skipped'}" if name else ""
        self._draw()

    def _draw(self) -> None:
        filled = round(self.width * self.done / self.total) if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} studies ({self.analysed} analysed, {self.skipped} skipped)"
        line += self.last
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._drawn = True


def run(args: argparse.Namespace) -> int:
    from core.dicom.errors import StudyLoadError
    from core.model.checkpoints import CheckpointError
    from core.model.inference import Predictor
    from core.model.store import default_model_path

    err = sys.stderr
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root}: not a folder", file=err)
        return 2
    outputs = [Path(args.out)] + ([Path(args.json)] if args.json else [])
    for out in outputs:
        if not out.parent.is_dir():
            print(f"error: {out}: its folder {out.parent} does not exist", file=err)
            return 2
    try:
        predictor = Predictor(Path(args.model) if args.model else default_model_path(), device=args.device)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        print(f"error: the model cannot be used: {exc}", file=err)
        return 2

    print(f"batch: reading the headers of every file under {root} ...", file=err, flush=True)
    try:
        jobs, problems, notes = plan(root, _files_read)
    except (StudyLoadError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    for where, reason in problems:
        print(f"skipped: {where}: {reason}", file=err)
    for note in notes:
        print(f"note: {note}", file=err)
    if not jobs:
        print(f"error: no CT series with markers under {root}: nothing analysed, nothing written", file=err)
        return 2
    sessions = sum(job.source == "session" for job in jobs)
    print(
        f"batch: {len(jobs)} series with markers ({sessions} from saved sessions, "
        f"{len(jobs) - sessions} from markers files); model {predictor.description}; "
        f"device {predictor.device}",
        file=err,
        flush=True,
    )

    studies: dict[str, int] = {}
    for job in jobs:
        studies.setdefault(job.study_uid, len(studies) + 1)
    progress = Progress(err, len(jobs))
    rows: list[dict] = []
    for job in jobs:
        name = _relative(job.folder, root)
        try:
            rows += analyse(job, predictor, studies[job.study_uid])
        except (StudyLoadError, ValueError, OSError, MemoryError) as exc:
            progress.message(f"skipped: {job.folder}: {_reason(exc, job)}")
            progress.step(False, name)
            continue
        except Exception as exc:  # one study must never end the batch
            progress.message(f"skipped: {job.folder}: unexpected error ({exc.__class__.__name__}: {exc})")
            progress.step(False, name)
            continue
        progress.step(True, name)
    if progress.analysed == 0:
        print("error: no study could be analysed: no ranking written", file=err)
        return 2

    rows = rank(rows)
    try:
        write_csv(Path(args.out), rows)
        if args.json:
            write_json(Path(args.json), rows, predictor, progress)
    except OSError as exc:
        print(f"error: the ranking cannot be written: {exc}", file=err)
        return 2
    for note in predictor.notes:
        print(f"note: {note}", file=err)
    skipped = [f"{progress.skipped} skipped while analysing"] if progress.skipped else []
    if problems:
        skipped.append(f"{len(problems)} skipped before analysis, listed above")
    summary = f" ({'; '.join(skipped)})" if skipped else ""
    print(f"wrote {args.out}: {len(rows)} nodules from {progress.analysed} studies{summary}")
    for row in rows[:5]:
        print(
            f"{row['rank']}. study {row['study']} {row['marker_name'] or row['marker_id']}: "
            f"malignancy {row['malignancy_probability']:.2f} +/- {row['uncertainty']:.2f}"
        )
    return 0


def _relative(folder: Path, root: Path) -> str:
    """``folder`` as the progress line names it: below ROOT when it is, else as it is."""
    try:
        return str(folder.relative_to(root)) or "."
    except ValueError:
        return str(folder)


def _files_read(count: int) -> None:
    if count % 1000 == 0:
        print(f"  {count} files read", file=sys.stderr, flush=True)


def _reason(exc: BaseException, job: Job) -> str:
    from core.dicom.errors import StudyLoadError

    if isinstance(exc, StudyLoadError):
        return f"cannot be loaded ({exc})"
    if isinstance(exc, MemoryError):
        return "not enough memory to load the series"
    return f"markers from {job.where} cannot be used ({exc})"


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
                markers_file = _nearest_markers(folder, root)
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


def _nearest_markers(folder: Path, root: Path) -> Path | None:
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


def analyse(job: Job, predictor, study_number: int) -> list[dict]:
    """Load the series, check the markers lie inside it, predict once, and build its rows."""
    from core.dicom.series import load_series
    from core.imaging.location import LungMap
    from core.nodule.lungrads import nodule_category
    from core.nodule.markers import check_inside

    volume = load_series(job.series.files)
    for marker in job.markers:
        try:
            check_inside(volume, marker.centre_mm)
        except ValueError as exc:
            raise ValueError(f"{marker.name or marker.id}: {exc}") from exc
    results = predictor.predict(volume, [m.to_inference() for m in job.markers])
    lungs = LungMap(volume)
    card = predictor.card
    rows = []
    for marker, result in zip(job.markers, results, strict=True):
        label = job.labels.get(marker.id)
        category = nodule_category(marker.diameter_mm, result.attributes, label.attributes if label else None)
        rads, rule = (category.category, category.rule) if category else ("", "not assessed")
        x, y, z = marker.centre_mm
        rows.append(
            {
                "rank": 0,
                "rank_in_study": 0,
                "study": study_number,
                "study_uid": job.study_uid,
                "series_uid": job.series.series_uid,
                "marker_source": job.source,
                "marker_id": marker.id,
                "marker_name": marker.name,
                "location": lungs.describe(marker.centre_mm).text,
                "center_x_mm": round(x, 2),
                "center_y_mm": round(y, 2),
                "center_z_mm": round(z, 2),
                "diameter_mm": round(marker.diameter_mm, 2),
                "malignancy_probability": round(result.malignancy, 4),
                "uncertainty": round(result.uncertainty, 4),
                **{name: round(result.attributes[name], 3) for name in ATTRIBUTES},
                "lung_rads": rads,
                "lung_rads_rule": rule,
                "reader_malignancy": None if label is None else label.malignancy,
                "reader_label": None if label is None else label.classification,
                "label_source": None if label is None else label.source,
                "model_name": card.get("name", ""),
                "model_version": card.get("version", ""),
                "weights_sha256": str(card.get("weights_sha256", ""))[:12],
                "_malignancy": result.malignancy,  # unrounded, for ranking
            }
        )
    return rows


def rank(rows: Sequence[dict]) -> list[dict]:
    """Rows most suspicious first, with ``rank`` (all studies) and ``rank_in_study`` filled in."""
    ordered = sorted(rows, key=lambda r: (-r["_malignancy"], r["study"]))
    per_study: dict[int, int] = {}
    ranked = []
    for position, row in enumerate(ordered, start=1):
        per_study[row["study"]] = per_study.get(row["study"], 0) + 1
        row = {k: v for k, v in row.items() if not k.startswith("_")}
        row["rank"], row["rank_in_study"] = position, per_study[row["study"]]
        ranked.append(row)
    return ranked


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    from core.util.atomic import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, rows: Sequence[dict], predictor, progress: Progress) -> None:
    from core.util.atomic import atomic_write_text

    document = {
        "schema": SCHEMA,
        "model": predictor.description,
        "weights_sha256": predictor.card.get("weights_sha256"),
        "device": predictor.device,
        "notes": list(predictor.notes),
        "studies_analysed": progress.analysed,
        "columns": list(COLUMNS),
        "nodules": [{k: row[k] for k in COLUMNS} for row in rows],
    }
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
