"""Benchmark: time and peak memory of the phantom chest (anatomy, then noise) at the default size.

Each repeat runs in a fresh Python subprocess (this script in its hidden ``--worker`` mode) so that
imports, page faults and memory are those of a real first call. Prints, per repeat, the seconds for
``build_chest`` and for ``add_noise`` and the worker's peak RSS growth over its post-import baseline,
then the medians. Run from the repository root::

    .venv/bin/python bench/bench_phantom_anatomy.py [--repeats 3] [--size 512] [--slices 300]
        [--pixel 0.7] [--slice 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from core.phantom.anatomy import ChestConfig, add_noise, build_chest

    config = ChestConfig(
        rows=args.size, columns=args.size, slices=args.slices, pixel_spacing=args.pixel,
        slice_spacing=args.slice, seed=args.seed,
    )  # fmt: skip
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    chest = build_chest(config)
    built = time.perf_counter()
    noisy = add_noise(chest.hu, config.noise_sigma, chest.spacing, np.random.default_rng(args.seed))
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "anatomy_s": built - start,
                "noise_s": done - built,
                "total_s": done - start,
                "peak_mib": (peak - baseline) / 1024,
                "volume_mib": noisy.nbytes / 2**20,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--pixel", type=float, default=0.7)
    parser.add_argument("--slice", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    print(
        f"phantom chest {args.size}x{args.size}x{args.slices}, {args.pixel} mm pixels, {args.slice} mm slices"
    )
    print(f"{os.cpu_count()} CPUs; each repeat in a fresh process")
    runs = []
    for i in range(args.repeats):
        command = [sys.executable, __file__, "--worker", *sys.argv[1:]]
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(
            f"  run {i + 1}: anatomy {run['anatomy_s']:.2f} s + noise {run['noise_s']:.2f} s = "
            f"{run['total_s']:.2f} s, peak +{run['peak_mib']:.0f} MiB"
        )
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"median: anatomy {median['anatomy_s']:.2f} s, noise {median['noise_s']:.2f} s, "
        f"total {median['total_s']:.2f} s, peak memory +{median['peak_mib']:.0f} MiB "
        f"(one int16 volume is {median['volume_mib']:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
