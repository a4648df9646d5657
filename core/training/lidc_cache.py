"""A local LIDC-IDRI copy -> a cache of model inputs cut from the real CT pixels, one file per patient.

``prepare`` walks the download with ``core.lidc.importer`` (series found, readers' XML matched,
marks grouped into nodules with consensus masks and mean ratings), applies the paper's selection and
cuts each selected nodule's patches with ``core.model.patches.extract_patches`` at the nodule's centre:

* nodules >= ``min_diameter_mm`` (3 mm, as the paper) marked by >= ``min_readers`` readers;
* mean malignancy < 3 benign (0), > 3 malignant (1), exactly 3 indeterminate (-1): kept, left out of
  classification and ranking, used for the attributes (as ``core.training.data`` labels them).

The cache folder holds ``<patient>.npz`` (a ``NoduleDataset`` in float16, written atomically) and
``manifest.json``: the settings, and per patient its status, series, counts and problems. Running
again skips every patient already done with the same settings and the same series, and retries the
failed ones; a bad or missing patient is reported and skipped, never fatal. Patients run in parallel
worker processes. ``load_prepared`` reads the cache back by the fixed patient splits of
``core.lidc.splits`` (train 0001-0700, val 0701-0850, reserved test 0851-1012).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.lidc.records import LidcNodule
from core.lidc.splits import SPLITS, split_of
from core.model.patches import PatchConfig, extract_patches
from core.nodule.ratings import ATTRIBUTES, to_unit_scale
from core.training.data import LABELS, NoduleDataset

CACHE_FORMAT = "mtmr-reader/lidc-cache/1"
MANIFEST = "manifest.json"
_SAVE_EVERY_S = 2.0  # the manifest is rewritten at most this often while patients finish


class CacheError(Exception):
    """A prepared cache that cannot be read: names the folder or file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that shapes a patient's file; a change makes ``prepare`` cut the patient again."""

    patch: PatchConfig = field(default_factory=PatchConfig)
    min_diameter_mm: float = 3.0
    min_readers: int = 1

    def to_dict(self) -> dict:
        return {
            "format": CACHE_FORMAT,
            "patch": self.patch.to_dict(),
            "min_diameter_mm": self.min_diameter_mm,
            "min_readers": self.min_readers,
        }

    def key(self) -> str:
        return hashlib.sha256(
            json.dumps(self.to_dict(), sort_keys=True, allow_nan=False).encode()
        ).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict) -> PrepareSettings:
        patch = PatchConfig.from_dict(data["patch"])
        return cls(patch, float(data["min_diameter_mm"]), int(data["min_readers"]))


@dataclass(frozen=True)
class PatientResult:
    """One patient's outcome. ``status``: "done" (cut now), "resumed" (done before) or "failed"."""

    patient_id: str
    status: str
    series: tuple[str, ...] = ()
    nodules: int = 0
    slices: int = 0
    labels: dict[str, int] = field(default_factory=dict)  # benign / malignant / indeterminate
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> nodules left out
    problems: tuple[str, ...] = ()  # the importer's and ours; the patient is still usable
    error: str = ""  # why it failed
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"series": list(self.series), "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, data: dict, status: str | None = None) -> PatientResult:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known |= {"series": tuple(data.get("series", ())), "problems": tuple(data.get("problems", ()))}
        return cls(**known | ({"status": status} if status else {}))


@dataclass
class PrepareReport:
    out_dir: Path
    settings: PrepareSettings
    patients: list[PatientResult]
    problems: list[str]  # found while walking the folder (files that are no CT series, ...)
    seconds: float = 0.0

    def with_status(self, status: str) -> list[PatientResult]:
        return [p for p in self.patients if p.status == status]

    @property
    def failed(self) -> list[PatientResult]:
        return self.with_status("failed")

    @property
    def usable(self) -> list[PatientResult]:
        return [p for p in self.patients if p.status in ("done", "resumed")]

    def labels(self) -> dict[str, int]:
        total: Counter = Counter()
        for patient in self.usable:
            total.update(patient.labels)
        return {name: total.get(name, 0) for name in LABELS}

    def summary(self) -> str:
        labels = self.labels()
        return (
            f"{len(self.usable)} patients prepared ({len(self.with_status('done'))} now, "
            f"{len(self.with_status('resumed'))} already done), {len(self.failed)} failed; "
            f"{sum(p.nodules for p in self.usable)} nodules ({labels['benign']} benign, "
            f"{labels['malignant']} malignant, {labels['indeterminate']} indeterminate), "
            f"{sum(p.slices for p in self.usable)} slices -> {self.out_dir} ({self.seconds:.0f} s)"
        )


