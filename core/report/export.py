"""The study report written to a folder: the export engine of ``main.py report`` and the app's Export dialog.

``write_report`` writes the chosen formats of a ``StudyReport`` into a folder::

    report.dcm    DICOM SR, TID 1500 Measurement Report (core.report.sr)
    report-seg.dcm  with the SR when any nodule has a 3D mask: the masks as a DICOM SEG
                  (core.report.seg), whose segments the SR's volumetric groups reference
    report.pdf    the printable report (core.report.pdf)
    ranking.csv   the ranked table, one row per nodule (core.report.tables)
    report.json   everything, schema mtmr-reader/report/1 (docs/report-json.md)

An existing file is never replaced without ``overwrite``. Every file is written atomically (a
temporary file in the folder moved into place), so a reader sees the old file or the new one, never
half of one. The formats are written one after the other (csv, json, sr, pdf); one that fails is
recorded in its ``Outcome`` (format, file, reason, with anything naming the patient scrubbed) and the
others are still written.

With ``anonymise`` names, IDs, dates and descriptions are blanked and every UID remapped
consistently within this export (``core.report.anonymise``, with a fresh secret salt each time); the
SR's references to the CT instances are remapped with the same salt.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.report.content import StudyReport
    from core.report.pdf_follow_up import PriorImages
    from core.volume import CTVolume

FORMATS = ("sr", "pdf", "csv", "json")
WRITE_ORDER = ("csv", "json", "sr", "pdf")  # cheap and sure first: a slow or failing SR/PDF comes last
FILE_NAMES = {"sr": "report.dcm", "pdf": "report.pdf", "csv": "ranking.csv", "json": "report.json"}
TITLES = {"sr": "DICOM SR", "pdf": "PDF", "csv": "CSV", "json": "JSON", "seg": "DICOM SEG"}
SEG_FILE = "report-seg.dcm"  # written with the SR when any nodule has a mask (not a format of its own)
MODULES = {"sr": "core.report.sr", "pdf": "core.report.pdf"}


@dataclass(frozen=True)
class Outcome:
    """One format of one export: where it went and, when it failed, why ("" when written)."""

    format: str
    path: Path
    error: str = ""

    @property
    def written(self) -> bool:
        return not self.error

    @property
    def text(self) -> str:
        if self.written:
            return f"{TITLES[self.format]}: {self.path}"
        return f"{TITLES[self.format]} not written ({self.path.name}): {self.error}"


@dataclass(frozen=True)
class Export:
    """What ``write_report`` did: the report as written (anonymised if asked) and one outcome per format."""

    report: StudyReport
    outcomes: tuple[Outcome, ...] = field(default_factory=tuple)

    @property
    def written(self) -> list[Path]:
        return [o.path for o in self.outcomes if o.written]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.written]


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"csv,json"`` (or a list) as format names in ``FORMATS`` order; ValueError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(chosen - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)} (choose from {','.join(FORMATS)})")
    if not chosen:
        raise ValueError(f"no format chosen (choose from {','.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in chosen)


def write_order(formats: Iterable[str]) -> tuple[str, ...]:
    """``formats`` in the order they are written (``WRITE_ORDER``)."""
    chosen = set(formats)
    return tuple(f for f in WRITE_ORDER if f in chosen)


def targets(folder: str | Path, formats: Iterable[str]) -> dict[str, Path]:
    """Format -> the file it is written to in ``folder``."""
    return {fmt: Path(folder) / FILE_NAMES[fmt] for fmt in formats}


def existing(folder: str | Path, formats: Iterable[str]) -> list[Path]:
    """The files an export of ``formats`` into ``folder`` would replace (the SR's SEG included)."""
    paths = list(targets(folder, formats).values())
    if "sr" in formats:
        paths.append(Path(folder) / SEG_FILE)
    return [path for path in paths if path.exists()]


def unavailable(fmt: str) -> str:
    """Why ``fmt`` cannot be written on this installation, or "" when it can."""
    module = MODULES.get(fmt)
    if module is None:
        return ""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return "" if found else f"not available in this installation ({module} is missing)"


def _measured(report: StudyReport, volume: CTVolume, segment: bool) -> StudyReport:
    """``with_measurements``, or the report as it was with the reason on each unmeasured nodule: a
    failing segmenter must not stop the export."""
    from core.report.content import with_measurements

    try:
        return with_measurements(report, volume, segment)
    except Exception as exc:  # any failure: the report is still written, unmeasured
        reason = f"measurement failed ({exc.__class__.__name__}: {exc})"
        nodules = tuple(
            n if n.measurement or (n.mask is None and not segment) else replace(n, measurement_error=reason)
            for n in report.nodules
        )
        return replace(report, nodules=nodules)


def write_report(
    report: StudyReport,
    folder: str | Path,
    formats: Sequence[str],
    *,
    volume: CTVolume | None = None,
    source_files: Sequence[str | Path] = (),
    anonymise: bool = False,
    overwrite: bool = False,
    measure: bool = False,
    prior_files: Sequence[str | Path] = (),
    prior_images: PriorImages | None = None,
) -> Export:
    """Write ``formats`` of ``report`` into ``folder`` (which must exist), each atomically; a failure
    in one is recorded in its ``Outcome`` and the others are still written. An existing file is left
    alone unless ``overwrite``. ``volume`` feeds the PDF's images, ``source_files`` (the series' DICOM
    files) the SR's evidence. With ``anonymise`` the report and the volume's metadata are de-identified
    and the SR's references to the CT instances remapped, all with one fresh salt, so their UIDs agree.
    With ``volume``, a nodule with a mask that fits its marker but no measurement is measured first;
    with ``measure`` too, every nodule not yet measured is (its fitting mask, else a new segmentation;
    ``content.with_measurements``), so every format carries the same measured sizes and a nodule that
    cannot be measured says why. ``prior_files``: with a follow-up reading, the prior study's DICOM
    files, referenced by the SR as other evidence (``core.report.sr_follow_up``), and ``prior_images``
    the prior study's volume with the reading, for the PDF's prior/current key images."""
    from core.report.anonymise import anonymised, new_salt

    folder = Path(folder)
    formats = parse_formats(formats)
    if volume is not None:
        report = _measured(report, volume, segment=measure)
    original, original_volume = report, volume
    salt = new_salt() if anonymise else None
    if salt is not None:
        report = anonymised(report, salt)
        if volume is not None:
            volume = _anonymised_volume(volume, report)
    paths = targets(folder, formats)
    outcomes: list[Outcome] = []
    for fmt in write_order(formats):
        path = paths[fmt]
        if path.exists() and not overwrite:
            outcomes.append(Outcome(fmt, path, "the file exists and was not overwritten"))
            continue
        reason = unavailable(fmt)
        if not reason and fmt == "pdf" and volume is None:
            reason = "needs the study's images"
        if not reason and fmt == "sr" and not source_files:
            reason = "needs the study's DICOM files (this study was not opened from DICOM)"
        if reason:
            outcomes.append(Outcome(fmt, path, reason))
            continue
        try:
            if fmt == "csv":
                from core.report.tables import write_csv

                write_csv(report, path)
            elif fmt == "json":
                from core.report.tables import write_json

                write_json(report, path)
            elif fmt == "sr":
                sources = [Path(f) for f in source_files]
                sr_report = report if salt is None else _with_source_uids(report, sources, salt)
                clean = partial(scrub, report=original, volume=original_volume)
                prior = [Path(f) for f in prior_files]  # a follow-up's prior study: the SR's other evidence
                _write_sr(sr_report, volume, sources, path, overwrite, outcomes, clean, prior)
            else:
                from core.report.pdf import write_pdf

                _write_atomically(path, partial(write_pdf, report, volume, prior=prior_images))
        except Exception as exc:  # one format must never stop the others
            outcomes.append(Outcome(fmt, path, scrub(_reason(exc), original, original_volume)))
            continue
        outcomes.append(Outcome(fmt, path))
    return Export(report, tuple(outcomes))


def _reason(exc: Exception) -> str:
    reason = str(exc) or exc.__class__.__name__
    return reason if isinstance(exc, OSError | ValueError) else f"{exc.__class__.__name__}: {reason}"


def _write_sr(report, volume, sources, path: Path, overwrite: bool, outcomes: list, clean, prior=()) -> None:
    """The SR, and beside it the SEG of the report's masks when any has voxels (its outcome goes to
    ``outcomes``; when it is not written the SR keeps the nodules' planar groups). The SEG is staged
    first and moved into place just before the SR: a failing SR leaves both previous files."""
    import pydicom

    from core.report.sr import write_sr

    if not any(nodule.mask is not None and nodule.mask.voxels for nodule in report.nodules):
        _write_atomically(path, partial(write_sr, report, sources, prior_files=prior))
        return
    seg_path = path.with_name(SEG_FILE)
    with contextlib.ExitStack() as stack:
        error, staged = _stage_seg(stack, report, volume, sources, seg_path, overwrite)
        try:
            header = pydicom.dcmread(staged, stop_before_pixels=True) if staged else None
            place = partial(os.replace, staged, seg_path) if staged else None
            _write_atomically(path, partial(write_sr, report, sources, prior_files=prior, seg=header), place)
        except Exception:
            error = error or "not written: the DICOM SR it belongs to failed"
            raise
        finally:
            outcomes.append(Outcome("seg", seg_path, clean(error)))


def _stage_seg(stack, report, volume, sources, path: Path, overwrite: bool) -> tuple[str, Path | None]:
    """(why the SEG is not written, or ""; its staged temporary file, removed when ``stack`` closes)."""
    if path.exists() and not overwrite:
        return "the file exists and was not overwritten", None
    if volume is None:
        return "needs the study's images", None
    from core.report.seg import write_seg

    try:
        return "", stack.enter_context(_staged(path, partial(write_seg, report, volume, sources)))
    except Exception as exc:  # the SR is still written, without references to a SEG
        return _reason(exc), None


def _write_atomically(
    path: Path, write: Callable[[Path], object], before_replace: Callable[[], object] | None = None
) -> None:
    """Let ``write`` make a temporary file beside ``path`` (same suffix), then move it into place
    (``before_replace`` runs just before)."""
    with _staged(path, write) as tmp:
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)


