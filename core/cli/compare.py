"""``python main.py compare PRIOR CURRENT [--prior-markers P.json] [--markers C.json] --out followup.json``:
a follow-up reading without the window (``core.followup.compare``).

The prior study is registered to the current one, the markers of both paired, both time points
measured (each marker's saved mask while it fits, else segmented), and the growth, volume doubling
time and Lung-RADS v2022 with priors given per nodule, with the exam's category and the date its
follow-up falls due. A marker file (the ``predict``/``measure`` format, ``core.nodule.markers``) may
be left out for a study whose saved reading session has markers; a registration saved in the current
study's session against this prior is used instead of registering again (with the reader's pairings
saved there: re-paired and unpaired nodules stay so), and the reading is saved with that session
when it holds every marker compared (so ``report`` and the viewer use it). The interval and the
volume doubling times come from each study's StudyDate; ``--dates PRIOR CURRENT`` gives them where a
series carries none (NIfTI/MHD/NRRD, DICOM without StudyDate; a study that has one keeps it unless
``--dates`` is given, which then wins, with a note where they differ). The output, written
atomically, is ``FollowUp.to_dict()``::

    {"schema": "mtmr-reader/follow-up/1", "prior": {...}, "current": {...}, "interval_days": ...,
     "registration": {...}, "pairs": [{"prior_id", "current_id", "tracking_uid", "prior_volume_mm3",
     "current_volume_mm3", "prior_mean_diameter_mm", "current_mean_diameter_mm", the changes,
     "vdt_days", "trend", "lungrads_growth", "volume_growth", "volume_method" ("paired": measured
     together, core.measure.paired; "independent"), "lung_rads": {...}}, ...],
     "new": [current ids], "new_nodules": [...], "resolved": [prior ids],
     "unmeasured": {"prior"|"current": {id: why}}, "repeatability": {"volume_percent",
     "paired_volume_percent" (volumes measured together), "diameter_mm"},
     "exam": {"category", "follow_up", "due_date"}}

Exit codes: 0 written; 1 the file could not be written (the comparison is printed instead); 2 nothing
done (arguments, output path, a study, markers file or date that cannot be used).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import calendar_date, output_problem
from core.cli.progress import Progress, bar


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="follow-up: pair the nodules of a prior and a current study, growth, VDT, Lung-RADS"
    )
    parser.add_argument("prior", help="the prior study: folder, DICOM file(s) or NIfTI/MHD/NRRD")
    parser.add_argument("current", help="the current study")
    parser.add_argument("--prior-markers", help="the prior's markers.json (default: its saved session's)")
    parser.add_argument("--markers", help="the current study's markers.json (default: its saved session's)")
    parser.add_argument("--prior-series", help="the prior's SeriesInstanceUID (default: largest CT series)")
    parser.add_argument("--series", help="the current SeriesInstanceUID (default: the largest CT series)")
    parser.add_argument(
        "--dates",
        nargs=2,
        type=calendar_date,
        metavar=("PRIOR", "CURRENT"),
        help="the studies' dates (YYYY-MM-DD or YYYYMMDD) for series without a StudyDate (NIfTI); "
        "given for DICOM, they replace the headers' dates",
    )
    parser.add_argument("--out", required=True, help="follow-up JSON to write (its folder must exist)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.dicom.errors import StudyLoadError
    from core.followup.compare import compare

    err = sys.stderr
    out = Path(args.out)
    problem = output_problem(out, example="followup.json")
    if problem:  # before any work, never after it
        print(f"error: {problem}", file=err)
        return 2
    progress = Progress(err)
    try:
        prior, prior_markers, prior_masks, _ = _study(
            "prior", args.prior, args.prior_series, args.prior_markers, progress
        )
        current, markers, masks, session = _study(
            "current", args.current, args.series, args.markers, progress
        )
        dates = study_dates(
            (("prior", args.prior, prior), ("current", args.current, current)), args.dates, progress
        )
        registration, overrides = _saved_reading(session, prior, prior_markers, markers, progress)
        progress.say(
            f"compare: {len(prior_markers)} prior and {len(markers)} current marker(s)"
            + ("; registering ..." if registration is None else "")
        )
        result = compare(
            prior, current, prior_markers, markers, prior_masks=prior_masks, current_masks=masks,
            registration=registration, overrides=overrides, dates=dates,
            progress=lambda done, total: progress.status(f"compare: {bar(done, total)}", done=done == total),
        )  # fmt: skip
    except (StudyLoadError, ValueError) as exc:
        progress.clear()
        print(f"error: {exc}", file=err)
        return 2
    from core.util.json_safe import json_safe

    text = json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False)
    code = 0
    try:
        from core.util.atomic import atomic_write_text

        atomic_write_text(out, text + "\n")
        print(f"wrote {out}")
    except OSError as exc:  # the comparison is done: print it rather than lose it
        print(f"error: {out}: cannot be written ({exc.strerror or exc}); the comparison follows", file=err)
        print(text)
        code = 1
    _save_with_session(session, markers, result.to_dict(), progress)
    for role, errors in result.unmeasured.items():
        for marker_id, why in errors.items():
            print(f"note: {role} marker {marker_id} not measured: {why}", file=err)
    for line in summary(result):
        print(line)
    return code


def summary(result) -> list[str]:
    """Lines for a reader: each pair's sizes, change, VDT and Lung-RADS; new; resolved; the exam."""
    lines = []
    for p in result.pairs:
        g, rads = p.growth, p.lung_rads
        if g is None:
            lines.append(f"{p.prior_id} -> {p.current_id}: {p.error}")
            continue
        sizes = (
            f"{g.prior_volume_mm3:.0f} -> {g.current_volume_mm3:.0f} mm3 ({g.volume_change_percent:+.0f} %)"
            if g.volume_change_percent is not None
            else f"{g.prior_mean_diameter_mm:.1f} -> {g.current_mean_diameter_mm:.1f} mm"
        )
        lines.append(
            f"{p.prior_id} -> {p.current_id}: {sizes}, {g.trend}, VDT {g.vdt_text}"
            + (f", Lung-RADS {rads.category}" if rads else "")
        )
    for n in result.new:
        rads = f", Lung-RADS {n.lung_rads.category}" if n.lung_rads else ""
        lines.append(f"new: {n.current_id}{rads}")
    lines += [f"resolved / not found: {i}" for i in result.resolved]
    due = f", due {result.due.isoformat()}" if result.due else ""
    lines.append(f"exam: Lung-RADS {result.category}: {result.follow_up}{due}")
    lines.append(f"measurement error: a change under {result.repeatability.text} is within it")
    return lines


