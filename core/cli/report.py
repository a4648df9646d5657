"""``python main.py report STUDY --markers markers.json --out DIR``: the study's report, in four formats.

Loads the study (the largest CT series, or ``--series``), runs the model on the markers (patient LPS
mm, ``core.nodule.markers``), finds each nodule's lung zone (``core.imaging.location``), takes the reader's
confirmed values (and a saved follow-up reading against a prior study: prior sizes, change, VDT and
Lung-RADS with priors; the PDF also the prior/current key images of each pair when the prior study is
found where its saved session says it was opened) from the saved reading session of that series when
there is one, measures each
nodule on its 3D mask (the session's while it still fits its marker, else segmented; a marker that
cannot be measured is named with its reason and keeps its marker diameter: core.measure.markers), and
writes into DIR::

    report.dcm    DICOM SR, TID 1500 Measurement Report (core.report.sr)
    report-seg.dcm  with the SR: the nodules' 3D masks as a DICOM SEG (core.report.seg), referenced by
                  the SR's volumetric groups
    report.pdf    the printable report (core.report.pdf)
    ranking.csv   the ranked table, one row per nodule (core.report.tables)
    report.json   everything, schema mtmr-reader/report/1 (docs/report-json.md)

``--format`` picks some of them (default: all four). An existing file is never replaced without
``--overwrite``: the command stops before any work, names the file and exits with 2. Every file is
written atomically (a temporary file in DIR moved into place), so a reader sees the old file or the
new one, never half of one. The formats are written one after the other (csv, json, sr, pdf); one
that fails is reported on stderr (format, file, reason) and the others are still written.

``--anonymise`` blanks names, IDs, dates and descriptions and remaps every UID consistently within
this export (``core.report.anonymise``, with a fresh secret salt each time); the SR's references to
the CT instances are remapped with the same salt. Nothing printed, anonymised or not, names the patient.

``--send NODE`` then sends the SR (and the SEG when written) and the PDF as an Encapsulated PDF
(``report-pdf.dcm``) to a PACS node (``core.report.send``), one result line per object; the node is
checked before any work, and a failed send leaves every file in DIR.

Exit codes: 0 every chosen format written (and sent); 1 at least one format failed (named on stderr;
the others are written) or an object could not be sent; 2 nothing written (arguments, an existing
file, a study, markers file, model or --send node that cannot be used).

The writing itself is ``core.report.export.write_report``, the one writer this command and the app's
Export dialog share; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.options import add_device, add_model, add_series, model_path
from core.cli.progress import Progress
from core.report.export import FORMATS, TITLES, existing, parse_formats, write_order, write_report

if TYPE_CHECKING:
    from core.volume import CTVolume


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="the study's report as DICOM SR, PDF, CSV and JSON (model scores, Lung-RADS)"
    )
    parser.add_argument("study", help="study folder, DICOM file(s) or NIfTI/MHD/NRRD")
    parser.add_argument("--markers", required=True, help="markers.json (patient LPS mm; docs/markers.md)")
    add_model(parser)
    add_series(parser)
    add_device(parser)
    parser.add_argument(
        "--format", default=",".join(FORMATS), help="comma-separated: sr,pdf,csv,json (default: all)"
    )
    parser.add_argument(
        "--anonymise",
        "--anonymize",
        action="store_true",
        help="remove names, IDs, dates and descriptions; remap every UID consistently",
    )
    parser.add_argument("--reader", default="", help="the reader's name for the report (person observer)")
    parser.add_argument("--out", required=True, help="folder to write into (made if missing)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in the folder")
    parser.add_argument(
        "--send",
        metavar="NODE",
        help="then send the SR (and SEG) and the PDF as Encapsulated PDF to a PACS node (docs/pacs.md)",
    )
    parser.set_defaults(func=run)


# -- the command --------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from core.dicom.errors import StudyLoadError
    from core.imaging.location import LungMap
    from core.imaging.open_study import open_study
    from core.measure.markers import measure_markers
    from core.model.checkpoints import CheckpointError
    from core.model.inference import Predictor
    from core.nodule.markers import check_inside, read_markers
    from core.report.content import build_report

    err = sys.stderr
    progress = Progress(err)
    try:
        formats = parse_formats(args.format)
    except ValueError as exc:
        print(f"error: --format: {exc}", file=err)
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: {out}: exists and is not a folder", file=err)
        return 2
    present = existing(out, formats)
    node = None
    if args.send:
        node, problem = _send_node(args.send)
        if problem:
            print(f"error: --send: {problem}", file=err)
            return 2
        from core.report.send import PDF_DICOM_NAME

        if "pdf" in formats and (out / PDF_DICOM_NAME).exists():
            present.append(out / PDF_DICOM_NAME)
    if present and not args.overwrite:
        names = ", ".join(str(p) for p in present)
        print(f"error: {names}: already there, nothing written (use --overwrite to replace)", file=err)
        return 2

    try:
        markers = read_markers(Path(args.markers))
        if not markers:
            raise ValueError(f"{args.markers}: no markers: nothing to report")
        progress.say(f"report: loading {args.study} ...")
        volume, found = open_study(args.study, args.series)
        for marker in markers:
            try:
                check_inside(volume, marker.centre_mm)
            except ValueError as exc:
                raise ValueError(f"{args.markers}: {marker.name or marker.id}: {exc}") from exc
        predictor = Predictor(model_path(args), device=args.device)
        progress.say(f"report: {len(markers)} marker(s); model {predictor.description}")
        results = predictor.predict(volume, [m.to_inference() for m in markers])
    except (StudyLoadError, CheckpointError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    session = saved_session(volume, progress)
    labels = _session_labels(session, markers, progress)
    measured = measure_markers(volume, markers, session.masks if session is not None else None)
    for marker in markers:
        if marker.id in measured.errors:
            progress.say(f"note: {marker.name or marker.id} not measured: {measured.errors[marker.id]}")
    lungs = LungMap(volume)
    locations = {}
    for marker in markers:
        with contextlib.suppress(ValueError):
            locations[marker.id] = lungs.describe(marker.centre_mm).text
    follow_up = _session_follow_up(session, markers, progress)
    report = build_report(
        volume,
        markers,
        {r.id: r for r in results},
        labels,
        predictor.card,
        reader_name=args.reader,
        locations=locations,
        masks=measured.masks,
        measurements=measured.measurements,
        follow_up=follow_up,
    )
    source_files: Sequence[Path] = ()
    if found is not None and "sr" in formats:
        source_files = found.find_series(args.series).files
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {out}: the folder cannot be made ({exc.strerror or exc})", file=err)
        return 2

    progress.say(f"report: writing {', '.join(write_order(formats))} into {out} ...")
    done = write_report(
        report,
        out,
        formats,
        volume=volume,
        source_files=source_files,
        anonymise=args.anonymise,
        overwrite=args.overwrite,
        measure=True,  # the markers measure_markers could not measure: their reasons into the report
        prior_files=_prior_files(follow_up, progress) if "sr" in formats else (),
        prior_images=_prior_images(follow_up, progress) if "pdf" in formats else None,
    )
    for outcome in done.outcomes:
        if outcome.written:
            print(f"wrote {outcome.path}")
        else:
            print(f"error: {outcome.text}", file=err)
    for note in predictor.notes:
        print(f"note: {note}", file=err)
    written = done.report
    for nodule in written.nodules:
        if nodule.result is None:
            continue
        rads = f", Lung-RADS {nodule.lung_rads.category}" if nodule.lung_rads else ""
        print(
            f"{nodule.rank}. {nodule.marker.name or nodule.marker.id}: malignancy "
            f"{nodule.result.malignancy:.2f} +/- {nodule.result.uncertainty:.2f}{rads}"
            + nodule.result.flags_text
        )
    code = 0
    if done.failed:
        failed = ", ".join(TITLES[o.format] for o in done.failed)
        print(f"report: {len(done.written)} of {len(done.outcomes)} written; failed: {failed}", file=err)
        code = 1
    if node is not None:
        code = max(code, _send(done, node, source_files or _first_file(found, args.series), args.anonymise))
    return code


def _send_node(text: str):
    """(node, "") or (None, why it cannot be used), before any work."""
    from core.pacs.errors import PacsError
    from core.pacs.nodes import resolve

    try:
        return resolve(text), ""
    except PacsError as exc:
        return None, str(exc)


def _first_file(found, series) -> Sequence[Path]:
    return found.find_series(series).files[:1] if found is not None else ()


def _send(done, node, source_files: Sequence[Path], anonymise: bool) -> int:
    """Send what was written; 1 when an object could not be sent (the files stay in the folder)."""
    from core.pacs.errors import PacsError
    from core.report.send import send_export

    try:
        sent = send_export(done, node, source_files, anonymise)
    except PacsError as exc:
        print(f"error: --send: {exc}", file=sys.stderr)
        return 1
    for note in sent.notes:
        print(f"note: {note}", file=sys.stderr)
    for result in sent.results:
        print(f"sent to {node.label}: {result.text}")
    if sent.failed:
        print(
            f"error: --send: {len(sent.failed)} object(s) not sent; they stay in the folder", file=sys.stderr
        )
        return 1
    return 0


def _session_labels(session, markers, progress: Progress) -> dict:
    """The reader's confirmed labels of these markers from the series' saved session, if any."""
    if session is None:
        return {}
    ids = {m.id for m in markers}
    labels = {k: v for k, v in session.labels.items() if k in ids}
    if labels:
        progress.say(f"report: {len(labels)} reader-confirmed label(s) from the saved session")
    return labels


def _session_follow_up(session, markers, progress: Progress):
    """The follow-up reading saved with the series' session (``compare``, the viewer) when it covers
    these markers, else None: its pairs give the report prior sizes, changes, VDT and Lung-RADS with
    priors."""
    if session is None or not session.follow_up:
        return None
    from core.followup.compare import FollowUp

    reading = FollowUp.from_dict(session.follow_up)  # checked when the session was read
    ids = {m.id for m in markers}
    paired = sum(p.current_id in ids for p in reading.pairs)
    new = sum(n.current_id in ids for n in reading.new)
    if not paired and not new:
        return None
    progress.say(f"report: the saved follow-up reading: {paired} nodule(s) paired with a prior, {new} new")
    return reading


def _prior_files(reading, progress: Progress) -> Sequence[Path]:
    """The prior study's files of a follow-up reading, for the SR's evidence: where its saved session
    says it was opened from; none (with a note) when that is not known or no longer there."""
    from core.dicom.catalogue import catalogue

    found = _from_prior(reading, lambda source, uid: list(catalogue(source).find_series(uid).files))
    if found is None and reading is not None:
        progress.say("note: the prior study's files were not found: the SR does not reference them")
    return found or ()


def _prior_images(reading, progress: Progress):
    """The prior study's volume with the reading (``PriorImages``), for the PDF's prior/current key
    images: loaded from where its saved session says it was opened; None (with a note) when it is
    not found or cannot be loaded."""
    from core.imaging.open_study import open_study
    from core.report.pdf_follow_up import PriorImages

    if reading is None or not reading.pairs:  # no pair: no prior images to show
        return None
    volume = _from_prior(reading, lambda source, uid: open_study(source, uid)[0])
    if volume is None:
        progress.say("note: the prior study's images were not found: the PDF has no prior key images")
        return None
    return PriorImages(volume, reading)


def _from_prior(reading, load):
    """``load(source folder, series UID)`` of a follow-up reading's prior study, from where its saved
    session says it was opened; None when there is no reading, no such session, or it fails."""
    if reading is None:
        return None
    from core.dicom.errors import StudyLoadError
    from core.reading.session import SessionCorrupt, SessionStore

    prior = reading.prior
    try:
        session = SessionStore().load(prior.study_uid, prior.series_uid)
        if session is not None and session.source:
            return load(Path(session.source), prior.series_uid)
    except (SessionCorrupt, StudyLoadError, OSError, ValueError, KeyError):
        pass
    return None


def saved_session(volume: CTVolume, progress: Progress):
    """The series' saved reading session, or None (none saved, unreadable: said on ``progress``)."""
    from core.reading.session import SessionCorrupt, SessionStore
    from core.reading.session_key import session_key

    try:
        return SessionStore().load(*session_key(volume))
    except SessionCorrupt as exc:
        progress.say(f"note: the saved session is not used: {exc}")
    except OSError:
        pass
    return None
