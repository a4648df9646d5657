"""``python main.py phantom OUT_DIR [...]``: write a phantom chest CT study with real LIDC nodules."""

from __future__ import annotations

import argparse
import sys
import time

from core.cli.progress import Progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="write a phantom CT study (DICOM + ground_truth.json + markers.json)"
    )
    parser.add_argument("out_dir", help="folder to write (must not already hold a study)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed: the same seed and options give the same study"
    )
    parser.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="train",
        help="LIDC patient split the nodules come from",
    )
    parser.add_argument("--nodules", type=int, default=5, help="how many LIDC nodules to embed (0-20)")
    parser.add_argument("--slice-thickness", type=float, default=1.0, help="mm, 0.625-3")
    parser.add_argument("--pixel-spacing", type=float, default=0.7, help="mm, 0.5-1.0")
    parser.add_argument("--noise", type=float, default=20.0, help="noise standard deviation, HU")
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument(
        "--follow-up",
        action="store_true",
        help="write a prior and a current study of one patient (OUT_DIR/prior, OUT_DIR/current): nodules "
        "grown or shrunk by known factors, one new, one resolved, the patient repositioned; --nodules "
        "counts the prior's",
    )
    parser.add_argument(
        "--interval-days",
        type=int,
        default=None,
        help="with --follow-up: days between the studies (1-3650; 365)",
    )
    parser.add_argument(
        "--current-slice-thickness",
        type=float,
        default=None,
        help="with --follow-up: the current study's slice thickness in mm (0.625-3; the prior's)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.lidc.table import load_nodules
    from core.phantom.study import PhantomOptions, choose_nodules, write_phantom

    start = time.perf_counter()
    if not args.follow_up and (args.interval_days is not None or args.current_slice_thickness is not None):
        print("error: --interval-days and --current-slice-thickness need --follow-up", file=sys.stderr)
        return 2
    try:
        options = PhantomOptions(
            seed=args.seed,
            split=args.split,
            nodules=args.nodules,
            pixel_spacing=args.pixel_spacing,
            slice_thickness=args.slice_thickness,
            noise=args.noise,
            size=args.size,
        )
        progress = Progress()
        if args.follow_up:
            return _follow_up(args, options, progress, start)
        out = write_phantom(
            args.out_dir,
            options,
            choose_nodules(load_nodules(), options),
            lambda text: progress.say(f"phantom: {text} ..."),
        )
    except (ValueError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {out} ({options.slices} slices, {options.nodules} nodules) in {seconds:.1f} s")
    print(f"markers: {out / 'markers.json'} (for predict, report and batch)")
    return 0


def _follow_up(args: argparse.Namespace, options, progress: Progress, start: float) -> int:
    from dataclasses import replace

    from core.lidc.table import load_nodules
    from core.phantom.followup import TRENDS, FollowUpOptions, write_follow_up
    from core.phantom.study import choose_nodules

    if not 2 <= options.nodules <= 19:
        raise ValueError(
            f"a follow-up needs 2..19 prior nodules (one resolves, one is new), not {options.nodules}"
        )
    follow = FollowUpOptions(
        interval_days=365 if args.interval_days is None else args.interval_days,
        current_slice_thickness=args.current_slice_thickness,
    )
    # the grown nodules stay within the diameter range too
    largest = options.max_diameter_mm / max(TRENDS["growing"]) ** (1 / 3)
    chosen = replace(options, nodules=options.nodules + 1, max_diameter_mm=largest)
    nodules = choose_nodules(load_nodules(), chosen)
    out = write_follow_up(
        args.out_dir, options, follow, nodules, lambda text: progress.say(f"phantom: {text} ...")
    )
    seconds = time.perf_counter() - start
    print(
        f"wrote {out / 'prior'} and {out / 'current'} ({follow.interval_days} days apart) in {seconds:.1f} s"
    )
    print(f"truth: {out / 'ground_truth.json'} (pairs, volume factors, new, resolved, the patient's motion)")
    return 0
