"""Train the learned nodule segmenter (``models.seg3d``) on phantoms and ship its weights and card.

    python scripts/train_segmenter.py [--train-phantoms 60] [--val-phantoms 12] [--steps 1000] [--occupancy]
                                      [--out resources/segmenter/seg3d.safetensors]

Training data: phantoms (size 256, to render fast) of the TRAIN split only, each with its own slice
thickness (0.625-3 mm), pixel spacing (0.5-1.0 mm) and noise (5-50 HU); each nodule's rendered
consensus mask (``truth_masks``) is the exact label. Each nodule is cut several times as a reader
would mark it: the centre moved by up to a quarter diameter, the diameter off by up to +-30 %. Two
markers per phantom land on plain lung (label: nothing) so air and vessels are learned as "no nodule".
``--occupancy``: each training phantom's nodules moved by a random sub-voxel shift and labelled by
their rendered occupancy (0..1, ``occupancy_labels``) instead of the mask thresholded at 0.5, whose
volume moves by a voxel layer with the shift (at 2.5 mm slices a whole slice): a network trained on
it can learn a soft volume that stays put (issue 17, repeatability).
Validation: phantoms of the VAL split at 1.25 and 2.5 mm, markers at the truth's centre and diameter
and jittered, Dice on the CT's own grid (``core.measure.evaluate.agreement``); the probability cut
with the best median Dice there becomes the card's ``threshold``. ``--revalidate`` does only this
for the weights already in ``OUT`` (their training record kept).

Writes ``OUT`` (safetensors, the card in its metadata) and ``OUT`` with ``.json`` (the same card, to
read), each atomically. About 20 minutes on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lidc.table import load_nodules
from core.measure import learned
from core.measure.evaluate import agreement
from core.phantom.nodules import resample_mask
from core.phantom.study import PhantomOptions, build_phantom, choose_nodules, truth_masks
from core.util.atomic import atomic_write_text
from core.util.safetensors_io import read_document_file, tensors_sha256, write_document_file
from models.seg3d import Seg3DConfig, Seg3DNet, segmentation_loss

JITTERS = 8  # markers per training nodule
NEGATIVES = 2  # plain-lung markers per training phantom
SIZE = 256
LABELS = {
    False: "the consensus masks as rendered",
    True: "the consensus masks' rendered occupancy (0..1), nodules moved by a random sub-voxel shift",
}
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)  # probability cuts tried on the validation split


def phantom(split: str, seed: int, pool, rng=None, slice_mm: float = 1.25, occupancy: bool = False):
    """A phantom of ``split`` (random scanner settings when ``rng`` is given), its placed nodules and
    their labels: the truth masks, or with ``occupancy`` (and ``rng``) the nodules moved by a random
    sub-voxel shift and labelled by their rendered occupancy (``occupancy_labels``); None when its
    nodules do not fit a 256-pixel chest."""
    shift = (0.0, 0.0, 0.0)
    if occupancy and rng is not None:
        shift = tuple(float(v) for v in rng.uniform(-0.5, 0.5, 3))
    if rng is None:
        settings = dict(slice_thickness=slice_mm, pixel_spacing=0.7, noise=20.0)
    else:
        settings = dict(
            slice_thickness=float(rng.uniform(0.625, 3.0)),
            pixel_spacing=float(rng.uniform(0.5, 1.0)),
            noise=float(rng.uniform(5.0, 50.0)),
        )
    for count in (5, 3):
        options = PhantomOptions(seed=seed, split=split, nodules=count, size=SIZE, **settings)
        try:
            volume, placed = build_phantom(options, choose_nodules(pool, options), shift_zyx=shift)
        except ValueError:  # no room in a small chest for these nodules
            continue
        labels = occupancy_labels(volume, placed) if occupancy else truth_masks(volume, placed)
        return volume, placed, labels
    return None


class Occupancy(NamedTuple):
    """A nodule's rendered occupancy (0..1) in a box of the CT grid: a label whose sum is the
    nodule's volume wherever it lies against the grid (a thresholded mask moves by a layer)."""

    origin_zyx: tuple[int, int, int]
    mask: np.ndarray  # float32 (z, y, x), named as ``NoduleMask``'s box so that ``cut`` takes both