@contextlib.contextmanager
def _staged(path: Path, write: Callable[[Path], object]) -> Iterator[Path]:
    """A temporary file beside ``path`` (same suffix) made by ``write`` and synced; removed on leaving
    unless it was moved into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}{path.suffix}")
    try:
        write(tmp)
        if not tmp.is_file():
            raise OSError("the writer produced no file")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _anonymised_volume(volume: CTVolume, report: StudyReport) -> CTVolume:
    """The volume with de-identified metadata whose UIDs are the anonymised report's."""
    meta = volume.metadata
    study = report.study
    clean = replace(
        meta.anonymised(),
        patient_sex="",
        study_uid=study.get("study_uid", ""),
        series_uid=study.get("series_uid", ""),
        frame_of_reference_uid=study.get("frame_of_reference_uid", ""),
        study_date="",
        study_description="",
        series_description="",
    )
    return replace(volume, metadata=clean, source=None)


def _with_source_uids(report: StudyReport, files: Sequence[Path], salt: bytes) -> StudyReport:
    """The anonymised report with the series' instance UIDs added to its ``uid_map``, remapped with
    the same salt as ``anonymise_dataset`` would: the SR's evidence references agree with
    de-identified copies of the CT made with this salt."""
    import pydicom

    from core.report.anonymise import remap_uid

    uid_map = dict(report.uid_map)
    keywords = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
    for source in files:
        ds = pydicom.dcmread(source, stop_before_pixels=True, specific_tags=list(keywords))
        for keyword in keywords:
            uid = str(ds.get(keyword, "") or "")
            if uid:
                uid_map.setdefault(uid, remap_uid(uid, salt))
    return replace(report, uid_map=uid_map)


def phi_values(report: StudyReport, volume: CTVolume | None = None) -> list[str]:
    """The texts that identify the patient or the study in ``report`` and ``volume`` (for scrubbing)."""
    values = [str(v) for v in report.patient.values() if v]
    values += [
        str(report.study.get(k) or "") for k in ("study_date", "study_description", "series_description")
    ]
    values.append(report.reader_name)
    if volume is not None:
        meta = volume.metadata
        values += [meta.patient_name, meta.patient_id, meta.patient_birth_date, meta.study_date]
        values += [meta.study_description, meta.series_description]
    pieces = set()
    for value in values:
        value = value.strip()
        if len(value) >= 3:
            pieces.add(value)
            pieces.update(part.strip() for part in value.split("^") if len(part.strip()) >= 3)
    return sorted(pieces, key=len, reverse=True)


def scrub(text: str, report: StudyReport, volume: CTVolume | None = None) -> str:
    """``text`` with every identifying value of the report (and volume) replaced by ``***``."""
    for value in phi_values(report, volume):
        text = text.replace(value, "***")
    return text
