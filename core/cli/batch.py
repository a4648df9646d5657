"""``python main.py batch ROOT --out ranking.csv``: rank the marked nodules of every study under a folder.

Which series are analysed, with which markers (a saved session's, else the nearest ``markers.json``
or a phantom's ``ground_truth.json``), is ``core.reading.batch_plan``; the analysis, the ranking and
the CSV/JSON columns are ``core.report.batch_ranking``. This module parses the arguments and prints.

The model is loaded once; each series is loaded, analysed in one ``Predictor.predict`` call and
released before the next. A series that cannot be loaded, a markers file that cannot be used (a
marker outside the series included) or an unreadable session is reported on stderr (file and reason)
and skipped; it never stops the batch. Exit code 0 when at least one study was analysed, 2 when none
was (or ROOT, the output folder or the model cannot be used).

No patient name, patient ID, date or folder name is ever written: studies are known by number and UID.
``--json`` writes the same rows (numbers as numbers) with the model's description and device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.options import add_device, add_model, model_path, output_problem
from core.cli.progress import Progress, bar
from core.reading.batch_plan import Job, plan
from core.report.batch_ranking import analyse, rank, write_csv, write_json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="rank the marked nodules of every study under a folder into one CSV"
    )
    parser.add_argument("root", help="folder to search for CT series (recursively)")
    parser.add_argument("--out", required=True, help="ranking CSV to write")
    parser.add_argument("--json", help="also write the ranking as JSON")
    add_model(parser)
    add_device(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.dicom.errors import StudyLoadError
    from core.model.checkpoints import CheckpointError
    from core.model.inference import Predictor

    err = sys.stderr
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root}: not a folder", file=err)
        return 2
    outputs = [Path(args.out)] + ([Path(args.json)] if args.json else [])
    for out, example in zip(outputs, ("ranking.csv", "ranking.json"), strict=False):
        problem = output_problem(out, example)
        if problem:  # before any study is analysed, never after
            print(f"error: {problem}", file=err)
            return 2
    try:
        predictor = Predictor(model_path(args), device=args.device)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        print(f"error: the model cannot be used: {exc}", file=err)
        return 2

    progress = Progress(err)
    progress.say(f"batch: reading the headers of every file under {root} ...")

    def files_read(count: int) -> None:
        if count % 1000 == 0:
            progress.say(f"  {count} files read")

    try:
        jobs, problems, notes = plan(root, files_read)
    except (StudyLoadError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    for where, reason in problems:
        progress.say(f"skipped: {where}: {reason}")
    for note in notes:
        progress.say(f"note: {note}")
    if not jobs:
        print(f"error: no CT series with markers under {root}: nothing analysed, nothing written", file=err)
        return 2
    sessions = sum(job.source == "session" for job in jobs)
    progress.say(
        f"batch: {len(jobs)} series with markers ({sessions} from saved sessions, "
        f"{len(jobs) - sessions} from markers files); model {predictor.description}; "
        f"device {predictor.device}"
    )

    studies: dict[str, int] = {}
    for job in jobs:
        studies.setdefault(job.study_uid, len(studies) + 1)
    analysed = skipped = 0
    rows: list[dict] = []
    for done, job in enumerate(jobs, start=1):
        try:
            rows += analyse(job, predictor, studies[job.study_uid])
            outcome = "analysed"
            analysed += 1
        except (StudyLoadError, ValueError, OSError, MemoryError) as exc:
            progress.say(f"skipped: {job.folder}: {_reason(exc, job)}")
            outcome = "skipped"
            skipped += 1
        except Exception as exc:  # one study must never end the batch
            progress.say(f"skipped: {job.folder}: unexpected error ({exc.__class__.__name__}: {exc})")
            outcome = "skipped"
            skipped += 1
        progress.status(
            f"{bar(done, len(jobs))} {done}/{len(jobs)} studies ({analysed} analysed, {skipped} skipped): "
            f"{_relative(job.folder, root)} {outcome}",
            done=done == len(jobs),
            always=True,
        )
    if analysed == 0:
        print("error: no study could be analysed: no ranking written", file=err)
        return 2

    rows = rank(rows)
    try:
        write_csv(Path(args.out), rows)
        if args.json:
            write_json(Path(args.json), rows, predictor, analysed)
    except OSError as exc:
        print(f"error: the ranking cannot be written: {exc}", file=err)
        return 2
    for note in predictor.notes:
        print(f"note: {note}", file=err)
    left_out = [f"{skipped} skipped while analysing"] if skipped else []
    if problems:
        left_out.append(f"{len(problems)} skipped before analysis, listed above")
    summary = f" ({'; '.join(left_out)})" if left_out else ""
    print(f"wrote {args.out}: {len(rows)} nodules from {analysed} studies{summary}")
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


def _reason(exc: BaseException, job: Job) -> str:
    from core.dicom.errors import StudyLoadError

    if isinstance(exc, StudyLoadError):
        return f"cannot be loaded ({exc})"
    if isinstance(exc, MemoryError):
        return "not enough memory to load the series"
    return f"markers from {job.where} cannot be used ({exc})"
