"""Benchmark: what moves a nodule's measured volume between two scans of it (issue 17's repeatability).

Phantoms of the validation split (``--split test``: the reserved one) rendered twice, as
``bench/bench_segmentation.py``'s repeatability does: other noise and a sub-voxel shift. For each
nodule of LIDC diameter >= 6 mm, its consensus mask on each grid (the segmenter left out: this is
the estimator's share), its volume measured seven ways:

* ``shipped``: ``partial_volume_mm3``, each scan with its own levels and its own mask's band;
* ``shared tissue`` / ``shared levels``: the same with the tissue level (and the parenchyma) the
  mean of the two scans' (``partial_volume_levels``): what a follow-up measuring both scans could share;
* ``fixed region``: the plain linear integral, sum of (HU - parenchyma) / (tissue - parenchyma) over
  ONE region for both scans (the union of their two masks dilated by ``--band`` mm), each scan its own
  levels; then with the tissue, and with both levels, shared;
* ``paired (follow-up)``: ``core.measure.paired``, what a follow-up reading measures: the second
  scan keeps its own volume, the first is it less the change read from both images over one region
  with one tissue contrast (where it refuses, the two own volumes);
* ``rendered``: the occupancy summed (the truth; 100 % by construction, for reference).

``--masks hybrid``: each rendering's mask by the shipped segmenter (``segment_nodule`` from the
nodule's centre and LIDC diameter) instead of its consensus mask: the whole measurement's spread.

Prints, per thickness, the share of nodules whose two volumes lie within 10 % of the smaller (the
floor asks >= 90 %) and the median |volume error| against the rendered occupancy; then, all
thicknesses pooled, each way's robust 95 % limit of |dV| / the smaller volume (2.91 x its median, as
``core.measure.measurement`` derives the follow-up's "within measurement error"). The fixed region
counts the vessels and wall inside it, so its volume error is not a candidate's: it says how much of
the spread the region following the mask's layer flips causes. Not a test. From the repository root::

    .venv/bin/python bench/bench_volume_repeatability.py [--split val] [--seeds 1 2 3 4]
        [--thickness 2.5 1.25] [--band 3.0] [--masks consensus|hybrid]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lidc.table import load_nodules
from core.measure.mask import SegmentationError
from core.measure.paired import paired_volumes
from core.measure.segment import partial_volume_levels, partial_volume_mm3, segment_nodule
from core.phantom.nodules import resample_mask
from core.phantom.study import PhantomOptions, build_phantom, choose_nodules, truth_masks

WAYS = (
    "shipped",
    "shared tissue",
    "shared levels",
    "fixed region",
    "fixed region, shared tissue",
    "fixed region, shared levels",
    "paired (follow-up)",
    "rendered",
)
MARGIN_MM = 8.0  # the crop around a nodule's placed centre, beyond 0.8 x its diameter


def scans(options, nodules, seed, hybrid: bool = False):
    """The two renderings: (volume, placed nodules, their masks: consensus or the hybrid's) each."""
    shift = tuple(float(v) for v in np.random.default_rng([seed, 7]).uniform(-0.5, 0.5, 3))
    for extra in ({}, {"noise_seed": 1, "shift_zyx": shift}):
        volume, placed = build_phantom(options, nodules, **extra)
        yield volume, placed, (segmented if hybrid else truth_masks)(volume, placed)


def segmented(volume, placed) -> dict:
    """Each nodule's hybrid mask from its centre and LIDC diameter (an empty mask where refused)."""
    masks = truth_masks(volume, placed)
    for p in placed:
        key = f"n{p.index + 1}"
        try:
            masks[key] = segment_nodule(volume, p.centre_mm, p.nodule.diameter_mm)
        except SegmentationError:
            masks[key] = replace(masks[key], mask=np.zeros((1, 1, 1), dtype=bool))
    return masks


def crop(volume, placed_nodule):
    spacing = np.array(volume.spacing[::-1])
    half = np.ceil((0.8 * placed_nodule.nodule.diameter_mm + MARGIN_MM) / spacing).astype(int)
    lo = np.maximum(np.array(placed_nodule.centre_zyx) - half, 0)
    hi = np.minimum(np.array(placed_nodule.centre_zyx) + half + 1, volume.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def linear(raw, region, levels, voxel_mm3) -> float:
    background, tissue = levels
    return float(((raw[region] - background) / (tissue - background)).sum() * voxel_mm3)


def measure_pair(first, second, band_mm: float) -> dict[str, tuple[float, float]] | None:
    """Each way's two volumes of one nodule; None where a mask is empty on either grid."""
    (v1, p1, m1), (v2, p2, m2) = first, second
    if m1.voxels == 0 or m2.voxels == 0:
        return None
    levels = [partial_volume_levels(v1, m1), partial_volume_levels(v2, m2)]
    shared = tuple(float(np.mean(pair)) for pair in zip(*levels, strict=True))
    tissue = [(own[0], shared[1]) for own in levels]
    out = {
        "shipped": (partial_volume_mm3(v1, m1), partial_volume_mm3(v2, m2)),
        "shared tissue": (partial_volume_mm3(v1, m1, tissue[0]), partial_volume_mm3(v2, m2, tissue[1])),
        "shared levels": (partial_volume_mm3(v1, m1, shared), partial_volume_mm3(v2, m2, shared)),
    }
    box = crop(v1, p1)  # the same box in both: the shift is sub-voxel, the placed centre the same
    spacing = np.array(v1.spacing[::-1])
    union = m1.in_volume(v1.shape)[box] | m2.in_volume(v2.shape)[box]
    region = ndimage.distance_transform_edt(~union, sampling=spacing) <= band_mm
    raws = [v.array[box].astype(np.float32) for v in (v1, v2)]
    voxel = float(np.prod(spacing))
    for name, used in (("fixed region", levels), ("fixed region, shared tissue", tissue)):
        out[name] = tuple(linear(raw, region, lv, voxel) for raw, lv in zip(raws, used, strict=True))
    out["fixed region, shared levels"] = tuple(linear(raw, region, shared, voxel) for raw in raws)
    own = out["shipped"]
    try:
        together = paired_volumes(v1, m1, v2, m2, np.eye(4), own[1])
        out["paired (follow-up)"] = (together.prior_mm3, together.current_mm3)
    except ValueError:  # compare keeps the own volumes, judged by the independent limit
        out["paired (follow-up)"] = own
        out["paired refused"] = True
    out["rendered"] = tuple(
        float(resample_mask(p.nodule, v.spacing, p.shift_zyx).occupancy.sum() * np.prod(v.spacing))
        for v, p in ((v1, p1), (v2, p2))
    )
    return out


def within(pair: tuple[float, float]) -> bool:
    smaller = min(pair)
    return smaller > 0 and abs(pair[0] - pair[1]) <= 0.10 * smaller


ROBUST_95 = 1.96 / 0.674  # 95 % limit per median |d| of a normal difference (core.measure.measurement)


def spread(pair: tuple[float, float]) -> float:
    """|difference| / the smaller volume, as the follow-up judges a change (inf where one is 0)."""
    smaller = min(pair)
    return abs(pair[0] - pair[1]) / smaller if smaller > 0 else float("inf")


def print_limits(rows: list[dict], label: str) -> None:
    """The robust 95 % limit of each way's |dV| / smaller (what REPEATABILITY_VOLUME_PERCENT is)."""
    print(
        f"\n{label}, {len(rows)} nodules >= 6 mm: robust 95 % limit = {ROBUST_95:.2f} x median |dV| / smaller"
    )
    for way in WAYS[:-1]:
        kept = rows
        if way == "paired (follow-up)":  # the limit of the pairs measured together only
            kept = [row for row in rows if not row.get("paired refused")]
            print(f"  ({len(rows) - len(kept)} pair(s) refused by core.measure.paired left out of its line)")
        spreads = [spread(row[way]) for row in kept]
        median = statistics.median(spreads)
        p90, p95 = np.percentile(spreads, [90, 95])
        beyond = sum(v >= ROBUST_95 * median for v in spreads)
        print(
            f"  {way:<30} median {median:.1%}  limit {ROBUST_95 * median:.1%}  "
            f"(plain 90th / 95th percentile {p90:.1%} / {p95:.1%}; beyond the limit {beyond}/{len(kept)})"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--thickness", type=float, nargs="+", default=[2.5, 1.25])
    parser.add_argument("--nodules", type=int, default=20)
    parser.add_argument("--band", type=float, default=3.0, help="mm around the masks' union (fixed region)")
    parser.add_argument("--masks", choices=("consensus", "hybrid"), default="consensus")
    args = parser.parse_args(argv)
    pool = load_nodules()
    pooled = []
    for thickness in args.thickness:
        rows = []
        for seed in args.seeds:
            options = PhantomOptions(
                seed=seed, split=args.split, nodules=args.nodules, slice_thickness=thickness
            )
            nodules = choose_nodules(pool, options)
            first, second = scans(options, nodules, seed, hybrid=args.masks == "hybrid")
            for p1, p2 in zip(first[1], second[1], strict=True):
                if p1.nodule.diameter_mm < 6.0:
                    continue
                key = f"n{p1.index + 1}"
                row = measure_pair((first[0], p1, first[2][key]), (second[0], p2, second[2][key]), args.band)
                if row is not None:
                    rows.append(row)
            print(f"seed {seed}, {thickness:g} mm: {len(rows)} nodules >= 6 mm so far", flush=True)
        print(
            f"\n{thickness:g} mm slices, {args.split} split, seeds {args.seeds}, {args.masks} masks, "
            f"{len(rows)} nodules >= 6 mm:"
        )
        for way in WAYS:
            agree = sum(within(row[way]) for row in rows)
            error = statistics.median(
                abs(v / r - 1) for row in rows for v, r in zip(row[way], row["rendered"], strict=True)
            )
            print(
                f"  {way:<30} within 10 %: {agree}/{len(rows)} = {agree / len(rows):.0%}   "
                f"median |volume error| {error:.1%}"
            )
        pooled += rows
    if len(args.thickness) > 1:
        print_limits(pooled, f"all thicknesses ({', '.join(f'{t:g}' for t in args.thickness)} mm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
