"""``python main.py pacs echo|find|series|get|send|listen|secret``: the PACS from the command line.

NODE is a name from the PACS settings (``pacs.json`` in the user's config folder; ``core.pacs.nodes``)
or given inline: ``AET@HOST:PORT`` (DIMSE) or an ``http(s)://`` DICOMweb base URL. Results go to
stdout, progress to stderr. Exit codes: 0 done; 1 the operation failed (the reason on one line: refused,
rejected and why, timeout, TLS failure, a failed object); 2 bad arguments or settings; 130 interrupted
(``get`` resumes where it stopped when run again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import positive_int
from core.cli.progress import Progress, bar


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pacs", help="query, retrieve from, send to and listen for a PACS (DIMSE, DICOMweb)"
    )
    commands = parser.add_subparsers(dest="pacs_command", required=True)

    def command(name: str, help: str, func, node: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if node:
            sub.add_argument(
                "node", help="a node of the settings, AET@HOST:PORT or an http(s):// DICOMweb URL"
            )
        sub.add_argument("--timeout", type=float, help="seconds to wait for the node (default: settings, 30)")
        sub.set_defaults(func=func)
        return sub

    command("echo", "check that a node answers (C-ECHO or a QIDO-RS ping)", run_echo)
    find = command("find", "search a node's studies", run_find)
    find.add_argument("--patient", default="", help="patient name, * as wildcard (Doe^J*)")
    find.add_argument("--patient-id", default="", help="patient ID")
    find.add_argument(
        "--date", default="", help="study date or range: YYYYMMDD-YYYYMMDD (an end may be empty)"
    )
    find.add_argument("--accession", default="", help="accession number")
    find.add_argument("--modality", default="", help="a modality in the study (CT)")
    find.add_argument("--limit", type=positive_int, default=200, help="the most studies to list")
    find.add_argument(
        "--json", action="store_true", help="print JSON (StudyInstanceUID and more) instead of a table"
    )
    series = command("series", "list a study's series (CT flagged)", run_series)
    series.add_argument("study", help="StudyInstanceUID")
    series.add_argument("--json", action="store_true", help="print JSON instead of a table")
    get = command("get", "retrieve a study (C-GET or WADO-RS); run again to resume", run_get)
    get.add_argument("study", help="StudyInstanceUID")
    get.add_argument("--series", nargs="+", help="only these SeriesInstanceUIDs")
    get.add_argument("--out", help="folder to write into (default: the study cache)")
    send = command(
        "send", "send DICOM files (C-STORE or STOW-RS); each result goes to the send log", run_send
    )
    send.add_argument("files", nargs="+", help="DICOM files")
    listen = command(
        "listen", "receive studies pushed to us (storage SCP) until interrupted", run_listen, node=False
    )
    listen.add_argument("--port", type=int, help="port to listen on (default: settings, 11112)")
    listen.add_argument("--aet", help="our AE title (default: settings, MTMR)")
    listen.add_argument(
        "--allow", nargs="+", help="calling AE titles allowed to send (default: settings; none: any)"
    )
    listen.add_argument("--out", help="folder to write into (default: the study cache)")
    listen.add_argument(
        "--max-gb", type=float, help="refuse instances past this much data in the folder (default 20)"
    )
    secret = command("secret", "keep a node's token or password (read from stdin) in the keyring", run_secret)
    secret.set_defaults(node_secret=True)


def _fail(text: str, code: int = 1) -> int:
    print(f"error: {text}", file=sys.stderr)
    return code


def _node(args: argparse.Namespace):
    """(node, None) or (None, exit code) after printing why the node cannot be used."""
    from core.pacs.errors import PacsError
    from core.pacs.nodes import resolve

    if args.timeout is not None and not 0 < args.timeout <= 3600:
        return None, _fail(f"--timeout {args.timeout:g}: must be in (0, 3600] seconds", 2)
    try:
        return resolve(args.node, timeout_s=args.timeout), None
    except PacsError as exc:
        return None, _fail(str(exc), 2)


def _run(args: argparse.Namespace, action, interrupted: str = "interrupted") -> int:
    """Resolve the node, run ``action(node)``; PacsError is a one-line error, Ctrl+C exit 130."""
    from core.pacs.errors import PacsError

    node, code = _node(args)
    if node is None:
        return code
    try:
        return action(node)
    except PacsError as exc:
        return _fail(str(exc))
    except (ValueError, OSError) as exc:
        return _fail(f"{node.label}: {exc}")
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr)
        return 130


def run_echo(args: argparse.Namespace) -> int:
    from core.pacs import client

    def action(node) -> int:
        print(f"{node.label}: {client.echo(node)}")
        return 0

    return _run(args, action)


def run_find(args: argparse.Namespace) -> int:
    from core.pacs import client
    from core.pacs.query import Query, parse_date_range

    try:
        start, end = parse_date_range(args.date) if args.date else ("", "")
    except ValueError as exc:
        return _fail(f"--date: {exc}", 2)
    query = Query(args.patient, args.patient_id, start, end, args.accession, args.modality, args.limit)

    def action(node) -> int:
        found = client.find(node, query)
        if args.json:
            print(
                json.dumps(
                    {"studies": [s.to_dict() for s in found.studies], "limited": found.limited},
                    indent=2,
                    allow_nan=False,
                )
            )
        else:
            for s in found.studies:
                mods = "/".join(s.modalities)
                print(
                    f"{s.study_uid}  {s.study_date:8}  {mods:6}  {s.patient_id}  {s.patient_name}  "
                    f"{s.description}"
                )
        more = f" (limited to {query.limit}: narrow the search or raise --limit)" if found.limited else ""
        print(f"{len(found.studies)} studies{more}", file=sys.stderr)
        return 0

    return _run(args, action)


def run_series(args: argparse.Namespace) -> int:
    from core.pacs import client

    def action(node) -> int:
        listing = client.list_series(node, args.study)
        if args.json:
            rows = [{**vars(s), "is_ct": s.is_ct} for s in listing]
            print(json.dumps(rows, indent=2, allow_nan=False))
        for s in [] if args.json else listing:
            flag = "CT " if s.is_ct else "-- "
            print(
                f"{flag}{s.series_uid}  #{s.number}  {s.modality:3} {s.instances or '?':>5} images  "
                f"{s.description}"
            )
        return 0

    return _run(args, action)


def run_get(args: argparse.Namespace) -> int:
    from core.pacs import client

    progress = Progress(sys.stderr)
    shown: list = [None]

    def show(series, done: int, total: int) -> None:
        if shown[0] == (series.series_uid, done):
            return  # the final answer repeats the last count
        shown[0] = (series.series_uid, done)
        text = f"get: series {series.number or '?'} {series.modality} {bar(done, total)} {done}/{total}"
        progress.status(text, done=done == total)

    def action(node) -> int:
        done = client.get(
            node, args.study, Path(args.out) if args.out else None, series_uids=args.series, progress=show
        )
        print(done.folder)
        progress.say(
            f"get: {done.received} received, {done.skipped} already there, {len(done.series)} series"
        )
        return 0

    return _run(args, action, "interrupted: what arrived is kept; run the same command again to resume")


def run_send(args: argparse.Namespace) -> int:
    from core.pacs import client, sendlog

    def action(node) -> int:
        results = client.send(node, [Path(f) for f in args.files])
        for result in results:
            print(result.text)
        failed = [r for r in results if r.outcome == sendlog.FAILURE]
        if failed:
            print(
                f"error: {len(failed)} of {len(results)} not sent; the files are unchanged", file=sys.stderr
            )
        return 1 if failed else 0

    return _run(args, action)


def run_listen(args: argparse.Namespace) -> int:
    import signal
    import threading

    from core.pacs.errors import PacsError
    from core.pacs.listener import DEFAULT_PORT, Listener, stop
    from core.pacs.nodes import load_settings
    from core.pacs.storage import study_cache

    try:
        saved = load_settings().listener
        max_gb = args.max_gb if args.max_gb is not None else float(saved.get("max_mb", 20_000)) / 1000
        listener = Listener(
            aet=args.aet or str(saved.get("aet", "MTMR")),
            port=args.port if args.port is not None else int(saved.get("port", DEFAULT_PORT)),
            root=Path(args.out) if args.out else study_cache(),
            allowed=args.allow if args.allow is not None else list(saved.get("allowed", [])),
            max_bytes=int(max_gb * 1e9),
            on_arrival=lambda path: print(path, flush=True),
        )
        if not 0 < listener.port < 65536 or max_gb <= 0:
            raise ValueError("--port must be 1-65535 and --max-gb above 0")
    except (PacsError, ValueError, TypeError) as exc:
        return _fail(str(exc), 2)
    # Ctrl+C (or a TERM) only sets a flag, from before the server starts until it has stopped: a
    # KeyboardInterrupt raised anywhere else (between the start and the wait, inside the stop) once
    # left the server's threads running and the process alive
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = listener.start()
        except OSError as exc:
            return _fail(f"port {listener.port}: cannot listen ({exc.strerror or exc})")
        who = ", ".join(listener.allowed) if listener.allowed else "any AE title"
        print(
            f"listening as {listener.aet} on port {listener.port} (from {who}) into {listener.root}; "
            "Ctrl+C stops",
            file=sys.stderr,
            flush=True,
        )
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            stop(server)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"\nstopped: {listener.received} instance(s) received", file=sys.stderr)
    return 0


def run_secret(args: argparse.Namespace) -> int:
    import getpass

    from core.pacs import credentials
    from core.pacs.errors import PacsError

    secret = (
        getpass.getpass("token or password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    )
    if not secret:
        return _fail("no secret given (nothing kept)", 2)
    try:
        print(f"{args.node}: kept in {credentials.store(args.node, secret)}")
    except PacsError as exc:
        return _fail(str(exc))
    return 0