# -- preparing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """What a worker process needs for one patient (picklable: the importer's functions by name)."""

    patient_id: str
    series: tuple
    settings: PrepareSettings
    path: Path
    import_series: Callable
    centre_of: Callable


def _importer():
    """``core.lidc.importer``, looked up at call time (the tests put a fake in its place)."""
    from core.lidc import importer

    return importer


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def patient_file(patient_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", patient_id) + ".npz"


def prepare(
    root: str | Path,
    out_dir: str | Path,
    patch: PatchConfig | None = None,
    min_diameter_mm: float = 3.0,
    min_readers: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int, PatientResult], None] | None = None,
) -> PrepareReport:
    """Cut every selected nodule of every patient under ``root`` into ``out_dir`` (see module docstring).

    ``progress(done, total, result)`` is called in this process as each patient ends (resumed ones
    first). With ``workers`` > 1 the patients run in spawned processes: a script calling this needs
    the ``if __name__ == "__main__":`` guard. Raises ``CacheError`` only when ``root`` is no folder
    or ``out_dir`` cannot be created; everything about a patient is reported in its ``PatientResult``.
    """
    started = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise CacheError(root, "no such folder")
    settings = PrepareSettings(patch or PatchConfig(), float(min_diameter_mm), int(min_readers))
    if settings.min_readers < 1 or settings.min_diameter_mm < 0:
        raise ValueError("min_readers must be >= 1 and min_diameter_mm >= 0")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(out_dir, f"cannot create the cache folder ({exc.strerror or exc})") from exc
    importer = _importer()
    found, problems = importer.find_series(root)
    by_patient: dict[str, list] = {}
    for item in found:
        by_patient.setdefault(item.patient_id, []).append(item)
    manifest = _start_manifest(out_dir, settings, root, list(problems))
    entries = manifest["patients"]
    results: list[PatientResult] = []
    tasks: list[_Task] = []
    for patient_id in sorted(by_patient):
        items = tuple(sorted(by_patient[patient_id], key=lambda s: s.series_uid))
        series = tuple(item.series_uid for item in items)
        entry = entries.get(patient_id)
        if (
            entry is not None
            and entry.get("status") == "done"
            and entry.get("settings_key") == settings.key()
            and tuple(entry.get("series", ())) == series
            and (out_dir / entry.get("file", "")).is_file()
        ):
            results.append(PatientResult.from_dict(entry | {"patient_id": patient_id}, status="resumed"))
            continue
        path = out_dir / patient_file(patient_id)
        tasks.append(
            _Task(patient_id, items, settings, path, importer.import_series, importer.nodule_centre_lps)
        )
    total = len(by_patient)
    if progress is not None:
        for done, result in enumerate(results, 1):
            progress(done, total, result)
    writer = _ManifestWriter(out_dir / MANIFEST, manifest, settings)
    try:
        for result in _run(tasks, workers or default_workers()):
            results.append(result)
            writer.record(result)
            if progress is not None:
                progress(len(results), total, result)
    finally:
        writer.flush()
    results.sort(key=lambda r: r.patient_id)
    return PrepareReport(out_dir, settings, results, list(problems), time.perf_counter() - started)


