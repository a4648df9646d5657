"""Benchmark: time to measure one nodule (``core.measure.axes.measure_nodule``) beside the time to
segment it (``core.measure.segment.segment_nodule``, the step before it) in the same run, on the
consensus masks of reserved-split phantom nodules and on analytic spheres up to 30 mm.

For each nodule both are timed as the median of ``--repeats`` interleaved runs (wall clock and CPU
time of this process); the ratio measure/segment is the figure that travels between machines. The
issue's target: measuring a 30 mm nodule well under 50 ms.

Run from the repository root::

    .venv/bin/python bench/bench_measure.py [--seed 1] [--nodules 8] [--slice-thickness 1.25] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.measure.axes import measure_nodule
from core.measure.mask import NoduleMask
from core.measure.segment import SegmentationError, segment_nodule
from core.volume import CTVolume


def timed(call, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        call()
        wall.append(1000 * (time.perf_counter() - w))
        cpu.append(1000 * (time.process_time() - c))
    return statistics.median(wall), statistics.median(cpu)


def spheres(slice_mm: float):
    """Solid spheres of 6, 10, 20 and 30 mm in lung at 0.7 mm pixels: (name, volume, mask, centre, d)."""
    for diameter in (6.0, 10.0, 20.0, 30.0):
        spacing = np.array([slice_mm, 0.7, 0.7])
        shape = tuple(int(np.ceil((diameter + 20) / s)) for s in spacing)
        zyx = np.indices(shape) - (np.array(shape) // 2)[:, None, None, None]
        inside = (((zyx * spacing[:, None, None, None]) ** 2).sum(axis=0)) <= (diameter / 2) ** 2
        rng = np.random.default_rng(0)
        hu = np.where(inside, 40, -850) + rng.normal(0, 20, shape)
        volume = CTVolume(np.rint(hu).astype(np.int16), np.diag([0.7, 0.7, slice_mm, 1.0]))
        centre = tuple(volume.voxel_to_mm(np.array(shape[::-1]) // 2))
        yield (
            f"sphere {diameter:.0f} mm",
            volume,
            NoduleMask((0, 0, 0), inside, "truth").cropped(),
            centre,
            diameter,
        )


def phantom_nodules(seed: int, count: int, slice_mm: float):
    from core.lidc.table import load_nodules
    from core.phantom.study import PhantomOptions, build_phantom, choose_nodules, truth_masks

    options = PhantomOptions(seed=seed, split="test", nodules=count, size=320, pixel_spacing=0.7,
                             slice_thickness=slice_mm)  # fmt: skip
    volume, placed = build_phantom(options, choose_nodules(load_nodules(), options))
    masks = truth_masks(volume, placed)
    for p in placed:
        key = f"n{p.index + 1}"
        yield f"{key} {p.site}", volume, masks[key], p.centre_mm, p.nodule.diameter_mm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (default: 1)")
    parser.add_argument("--nodules", type=int, default=8, help="phantom nodules (default: 8)")
    parser.add_argument("--slice-thickness", type=float, default=1.25, help="mm (default: 1.25)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per nodule (default: 7)")
    args = parser.parse_args()
    print(f"{'nodule':<24} {'diam mm':>7} {'voxels':>7} {'measure ms':>11} {'cpu':>6} "
          f"{'segment ms':>11} {'cpu':>6} {'ratio':>6}  long/short/mean mm")  # fmt: skip
    ratios = []
    cases = [*spheres(args.slice_thickness), *phantom_nodules(args.seed, args.nodules, args.slice_thickness)]
    for name, volume, mask, centre, diameter in cases:
        result = measure_nodule(volume, mask)  # warm: imports, caches
        with contextlib.suppress(SegmentationError):
            segment_nodule(volume, centre, diameter)
        measure_wall, measure_cpu = timed(lambda v=volume, m=mask: measure_nodule(v, m), args.repeats)

        def segment(v=volume, c=centre, d=diameter):
            with contextlib.suppress(SegmentationError):
                segment_nodule(v, c, d)

        segment_wall, segment_cpu = timed(segment, args.repeats)
        ratios.append(measure_cpu / max(segment_cpu, 1e-6))
        print(
            f"{name:<24} {diameter:>7.1f} {mask.voxels:>7} {measure_wall:>11.1f} {measure_cpu:>6.1f} "
            f"{segment_wall:>11.1f} {segment_cpu:>6.1f} {ratios[-1]:>6.2f}  "
            f"{result.long_axis_mm:.1f}/{result.short_axis_mm:.1f}/{result.mean_diameter_mm:.1f} "
            f"({result.plane})"
        )
    print(f"median CPU ratio measure/segment: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