def study_dates(studies, given, progress: Progress):
    """(prior date, current date): ``given`` (``--dates``) where given, else each study's StudyDate.
    ``studies`` is ``(role, path, volume)`` per study. ValueError naming the study whose date is
    missing (NIfTI, DICOM without StudyDate) and saying to pass ``--dates``; a note where a given
    date replaces a header's other date (the header's own date is not printed)."""
    from core.followup.growth import study_date

    dates = []
    for k, (role, path, volume) in enumerate(studies):
        try:
            own = study_date(volume.metadata.study_date)
        except ValueError:
            own = None
        if given is None and own is None:
            raise ValueError(
                f"{path}: the {role} study has no study date (NIfTI, or DICOM without StudyDate): "
                "pass --dates PRIOR CURRENT (YYYY-MM-DD)"
            )
        if given is not None and own is not None and own != given[k]:
            progress.say(f"note: the {role} study's StudyDate differs from --dates: {given[k]} is used")
        dates.append(given[k] if given is not None else own)
    return tuple(dates)


def _study(role: str, path: str, series: str | None, markers_path: str | None, progress: Progress):
    """The study, its markers (the file's, else its saved session's), its session's masks, the session."""
    from core.cli.report import saved_session
    from core.imaging.open_study import open_study
    from core.nodule.markers import read_markers

    markers = read_markers(Path(markers_path)) if markers_path else None
    progress.say(f"compare: loading the {role} study {path} ...")
    volume, _ = open_study(path, series)
    session = saved_session(volume, progress)
    if markers is None:
        if session is None or not session.markers:
            option = "--prior-markers" if role == "prior" else "--markers"
            raise ValueError(f"{path}: the {role} study has no saved session with markers; give {option}")
        markers = list(session.markers)
        progress.say(f"compare: the {role} study's {len(markers)} marker(s) from its saved session")
    masks = dict(session.masks) if session is not None else {}
    return volume, markers, masks, session


def _save_with_session(session, markers, reading: dict, progress: Progress) -> None:
    """Keep the reading in the current study's saved session, so the viewer and ``report`` use it
    without computing it again: only where that session holds every marker compared (a reading of
    other markers would not fit it); a session open in a window is left as it is, with a note."""
    from core.reading.session import SessionBusy, SessionStore

    if session is None or not {m.id for m in markers} <= {m.id for m in session.markers}:
        progress.say("compare: not saved with a session (the current study has none with these markers)")
        return
    session.follow_up = reading
    try:
        SessionStore().save(session)
    except (SessionBusy, OSError, ValueError) as exc:
        progress.say(f"note: the reading was not saved with the session: {exc}")
        return
    progress.say("compare: saved with the current study's session")


def _saved_reading(session, prior, prior_markers, markers, progress: Progress):
    """The registration and the reader's pairings saved with the current study's follow-up against
    this prior (``core.followup.compare.saved_reading``), else (None, None)."""
    from core.followup.compare import saved_reading

    found = saved_reading(session.follow_up if session else {}, prior, prior_markers, markers)
    if found is None:
        return None, None
    progress.say("compare: the registration saved with the current study's session is used")
    overrides = found[1]
    if overrides.pairs or overrides.unpaired:
        progress.say(
            f"compare: the reader's {len(overrides.pairs)} pairing(s) and {len(overrides.unpaired)} "
            "unpairing(s) kept"
        )
    return found
