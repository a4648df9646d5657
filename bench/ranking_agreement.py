"""Measured, not assumed: does the app's malignancy ranking agree with the readers' mean malignancy?

    .venv/bin/python bench/ranking_agreement.py [--studies 8] [--nodules 8] [--model PATH] [--device auto]

Markers are placed at the ground-truth nodule centres with the ground-truth diameters, the model
(default: the built-in demo model) scores them exactly as the app does (``Predictor.predict``, one call
per study), and the Spearman rank correlation between its malignancy probability and the LIDC readers'
mean malignancy rating (1-5) is measured on

(a) the demo study (``core.phantom.demo.demo_study()``, test-split nodules), and
(b) ``--studies`` phantom studies of the validation split with ``--nodules`` nodules each (seeds
    fixed; written once into the user cache and reused), pooled over all nodules and per study (mean).

The honest baseline is the ranking by marker diameter alone, measured the same way. Spearman: Pearson
correlation of average ranks (ties share their mean rank), numpy only. 95 % intervals are percentile
bootstraps (2,000 resamples, fixed seed) over nodules for a single study and the pooled set, and over
studies for the per-study mean; model and baseline are resampled together, so "model - diameter" is a
paired difference. The phantom studies take about 120 MB each in the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CACHE_VERSION = 1
FIRST_SEED = 5100
BOOTSTRAP = 2000


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start + 1
        while end < len(values) and sorted_values[end] == sorted_values[start]:
            end += 1
        ranks[order[start:end]] = (start + end + 1) / 2  # mean of 1-based ranks start+1..end
        start = end
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho with average ranks for ties; NaN when either side is constant or n < 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) != len(b):
        raise ValueError("spearman: the two samples differ in length")
    if len(a) < 2:
        return float("nan")
    ra, rb = average_ranks(a) - (len(a) + 1) / 2, average_ranks(b) - (len(b) + 1) / 2
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


@dataclass
class StudyScores:
    name: str
    probability: np.ndarray  # the model's malignancy probability per nodule
    diameter: np.ndarray  # marker (= ground-truth) diameter, mm
    truth: np.ndarray  # readers' mean malignancy, 1-5


def score_study(folder: Path, predictor) -> StudyScores:
    from core.imaging.open_study import open_study
    from core.nodule.prediction import Marker

    truth = json.loads((folder / "ground_truth.json").read_text())
    nodules = truth["nodules"]
    markers = [Marker(n["id"], tuple(n["centre_mm"]), float(n["diameter_mm"])) for n in nodules]
    volume, _ = open_study(folder)
    results = predictor.predict(volume, markers)
    return StudyScores(
        folder.name,
        np.array([r.malignancy for r in results]),
        np.array([m.diameter_mm for m in markers]),
        np.array([n["mean_ratings"]["malignancy"] for n in nodules]),
    )


def phantom_studies(count: int, nodules: int) -> list[Path]:
    """Validation-split phantom studies, written once into the user cache (seeds FIRST_SEED..)."""
    from dataclasses import replace

    from core.lidc.table import load_nodules
    from core.phantom.demo import DEMO_OPTIONS
    from core.phantom.study import choose_nodules, write_phantom
    from core.util.paths import user_dir

    cache = user_dir("cache") / f"ranking-agreement-v{CACHE_VERSION}"
    pool = None
    folders = []
    for seed in range(FIRST_SEED, FIRST_SEED + count):
        folder = cache / f"val-seed{seed}-n{nodules}"
        if not (folder / "ground_truth.json").is_file():
            if pool is None:
                pool = load_nodules()
            options = replace(DEMO_OPTIONS, seed=seed, split="val", nodules=nodules)
            partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            start = time.perf_counter()
            try:
                write_phantom(partial, options, choose_nodules(pool, options))
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(partial, folder)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            print(f"  wrote {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        folders.append(folder)
    return folders


def bootstrap(statistic, groups: int, rng: np.random.Generator) -> np.ndarray:
    """``statistic(indices)`` (a vector) on ``BOOTSTRAP`` resamples of ``groups`` units, one row each."""
    return np.array([statistic(rng.integers(0, groups, groups)) for _ in range(BOOTSTRAP)], np.float64)


def agreement(studies: list[StudyScores], per_study: bool, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """(model rho, diameter rho, model - diameter), their 95 % intervals (3 x 2) and n.

    Pooled: rho over all nodules, resampling nodules. Per study: the mean of the studies' rhos,
    resampling studies. Both rankings are resampled together, so the difference is paired.
    """
    if per_study:
        rhos = np.array([[spearman(s.probability, s.truth), spearman(s.diameter, s.truth)] for s in studies])

        def statistic(i):
            model, diameter = np.nanmean(rhos[i], axis=0)
            return model, diameter, model - diameter

        n = int(np.isfinite(rhos).all(axis=1).sum())
    else:
        p = np.concatenate([s.probability for s in studies])
        d = np.concatenate([s.diameter for s in studies])
        y = np.concatenate([s.truth for s in studies])

        def statistic(i):
            model, diameter = spearman(p[i], y[i]), spearman(d[i], y[i])
            return model, diameter, model - diameter

        n = len(y)
    values = np.array(statistic(np.arange(len(rhos) if per_study else n)))
    samples = bootstrap(statistic, len(rhos) if per_study else n, rng)
    intervals = np.nanpercentile(samples, [2.5, 97.5], axis=0).T
    return values, intervals, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8, help="validation-split phantom studies")
    parser.add_argument("--nodules", type=int, default=8, help="nodules per phantom study (1-20)")
    parser.add_argument("--model", help="checkpoint (default: the built-in demo model)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    from core.model.inference import Predictor
    from core.model.store import default_model_path
    from core.phantom.demo import demo_study

    start = time.perf_counter()
    predictor = Predictor(Path(args.model) if args.model else default_model_path(), device=args.device)
    print(
        "preparing the studies (phantoms: first run only, a few seconds each)...", file=sys.stderr, flush=True
    )
    demo = score_study(demo_study(), predictor)
    folders = phantom_studies(args.studies, args.nodules)
    phantoms = []
    for number, folder in enumerate(folders, 1):
        phantoms.append(score_study(folder, predictor))
        print(f"  scored {number}/{len(folders)} phantom studies", file=sys.stderr, flush=True)

    rng = np.random.default_rng(0)
    rows = []
    for label, per, studies in (
        (f"demo study (test split), {len(demo.truth)} nodules", False, [demo]),
        (f"{len(phantoms)} val phantoms, pooled", False, phantoms),
        (f"{len(phantoms)} val phantoms, mean per study", True, phantoms),
    ):
        values, intervals, n = agreement(studies, per, rng)
        cells = [
            f"{v:+.3f} [{low:+.2f}, {high:+.2f}]" for v, (low, high) in zip(values, intervals, strict=True)
        ]
        rows.append((label, f"{n} {'studies' if per else 'nodules'}", *cells))

    print(f"model: {predictor.description} (weights {predictor.card.get('weights_sha256', '')[:12]})")
    print("Spearman rho vs. the readers' mean malignancy (1-5); markers at the ground-truth nodules")
    header = ("set", "n", "model probability", "diameter only (baseline)", "model - diameter")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        "[95 % paired bootstrap interval: over nodules for one study and pooled, over studies for the mean]"
    )
    print("val-split nodules were never trained on but chose the model's epoch; the demo's are test split.")
    print(f"({time.perf_counter() - start:.0f} s; device {predictor.device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
