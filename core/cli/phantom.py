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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.lidc.table import load_nodules
    from core.phantom.study import PhantomOptions, choose_nodules, write_phantom

    start = time.perf_counter()
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
