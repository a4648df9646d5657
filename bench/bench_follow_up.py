"""Benchmark: registration of phantom follow-up pairs (issue 18), on the reserved test split.

For each seed, a follow-up pair (``core.phantom.followup``: the patient repositioned by a known rigid
motion, nodules grown or shrunk, one new, one resolved) is rendered in memory; then

* ``register(prior, current)`` is timed (wall clock, and the process's CPU time over all threads,
  which a busy machine inflates less), beside a reference measured in the same run on the same
  pair: one SimpleITK linear resample of the whole prior onto the current grid (what showing the
  prior in the current frame costs at the least), so the ratio carries across machines;
* at every prior nodule, the distance (mm) from where the truth motion puts it in the current study
  to: the prior position itself (no registration), the registration's position, and the position
  after ``refine_point``;
* the truth's nodules (centre, diameter) of both studies paired by ``core.followup.matching.match``
  through the registration: pairs found right of the truth's pairs, and whether exactly the truth's
  new and resolved nodules were left unpaired;
* the whole follow-up reading, ``core.followup.compare`` with the truth's centres and diameters as the
  reader's markers, at every ``--intervals`` (the rendered pair does not depend on the interval, only
  the studies' dates do, so each seed is rendered and registered once): pairs right, new and resolved
  right, the volume change measured against the truth's volume factor (percentage points), the VDT
  of each truly growing nodule against the truth's ``interval * ln 2 / ln(factor)`` (a growing
  nodule measured as not growing has no VDT and counts as missed), and Lung-RADS agreement per
  current nodule with the category the same rules (``core.nodule.lungrads_followup``) give the
  truth's sizes: its LIDC diameter at both times and its texture class (part-solid: a solid
  component of diameter x solid fraction^(1/3), the rendered core's share of the volume). Each reading
  is made twice on the same pairs: the volumes measured together (``core.measure.paired``, what
  ``compare`` does) and each study's own (``compare(..., paired=False)``), with the stable nodules
  judged within measurement error counted for both.

Targets (issue 18, a 512x512x300 pair on a 2-core CPU): registration floor <= 10 s, goal <= 3 s.

Run from the repository root::

    .venv/bin/python bench/bench_follow_up.py [--seeds 1 2 3] [--size 512] [--current-slice-thickness 1.25]
        [--intervals 90 365 730]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FLOOR_S, GOAL_S = 10.0, 3.0


def reference_resample(prior, current) -> float:
    """Seconds for one linear resample of the whole prior onto the current grid (SimpleITK)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(prior.array)
    image.SetSpacing(prior.spacing)
    image.SetOrigin(prior.origin)
    start = time.perf_counter()
    reference = sitk.Image(current.shape[::-1], sitk.sitkInt16)
    reference.SetSpacing(current.spacing)
    reference.SetOrigin(current.origin)
    sitk.Resample(image, reference, sitk.Euler3DTransform(), sitk.sitkLinear, -1000.0)
    return time.perf_counter() - start


