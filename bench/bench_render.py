"""Training-data rendering rate: nominal scans against randomised protocols and a thick-slice cell.

    .venv/bin/python bench/bench_render.py [--nodules 30] [--split val] [--base PATH]

Renders the same nodules (``--nodules`` evenly spaced ones of the split) three ways in one run:
nominal (the reference), a fresh random protocol per nodule (``train --randomise``), and the
5 mm sharp low-dose cell (fine slabs averaged over the slice profile). Prints nodules per second
with and without the chest builds (counted apart) and the rendering time's ratio to nominal.
``--base`` (a checkout of an older commit) also times that checkout's nominal rendering in a
subprocess, for a before/after of the same nodules.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TIMED = """
import sys, time
import numpy as np
import core.training.data
from core.lidc.table import load_nodules
from core.model.patches import PatchConfig
from core.training.data import DatasetSpec, build_dataset
{count_chests}
patch = PatchConfig(mode="paper", max_slices=3, channels=3, neighbour_fraction=0.25)
spec = DatasetSpec(split=sys.argv[1], seed=5, variants=0, patch=patch)
chosen = spec.select(load_nodules())
chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, int(sys.argv[2])).round().astype(int)]
start = time.perf_counter()
build_dataset(spec, chosen)
print(time.perf_counter() - start, CHESTS[0], CHESTS[1])
"""

COUNT_CHESTS = """
CHESTS = [0, 0.0]  # chests built, seconds spent building them
_build = core.training.data.build_chest


def _counted(config):
    start = time.perf_counter()
    chest = _build(config)
    CHESTS[0] += 1
    CHESTS[1] += time.perf_counter() - start
    return chest


core.training.data.build_chest = _counted
"""


def timed(split: str, count: int, root: Path) -> tuple[float, int, float]:
    """(seconds, chests built, seconds building them) to render ``count`` nodules nominally with the
    code under ``root`` (a fresh process)."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED.replace("{count_chests}", COUNT_CHESTS), split, str(count)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, chests, building = done.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(chests), float(building)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodules", type=int, default=30)
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--base", help="an older checkout to time nominal rendering with, before/after")
    args = parser.parse_args()

    import numpy as np

    import core.training.data
    from core.lidc.table import load_nodules
    from core.model.patches import PatchConfig
    from core.phantom.protocol import MATRIX
    from core.training.data import DatasetSpec, build_dataset

    namespace = {"core": core, "time": time}
    exec(COUNT_CHESTS, namespace)  # the same chest counter as the subprocesses use
    patch = PatchConfig(mode="paper", max_slices=3, channels=3, neighbour_fraction=0.25)
    pool = load_nodules()
    chosen = DatasetSpec(split=args.split).select(pool)
    chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, args.nodules).round().astype(int)]
    rows = []
    for name, options in (
        ("nominal", {}),
        ("randomised", {"randomise": True}),
        ("5mm-sharp-low", {"protocol": MATRIX["5mm-sharp-low"]}),
    ):
        spec = DatasetSpec(split=args.split, seed=5, variants=0, patch=patch, **options)
        before = list(namespace["CHESTS"])
        start = time.perf_counter()
        build_dataset(spec, chosen)
        seconds = time.perf_counter() - start
        chests, building = (a - b for a, b in zip(namespace["CHESTS"], before, strict=True))
        rows.append((name, seconds, chests, building))
    if args.base:
        rows.append(("nominal, --base checkout", *timed(args.split, args.nodules, Path(args.base))))
        rows.append(("nominal, this checkout", *timed(args.split, args.nodules, REPO)))
    reference = rows[0][1] - rows[0][3]
    print(f"{args.nodules} {args.split} nodules; chests are built once per grid (2 chests per grid)")
    print("| rendering | seconds | nodules/s | chests built (s) | nodules/s without chests | x nominal |")
    print("|---|---|---|---|---|---|")
    for name, seconds, chests, building in rows:
        alone = seconds - building
        print(
            f"| {name} | {seconds:.1f} | {args.nodules / seconds:.2f} | {chests} ({building:.0f}) "
            f"| {args.nodules / alone:.2f} | {alone / reference:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