def _run(tasks: Sequence[_Task], workers: int):
    """Yield each task's result as it ends: in this process for one worker, else in a process pool."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield prepare_patient(task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn: the same start on every platform, and no fork of a process that may hold threads.
    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(prepare_patient, task): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except BrokenProcessPool:  # a worker died (out of memory?): the remaining tasks are lost
                yield _failed(
                    task, "a worker process died (out of memory?); run prepare again, or with 1 worker"
                )
            except Exception as exc:  # a result that cannot come back (pickling...): that patient only
                yield _failed(task, _describe(exc))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _failed(task: _Task, error: str, seconds: float = 0.0) -> PatientResult:
    series = tuple(item.series_uid for item in task.series)
    return PatientResult(task.patient_id, "failed", series, error=error, seconds=round(seconds, 2))


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if exc.__class__.__name__ in text else f"{exc.__class__.__name__}: {text}"


def prepare_patient(task: _Task) -> PatientResult:
    """Import a patient's series, select and cut its nodules, save its file; never raises."""
    started = time.perf_counter()
    settings = task.settings
    kept: list[tuple[LidcNodule, np.ndarray]] = []
    excluded: Counter = Counter()
    problems: list[str] = []
    try:
        for item in task.series:
            study = task.import_series(item, min_readers=1)  # the reader filter is ours: it is counted
            problems += [
                p if item.series_uid in p else f"series {item.series_uid}: {p}" for p in study.problems
            ]
            for nodule in study.nodules:
                if nodule.diameter_mm < settings.min_diameter_mm:
                    excluded["under_min_diameter"] += 1
                    continue
                if nodule.n_readers < settings.min_readers:
                    excluded["under_min_readers"] += 1
                    continue
                try:
                    # the real slice positions, where the importer gives them (unevenly spaced series)
                    centre = task.centre_of(study.volume, nodule, getattr(study, "slice_z", None))
                    stack = extract_patches(study.volume, centre, nodule.diameter_mm, settings.patch)
                except ValueError as exc:  # a centre outside the pixels: that nodule only
                    excluded["outside_volume"] += 1
                    problems.append(f"{nodule.nodule_id}: {exc}")
                    continue
                kept.append((nodule, stack.astype(np.float16)))
            del study
        dataset = _dataset(task.patient_id, kept, settings.patch)
        dataset.save(task.path)
    except Exception as exc:  # a bad patient is reported and skipped, whatever went wrong
        return _failed(task, _describe(exc), time.perf_counter() - started)
    labels = Counter(nodule.label for nodule, _ in kept)
    return PatientResult(
        task.patient_id,
        "done",
        tuple(item.series_uid for item in task.series),
        nodules=len(kept),
        slices=len(dataset.patches),
        labels={name: labels.get(name, 0) for name in LABELS},
        excluded=dict(sorted(excluded.items())),
        problems=tuple(problems),
        seconds=round(time.perf_counter() - started, 2),
    )


def _dataset(patient_id: str, kept: list[tuple[LidcNodule, np.ndarray]], patch: PatchConfig) -> NoduleDataset:
    nodules = [nodule for nodule, _ in kept]
    stacks = [stack for _, stack in kept]
    ratings = np.array([[n.mean_ratings[a] for a in ATTRIBUTES] for n in nodules], np.float64)
    return NoduleDataset(
        patches=np.concatenate(stacks).astype(np.float16)
        if stacks
        else np.zeros((0, patch.channels, patch.size, patch.size), np.float16),
        nodule_index=np.concatenate([np.full(len(s), i, np.int32) for i, s in enumerate(stacks)])
        if stacks
        else np.zeros(0, np.int32),
        variant=np.zeros(sum(len(s) for s in stacks), np.int16),
        labels=np.array([LABELS[n.label] for n in nodules], np.int8),
        attributes=to_unit_scale(ratings.reshape(-1, len(ATTRIBUTES))).astype(np.float32),
        diameters=np.array([n.diameter_mm for n in nodules], np.float32),
        nodule_ids=np.array([n.nodule_id for n in nodules], dtype=str),
        patient_ids=np.array([patient_id] * len(nodules), dtype=str),
    )


# -- the manifest ----------------------------------------------------------------------------------