def one_seed(seed: int, size: int, thickness: float, pool, intervals=()) -> dict:
    from core.followup.register import refine_point, register
    from core.phantom.followup import TRENDS, FollowUpOptions, build_follow_up
    from core.phantom.study import PhantomOptions, choose_nodules

    options = PhantomOptions(seed=seed, split="test", nodules=5, size=size)
    largest = options.max_diameter_mm / max(TRENDS["growing"]) ** (1 / 3)
    nodules = choose_nodules(pool, replace(options, nodules=options.nodules + 1, max_diameter_mm=largest))
    start = time.perf_counter()
    pair = build_follow_up(options, FollowUpOptions(current_slice_thickness=thickness), nodules)
    built = time.perf_counter() - start
    reference = reference_resample(pair.prior, pair.current)
    start, cpu = time.perf_counter(), time.process_time()
    result = register(pair.prior, pair.current)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    motion = pair.prior_to_current
    before, after, refined, refine_s = [], [], [], []
    for nodule in pair.prior_nodules:
        point = np.array(nodule.centre_mm)
        truth = motion[:3, :3] @ point + motion[:3, 3]
        before.append(float(np.linalg.norm(point - truth)))
        after.append(float(np.linalg.norm(result.to_current(point) - truth)))
        start = time.perf_counter()
        moved = refine_point(pair.prior, pair.current, point, result)
        refine_s.append(time.perf_counter() - start)
        refined.append(float(np.linalg.norm(np.array(moved.current_mm) - truth)))
    found = _pairing(pair, result)
    readings = [reading(pair, result, days) for days in intervals]
    own = [reading(pair, result, days, paired=False) for days in intervals]
    return {
        "readings": readings,
        "own": own,
        "seed": seed,
        "pairs": found,
        "shape": f"{pair.prior.shape[2]}x{pair.prior.shape[1]}x{pair.prior.shape[0]}",
        "current_slices": pair.current.shape[0],
        "build_s": built,
        "register_s": seconds,
        "register_cpu_s": cpu,
        "reference_s": reference,
        "surface": (result.lung_surface_before_mm, result.lung_surface_mm),
        "before": before,
        "after": after,
        "refined": refined,
        "refine_ms": 1000 * statistics.median(refine_s),
    }


def _pairing(pair, result) -> tuple[int, int, bool]:
    """(right pairs, truth pairs, new and resolved exactly right) of matching the truth's nodules."""
    from core.followup.matching import Candidate, match

    def candidates(placed):
        return [Candidate(p.truth()["id"], p.centre_mm, p.nodule.diameter_mm) for p in placed]

    found = match(candidates(pair.prior_nodules), candidates(pair.current_nodules), result.to_current)
    truth = {(p["prior_id"], p["current_id"]) for p in pair.truth["pairs"]}
    right = len(truth & {(p.prior_id, p.current_id) for p in found.pairs})
    rest = set(found.new) == set(pair.truth["new"]) and set(found.resolved) == set(pair.truth["resolved"])
    return right, len(truth), rest


def reading(pair, registration, interval_days: int, paired: bool = True) -> dict:
    """The follow-up reading of ``pair`` as if ``interval_days`` apart, against its truth; ``paired``:
    the volumes measured together (``core.measure.paired``), else each study's own."""
    import datetime as dt
    import math

    from core.followup.compare import compare
    from core.nodule.markers import NoduleMarker
    from core.phantom.followup import CURRENT_DATE

    def markers(placed):
        return [NoduleMarker(p.truth()["id"], "", p.centre_mm, p.nodule.diameter_mm) for p in placed]

    dates = (CURRENT_DATE - dt.timedelta(days=interval_days), CURRENT_DATE)
    found = compare(
        pair.prior, pair.current, markers(pair.prior_nodules), markers(pair.current_nodules),
        registration=registration, dates=dates, paired=paired,
    )  # fmt: skip
    truth = pair.truth
    pairs = {(p.prior_id, p.current_id): p for p in found.pairs}
    right = sum((t["prior_id"], t["current_id"]) in pairs for t in truth["pairs"])
    rest = [n.current_id for n in found.new] == truth["new"] and list(found.resolved) == truth["resolved"]
    volume_errors, vdt_errors, vdt_missed, growing, stable, together = [], [], 0, 0, [], 0
    for t in truth["pairs"]:
        g = getattr(pairs.get((t["prior_id"], t["current_id"])), "growth", None)
        if g is not None and g.volume_change_percent is not None:
            volume_errors.append(abs(g.volume_change_percent - 100 * (t["volume_factor"] - 1)))
            together += g.volume_method == "paired"
        if t["trend"] == "stable" and g is not None:
            stable.append(g.within_error)
        if t["trend"] == "growing":
            growing += 1
            if g is None or g.vdt_days is None:
                vdt_missed += 1
            else:
                truth_vdt = interval_days * math.log(2) / math.log(t["volume_factor"])
                vdt_errors.append(100 * abs(g.vdt_days - truth_vdt) / truth_vdt)
    measured = {p.current_id: p.lung_rads for p in found.pairs} | {
        n.current_id: n.lung_rads for n in found.new
    }
    expected = truth_categories(pair, dates)
    agree = sum(1 for k, c in expected.items() if measured.get(k) is not None and measured[k].category == c)
    return {
        "interval": interval_days,
        "pairs": (right, len(truth["pairs"])),
        "rest": rest,
        "volume_errors": volume_errors,
        "together": together,
        "stable": stable,
        "vdt_errors": vdt_errors,
        "vdt_missed": vdt_missed,
        "growing": growing,
        "lung_rads": (agree, len(expected)),
    }


