"""The learned segmenter beside the classical one, on the same nodules of the reserved test split.

    .venv/bin/python bench/bench_segmenter_learned.py [--phantoms 10] [--size 256] [--jitter]

Phantoms of the TEST split (patients 0851-1012, never trained on) at 1.25 mm and 2.5 mm slices
(0.7 mm pixels, 20 HU noise); each nodule segmented from its marker (the truth's centre and
diameter, or with ``--jitter`` moved by up to a quarter diameter and resized by up to +-30 %, the same
marker for both methods) by ``core.measure.segment.segment_nodule_classical`` (classical) and
``core.measure.learned.segment_nodule_learned`` (learned), scored against the consensus mask rendered
into the phantom with ``core.measure.evaluate.agreement``. A marker a method refuses counts as Dice 0
and volume error 100 %. Prints median Dice, median |volume error| and median time per nodule, overall
and per site, texture and size, for both methods side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = ((0, 6, "< 6 mm"), (6, 10, "6-10 mm"), (10, 1e9, ">= 10 mm"))


def measure(args) -> list[dict]:
    import torch

    from core.lidc.table import load_nodules
    from core.measure.evaluate import agreement
    from core.measure.learned import load_segmenter, segment_nodule_learned
    from core.measure.segment import segment_nodule_classical
    from core.phantom.appearance import appearance_from_ratings
    from core.phantom.study import PhantomOptions, build_phantom, choose_nodules, truth_masks

    torch.set_num_threads(1)
    load_segmenter()  # loaded once, outside the timings
    methods = {"classical": segment_nodule_classical, "learned": segment_nodule_learned}
    pool, rng, rows = load_nodules(), np.random.default_rng(7), []
    for slice_mm in args.slices:
        for index in range(args.phantoms):
            options = PhantomOptions(
                seed=30_000 + index, split="test", nodules=5, size=args.size, slice_thickness=slice_mm
            )
            try:
                volume, placed = build_phantom(options, choose_nodules(pool, options))
            except ValueError as exc:  # no room for these nodules in the chest
                print(f"  phantom {options.seed} skipped: {exc}", file=sys.stderr)
                continue
            truths = truth_masks(volume, placed)
            for p in placed:
                centre, diameter = np.array(p.centre_mm), p.nodule.diameter_mm
                if args.jitter:
                    way = rng.normal(size=3)
                    centre = centre + way / np.linalg.norm(way) * rng.uniform(0, 0.25) * diameter
                    diameter *= rng.uniform(0.7, 1.3)
                row = {
                    "slice_mm": slice_mm,
                    "site": p.site,
                    "texture": appearance_from_ratings(p.nodule.mean_ratings).texture_class,
                    "size": next(name for lo, hi, name in SIZES if lo <= p.nodule.diameter_mm < hi),
                }
                for name, method in methods.items():
                    start = time.perf_counter()
                    try:
                        score = agreement(truths[f"n{p.index + 1}"], method(volume, centre, diameter))
                        dice, error = score.dice, abs(score.volume_error)
                    except ValueError:  # SegmentationError: the method found nothing
                        dice, error = 0.0, 1.0
                    row[name] = (dice, error, time.perf_counter() - start)
                rows.append(row)
    return rows


def table(rows: list[dict], key: str | None) -> None:
    groups = sorted({row[key] for row in rows}) if key else [None]
    for group in groups:
        picked = [row for row in rows if key is None or row[key] == group]
        cells = []
        for name in ("classical", "learned"):
            dice = statistics.median(row[name][0] for row in picked)
            error = statistics.median(row[name][1] for row in picked)
            cells.append(f"{dice:6.3f} {100 * error:6.1f} %")
        label = "all" if key is None else f"{key}: {group}"
        print(f"  {label:<26} {len(picked):4d}   {cells[0]}   {cells[1]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--phantoms", type=int, default=10, help="phantoms per slice thickness (5 nodules each)"
    )
    parser.add_argument("--size", type=int, default=256, help="phantom matrix size (256 renders fast)")
    parser.add_argument("--slices", type=float, nargs="+", default=[1.25, 2.5])
    parser.add_argument("--jitter", action="store_true", help="markers placed as a reader would")
    args = parser.parse_args(argv)
    if args.phantoms < 1:
        parser.error("--phantoms must be >= 1")
    rows = measure(args)
    if not rows:
        print("no nodules measured", file=sys.stderr)
        return 1
    marker = "jittered markers" if args.jitter else "markers at the truth's centre and diameter"
    print(f"test split, size {args.size}, {marker}: median Dice, median |volume error|")
    print(f"  {'subset':<26} {'n':>4}   {'classical':^16}   {'learned':^16}")
    for slice_mm in args.slices:
        part = [row for row in rows if row["slice_mm"] == slice_mm]
        print(f" {slice_mm:g} mm slices")
        for key in (None, "site", "texture", "size"):
            table(part, key)
    for name in ("classical", "learned"):
        times = [row[name][2] for row in rows]
        failed = sum(row[name][0] == 0.0 for row in rows)
        print(
            f"{name}: median {1000 * statistics.median(times):.0f} ms per nodule "
            f"(max {1000 * max(times):.0f} ms), {failed} of {len(rows)} with Dice 0"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