def _start_manifest(out_dir: Path, settings: PrepareSettings, root: Path, problems: list[str]) -> dict:
    path = out_dir / MANIFEST
    manifest = {"patients": {}}
    if path.is_file():
        manifest = read_manifest(out_dir)
        if manifest.get("settings_key") != settings.key():  # other settings: every file is out of date
            for entry in manifest["patients"].values():
                if entry.get("status") == "done":
                    entry["status"] = "stale"
    return {
        "format": CACHE_FORMAT,
        "settings": settings.to_dict(),
        "settings_key": settings.key(),
        "root": str(root.resolve()),
        "problems": problems,
        "patients": manifest["patients"],
    }


class _ManifestWriter:
    def __init__(self, path: Path, manifest: dict, settings: PrepareSettings) -> None:
        self.path, self.manifest, self.key = path, manifest, settings.key()
        self.written = 0.0
        self.flush()

    def record(self, result: PatientResult) -> None:
        entry = result.to_dict()
        del entry["patient_id"]
        entry |= {"settings_key": self.key, "file": patient_file(result.patient_id)}
        self.manifest["patients"][result.patient_id] = entry
        if time.monotonic() - self.written > _SAVE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.manifest["patients"] = dict(sorted(self.manifest["patients"].items()))
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.manifest, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        self.written = time.monotonic()


def read_manifest(out_dir: str | Path) -> dict:
    """The cache's ``manifest.json``; raises ``CacheError`` when there is none or it is unreadable."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise CacheError(out_dir, f"not a prepared LIDC cache (no {MANIFEST}): run `lidc prepare` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheError(path, f"unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise CacheError(path, f"not a {CACHE_FORMAT} manifest")
    return manifest


def read_settings(out_dir: str | Path) -> PrepareSettings:
    """The settings the cache was prepared with (its ``patch`` is the model's preprocessing)."""
    manifest = read_manifest(out_dir)
    try:
        return PrepareSettings.from_dict(manifest["settings"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheError(Path(out_dir) / MANIFEST, f"settings unreadable ({exc})") from exc


# -- reading back ----------------------------------------------------------------------------------


def prepared_patients(out_dir: str | Path) -> list[str]:
    """The patients whose files are up to date with the cache's settings."""
    manifest = read_manifest(out_dir)
    return sorted(
        patient
        for patient, entry in manifest["patients"].items()
        if entry.get("status") == "done" and entry.get("settings_key") == manifest.get("settings_key")
    )


def _split_or_none(patient_id: str) -> str | None:
    try:
        return split_of(patient_id)
    except ValueError:  # not a LIDC-IDRI id: in no split
        return None


def load_prepared(
    out_dir: str | Path,
    split: str | Iterable[str] | None = None,
    patients: Iterable[str] | None = None,
) -> NoduleDataset:
    """The prepared patients of ``split`` (one of ``SPLITS`` or several; None: all) and/or of
    ``patients``, concatenated in patient order. ``patient_ids`` name each nodule's patient.

    Raises ``CacheError`` when the cache is unreadable, a named patient is not prepared, or nothing
    is selected.
    """
    from core.training.labelled import concatenate

    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    ready = prepared_patients(out_dir)
    chosen = list(ready)
    what = "the cache"
    if split is not None:
        wanted_splits = {split} if isinstance(split, str) else set(split)
        unknown = wanted_splits - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected some of {SPLITS}")
        chosen = [p for p in chosen if _split_or_none(p) in wanted_splits]
        what = f"the {'+'.join(s for s in SPLITS if s in wanted_splits)} split"
    if patients is not None:
        wanted = set(patients)
        missing = sorted(wanted - set(ready))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise CacheError(out_dir, f"not prepared (or prepared with other settings): {shown}")
        chosen = [p for p in chosen if p in wanted]
    if not chosen:
        raise CacheError(out_dir, f"no prepared patients in {what}")
    parts = []
    for patient in chosen:
        path = out_dir / manifest["patients"][patient]["file"]
        try:
            parts.append(NoduleDataset.load(path))
        except (OSError, ValueError, KeyError) as exc:
            raise CacheError(path, f"unreadable ({_describe(exc)}): run `lidc prepare` again") from exc
    data = concatenate(parts)
    if not len(data.labels):
        raise CacheError(out_dir, f"no nodules in the {len(chosen)} prepared patients of {what}")
    return data