def truth_categories(pair, dates) -> dict[str, str]:
    """Each current nodule's Lung-RADS from the truth's sizes and texture (see the module docstring)."""
    from core.nodule.lungrads_followup import NoduleExam, follow_up_category
    from core.phantom.appearance import appearance_from_ratings

    def exam(date, placed, diameter):
        texture = placed.truth()["texture_class"]
        solid = appearance_from_ratings(placed.nodule.mean_ratings).solid_fraction ** (1 / 3) * diameter
        return NoduleExam(date, texture, diameter, solid if texture == "part-solid" else None)

    prior_by_id = {p.truth()["id"]: p for p in pair.prior_nodules}
    current_by_id = {p.truth()["id"]: p for p in pair.current_nodules}
    found = {}
    for t in pair.truth["pairs"]:
        before = exam(dates[0], prior_by_id[t["prior_id"]], t["prior_diameter_mm"])
        after = exam(dates[1], current_by_id[t["current_id"]], t["current_diameter_mm"])
        found[t["current_id"]] = follow_up_category(after, [before]).category
    for current_id in pair.truth["new"]:
        placed = current_by_id[current_id]
        new = exam(dates[1], placed, placed.nodule.diameter_mm)
        found[current_id] = follow_up_category(new, screened_before=True).category
    return found


def print_readings(rows: list[dict], key: str = "readings", title: str = "") -> None:
    """The follow-up readings' table, one line per seed and interval, and the totals."""
    print(
        f"\n{title}\n{'seed':>4} {'days':>5} {'pairs':>5} {'new/res':>7} {'vol err pp (med/max)':>20} "
        f"{'VDT err % (med/max)':>19} {'VDT missed':>10} {'Lung-RADS':>9}"
    )
    for row in rows:
        for r in row[key]:
            vol, vdt = r["volume_errors"], r["vdt_errors"]
            print(
                f"{row['seed']:>4} {r['interval']:>5} {r['pairs'][0]:>2}/{r['pairs'][1]:<2} "
                f"{'right' if r['rest'] else 'WRONG':>7} {_med_max(vol):>20} {_med_max(vdt):>19} "
                f"{r['vdt_missed']:>4}/{r['growing']:<5} {r['lung_rads'][0]:>4}/{r['lung_rads'][1]:<4}"
            )
    readings = [r for row in rows for r in row[key]]
    if not readings:
        return
    stable = [s for r in readings for s in r["stable"]]
    right, total = (sum(r["pairs"][k] for r in readings) for k in (0, 1))
    agree, nodules = (sum(r["lung_rads"][k] for r in readings) for k in (0, 1))
    vol = [e for r in readings for e in r["volume_errors"]]
    vdt = [e for r in readings for e in r["vdt_errors"]]
    missed, growing = sum(r["vdt_missed"] for r in readings), sum(r["growing"] for r in readings)
    print(
        f"follow-up readings ({len(readings)}): pairs {right}/{total} right "
        f"({100 * right / max(total, 1):.0f} %, floor 100 % {'met' if right == total else 'NOT met'}), "
        f"new and resolved right in {sum(r['rest'] for r in readings)}/{len(readings)}; "
        f"volume change error {_med_max(vol)} percentage points (median/max), "
        f"{sum(r['together'] for r in readings)}/{len(vol)} measured together; "
        f"stable nodules within measurement error {sum(stable)}/{len(stable)}; "
        f"VDT error {_med_max(vdt)} % on {len(vdt)} readings of growing nodules, {missed}/{growing} missed; "
        f"Lung-RADS agreement with the truth's sizes {agree}/{nodules} "
        f"({100 * agree / max(nodules, 1):.0f} %)"
    )