def occupancy_labels(volume, placed) -> dict[str, Occupancy]:
    """Each placed nodule's occupancy where ``truth_masks`` puts its thresholded mask."""
    labels = {}
    for p in placed:
        shape = resample_mask(p.nodule, volume.spacing, p.shift_zyx)
        origin = tuple(int(c) - int(o) for c, o in zip(p.centre_zyx, shape.centre_offset, strict=True))
        labels[f"n{p.index + 1}"] = Occupancy(origin, shape.occupancy)
    return labels


def jittered(rng, centre_mm, diameter_mm):
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(0, 0.25) * diameter_mm
    return np.asarray(centre_mm) + offset, diameter_mm * rng.uniform(0.7, 1.3)


def cut(volume, centre_mm, diameter_mm, truth=None):
    """(input patch float16, label uint8 0-255) for one marker."""
    grid = learned.PatchGrid.around(volume, centre_mm, diameter_mm)
    x = learned.scale_hu(learned.sample(volume.array, grid, outside=learned.HU_RANGE[0]))
    y = np.zeros_like(x) if truth is None else learned.sample(truth.mask, grid, 0.0, truth.origin_zyx)
    return x.astype(np.float16), np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)


def plain_lung(volume, placed, rng):
    """A marker on lung (or air) at least 10 mm clear of every nodule."""
    for _ in range(200):
        zyx = [int(rng.integers(n)) for n in volume.shape]
        if volume.array[tuple(zyx)] > -750:
            continue
        centre = volume.voxel_to_mm(np.array(zyx[::-1], dtype=float))
        diameter = float(rng.uniform(4, 20))
        if all(
            np.linalg.norm(centre - p.centre_mm) > p.nodule.diameter_mm + diameter / 2 + 10 for p in placed
        ):
            return centre, diameter
    return None


def training_set(count: int, pool, seed: int, occupancy: bool = False):
    rng = np.random.default_rng([seed, 17])
    xs, ys, nodules, phantoms = [], [], 0, 0
    for index in range(count):
        made = phantom("train", 10_000 + index, pool, rng, occupancy=occupancy)
        if made is None:
            continue
        volume, placed, truths = made
        phantoms += 1
        for p in placed:
            nodules += 1
            for _ in range(JITTERS):
                centre, diameter = jittered(rng, p.centre_mm, p.nodule.diameter_mm)
                x, y = cut(volume, centre, diameter, truths[f"n{p.index + 1}"])
                xs.append(x), ys.append(y)
        for _ in range(NEGATIVES):
            marker = plain_lung(volume, placed, rng)
            if marker is not None:
                x, y = cut(volume, *marker)
                xs.append(x), ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), nodules, phantoms


def validate(model, sets, seed: int) -> tuple[float, dict]:
    """The probability threshold with the best median Dice (exact markers, both thicknesses), and at
    it the median Dice and |volume error| on the CT's grid, markers exact and jittered, per thickness."""
    rng = np.random.default_rng([seed, 23])
    scores = {}  # (slice, kind) -> [(threshold -> (dice, |volume error|)) per nodule]
    for slice_mm, items in sets.items():
        for kind in ("exact", "jittered"):
            scores[slice_mm, kind] = []
            for volume, p, truth in items:
                centre, diameter = p.centre_mm, p.nodule.diameter_mm
                if kind == "jittered":
                    centre, diameter = jittered(rng, centre, diameter)
                found = learned.Probability.of(model, volume, centre, diameter)
                scores[slice_mm, kind].append({t: _score(found, t, volume, truth) for t in THRESHOLDS})

    def median(key, threshold, which):
        return round(float(np.median([row[threshold][which] for row in scores[key]])), 4)

    exact = [key for key in scores if key[1] == "exact"]
    best = max(THRESHOLDS, key=lambda t: float(np.median([row[t][0] for k in exact for row in scores[k]])))
    out = {
        f"{slice_mm:g}mm_{kind}": {
            "nodules": len(scores[slice_mm, kind]),
            "median_dice": median((slice_mm, kind), best, 0),
            "median_abs_volume_error": median((slice_mm, kind), best, 1),
        }
        for slice_mm, kind in scores
    }
    return best, out


def _score(found, threshold: float, volume, truth) -> tuple[float, float]:
    try:
        score = agreement(truth, found.mask(threshold, volume))
    except ValueError:  # SegmentationError: found nothing
        return 0.0, 1.0
    return score.dice, abs(score.volume_error)