def _med_max(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}/{max(values):.1f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--size", type=int, default=512, help="rows and columns (300 slices at 512)")
    parser.add_argument("--current-slice-thickness", type=float, default=1.25, help="mm; the prior's is 1")
    parser.add_argument(
        "--intervals", type=int, nargs="*", default=[90, 365, 730], help="days between the studies' readings"
    )
    args = parser.parse_args(argv)
    from core.lidc.table import load_nodules

    pool = load_nodules()
    rows = []
    head = (
        f"{'seed':>4} {'prior grid':>12} {'cur sl':>6} {'register s':>10} {'cpu s':>5} {'resample s':>10} "
        f"{'ratio':>5} "
        f"{'lung surf mm':>13} {'no reg mm':>9} {'reg mm (med/max)':>16} {'refined mm (med/max)':>20} "
        f"{'refine ms':>9} {'pairs':>5} {'new/res':>7}"
    )
    print(head)
    for seed in args.seeds:
        row = one_seed(seed, args.size, args.current_slice_thickness, pool, args.intervals)
        rows.append(row)
        print(
            f"{row['seed']:>4} {row['shape']:>12} {row['current_slices']:>6} {row['register_s']:>10.2f} "
            f"{row['register_cpu_s']:>5.2f} "
            f"{row['reference_s']:>10.2f} {row['register_s'] / row['reference_s']:>5.1f} "
            f"{row['surface'][0]:>6.2f}->{row['surface'][1]:<5.2f} {statistics.median(row['before']):>9.1f} "
            f"{statistics.median(row['after']):>8.2f}/{max(row['after']):<7.2f} "
            f"{statistics.median(row['refined']):>11.2f}/{max(row['refined']):<8.2f} "
            f"{row['refine_ms']:>9.0f} {row['pairs'][0]:>2}/{row['pairs'][1]:<2} "
            f"{'right' if row['pairs'][2] else 'WRONG':>7}",
            flush=True,
        )
    times = [r["register_s"] for r in rows]
    ratios = [r["register_s"] / r["reference_s"] for r in rows]
    after = [e for r in rows for e in r["after"]]
    refined = [e for r in rows for e in r["refined"]]
    print(
        f"\n{len(rows)} pairs, {len(after)} prior nodules: "
        f"registration median {statistics.median(times):.2f} s "
        f"(max {max(times):.2f} s; {statistics.median(ratios):.1f}x one full-volume resample; CPU time "
        f"median {statistics.median([r['register_cpu_s'] for r in rows]):.2f} s, all threads), "
        f"floor {FLOOR_S:g} s {'met' if max(times) <= FLOOR_S else 'NOT met'}, "
        f"goal {GOAL_S:g} s {'met' if statistics.median(times) <= GOAL_S else 'NOT met'} (median)"
    )
    right, total = sum(r["pairs"][0] for r in rows), sum(r["pairs"][1] for r in rows)
    print(
        f"pairing (truth centres as markers): {right}/{total} pairs right, new and resolved right in "
        f"{sum(r['pairs'][2] for r in rows)}/{len(rows)} pairs of studies"
    )
    print(
        f"error at the nodules: registered median {statistics.median(after):.2f} mm (max {max(after):.2f}), "
        f"refined median {statistics.median(refined):.2f} mm (max {max(refined):.2f}); "
        f"rendering a pair took {statistics.median([r['build_s'] for r in rows]):.0f} s (not timed above)"
    )
    print_readings(rows, "readings", "volumes measured together (core.measure.paired), as compare does:")
    print_readings(rows, "own", "each study's own volumes (compare(..., paired=False)), same pairs:")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