def train(model, x, y, steps: int, batch: int, seed: int, say) -> float:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    model.train()
    running = None
    for step in range(steps):
        pick = torch.randint(len(x), (batch,), generator=generator)
        xb, yb = x[pick].float()[:, None], y[pick].float()[:, None] / 255
        for axis in (2, 3, 4):  # mirror: a nodule's side in the chest is no cue
            if torch.rand(1, generator=generator).item() < 0.5:
                xb, yb = xb.flip(axis), yb.flip(axis)
        loss = segmentation_loss(model(xb)["logits"], yb)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % 100 == 0:
            say(f"step {step + 1}/{steps}: loss {running:.3f}")
    model.eval()
    return float(running)


def validation_sets(count: int, pool) -> dict:
    sets = {}
    for slice_mm in (1.25, 2.5):
        items = []
        for index in range(count // 2):
            made = phantom("val", 20_000 + index, pool, slice_mm=slice_mm)
            if made is not None:
                volume, placed, truths = made
                items += [(volume, p, truths[f"n{p.index + 1}"]) for p in placed]
        sets[slice_mm] = items
    return sets


def _trained(args, pool, say):
    """The model trained from scratch, its tensors and the card's training part."""
    x, y, nodules, phantoms = training_set(args.train_phantoms, pool, args.seed, args.occupancy)
    say(f"{len(x)} training patches from {nodules} nodules in {phantoms} train-split phantoms")
    config = Seg3DConfig()
    model = Seg3DNet(config)
    final_loss = train(model, x, y, args.steps, args.batch, args.seed, say)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    card = {
        "schema": learned.CARD.schema,
        "method": learned.METHOD,
        "config": config.to_dict(),
        "patch": learned.patch_geometry(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_on": {
            "data": "phantoms of the LIDC-IDRI train split; labels: " + LABELS[args.occupancy],
            "split": "train",
            "phantoms": phantoms,
            "nodules": nodules,
            "patches": len(x),
            "phantom_size": SIZE,
            "slice_thickness_mm": [0.625, 3.0],
            "pixel_spacing_mm": [0.5, 1.0],
            "noise_hu": [5.0, 50.0],
            "marker_jitter": "centre up to 0.25 diameter, diameter +-30 %",
            "steps": args.steps,
            "batch": args.batch,
            "final_loss": round(final_loss, 4),
            "seconds": round(time.perf_counter() - args.started),
            "cpu_seconds": round(time.process_time()),
            "torch": torch.__version__,
        },
        "weights_sha256": tensors_sha256(tensors),
    }
    return model, tensors, card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-phantoms", type=int, default=60)
    parser.add_argument("--val-phantoms", type=int, default=12)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=learned.WEIGHTS)
    parser.add_argument(
        "--occupancy",
        action="store_true",
        help="labels: the rendered occupancy of nodules moved by a random sub-voxel shift",
    )
    parser.add_argument("--revalidate", action="store_true", help="only choose OUT's threshold and validate")
    args = parser.parse_args(argv)
    if min(args.train_phantoms, args.val_phantoms, args.steps, args.batch) < 1:
        parser.error("phantom counts, steps and batch must be >= 1")
    if args.out.suffix != ".safetensors":
        parser.error(f"{args.out}: the weights file must end in .safetensors")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    args.started = start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {text}", flush=True)

    command = "python scripts/train_segmenter.py " + " ".join(sys.argv[1:] if argv is None else argv)
    pool = load_nodules()
    if args.revalidate:
        try:
            card, tensors = read_document_file(args.out, learned.CARD)
            model = Seg3DNet(Seg3DConfig.from_dict(card["config"]))
            model.load_state_dict(tensors, strict=True)
        except learned.SegmenterFileError as exc:
            print(f"cannot revalidate: {exc}", file=sys.stderr)
            return 1
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            print(f"cannot revalidate: {args.out}: weights do not fit the network ({exc})", file=sys.stderr)
            return 1
        model.eval()
        card["revalidated_by"] = command
    else:
        model, tensors, card = _trained(args, pool, say)
        card["command"] = command
    sets = validation_sets(args.val_phantoms, pool)
    say(f"validation: {sum(len(v) for v in sets.values())} val-split nodules")
    threshold, validation = validate(model, sets, args.seed)
    say(f"threshold {threshold}: {json.dumps(validation)}")
    card["threshold"] = threshold
    card["validation"] = {"split": "val", "phantom_size": SIZE, "results": validation}
    text = json.dumps(card, indent=2, allow_nan=False)
    write_document_file(args.out, tensors, learned.CARD, text)
    atomic_write_text(args.out.with_suffix(".json"), text + "\n")
    say(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
