"""Why the attribute heads add nothing (issue 20): does the model read the ratings the oracle ranks by?

The rating oracle (``core.training.baselines``: a logistic regression on the eight mean LIDC ratings
plus the diameter, fitted on the train split's ratings) ranks better than any model so far. A phantom
is rendered from those very ratings (``core.phantom.appearance``), so the attribute labels carry no
reader noise here: if the attribute heads helped, it would be by teaching the trunk to read them. This
probe feeds that same fitted oracle the model's *own* attribute predictions for the evaluated nodules
(and, one attribute at a time, the model's reading of that attribute with the true ratings for the
other seven), beside the model's malignancy score, the diameter alone and the oracle on the true
ratings. If the oracle on the predicted ratings ranks no better than the model's own score, what the
attribute heads read is what the malignancy head already uses: the gap to the oracle is in reading the
ratings from the image, not in the supervision. Per attribute: the correlation of predicted and true
ratings and what the oracle loses when only that one is read from the image.

    .venv/bin/python docs/probe_attributes.py MODEL.safetensors [--split val|test] [--randomise]
    .venv/bin/python docs/probe_attributes.py MODEL.safetensors --cells [CELL ...]

Phantoms rendered as ``evaluate`` renders them (nominal protocol; ``--randomise``: a random scan
protocol per nodule, as ``train --randomise`` validates); nodules with mean malignancy exactly 3
left out. ``--cells``: the protocol matrix's cells of the reserved split as ``bench/bench_robustness.py``
renders them (its cached renderings), one line each: the model's score, the oracle on the model's
ratings ("ratings route"), the diameter and the oracle. Prints; no file is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lidc.table import load_nodules
from core.nodule.ratings import ATTRIBUTES, to_rating_scale
from core.training.baselines import LogisticRegression, features, labels_of
from core.training.metrics import roc_auc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--randomise", action="store_true")
    parser.add_argument("--cells", nargs="*", help="protocol matrix cells of the test split (none: all)")
    args = parser.parse_args()
    from core.model.checkpoints import CheckpointError, load_checkpoint
    from core.model.patches import PatchConfig
    from core.training.data import DatasetSpec, cached_dataset
    from core.training.trainer import aggregate, slice_outputs

    try:
        model, card = load_checkpoint(args.model)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    patch = PatchConfig.from_dict(card["preprocessing"])
    pool = load_nodules()
    train = [n for n in DatasetSpec(split="train", seed=0, variants=0, patch=patch).select(pool)]
    train = [n for n in train if n.label != "indeterminate"]
    oracle = LogisticRegression().fit(features(train), labels_of(train))

    def read(data):
        probs, attrs = aggregate(data, *slice_outputs(model, data, "cpu"))
        keep = data.labels >= 0
        diameter = data.diameters[keep].astype(float)[:, None]
        true, read = to_rating_scale(data.attributes[keep]), to_rating_scale(attrs[keep])
        return data.labels[keep].astype(int), probs[keep], diameter, true, read

    if args.cells is not None:
        from core.phantom.protocol import MATRIX, NOMINAL

        print("cell: model's score | ratings route | diameter | oracle (AUC, reserved split)")
        for name in ["nominal", *(args.cells or MATRIX)]:
            protocol = NOMINAL if name == "nominal" else MATRIX[name]
            spec = DatasetSpec(split="test", seed=20, variants=0, patch=patch, protocol=protocol)
            y, probs, diameter, true, ratings = read(cached_dataset(spec, pool))
            aucs = [
                roc_auc(y, v)
                for v in (
                    probs,
                    oracle.predict_proba(np.hstack([ratings, diameter])),
                    diameter[:, 0],
                    oracle.predict_proba(np.hstack([true, diameter])),
                )
            ]
            print(f"  {name:<22} " + " | ".join(f"{a:.3f}" for a in aucs), flush=True)
        return 0
    spec = DatasetSpec(split=args.split, seed=0, variants=0, patch=patch, randomise=args.randomise)
    y, probs, diameter, true, read = read(cached_dataset(spec, pool))

    def ranked(ratings) -> float:
        return roc_auc(y, oracle.predict_proba(np.hstack([ratings, diameter])))

    rows = [
        ("diameter alone", roc_auc(y, diameter[:, 0])),
        ("the model's malignancy score", roc_auc(y, probs)),
        ("oracle on the true ratings", ranked(true)),
        ("oracle on the model's ratings", ranked(read)),
    ]
    print(
        f"{Path(args.model).name} ({card.get('training', {}).get('loss', {}) or 'loss as in its card'}), "
        f"{args.split} split{' randomised' if args.randomise else ''}, {len(y)} nodules ({y.sum()} malignant)"
    )
    for name, auc in rows:
        print(f"  {name:<34} AUC {auc:.3f}")
    print("  per attribute: r(read, true) | oracle AUC with only this one read from the image | coefficient")
    scale = oracle.weights[1:-1]
    for k, name in enumerate(ATTRIBUTES):
        mixed = true.copy()
        mixed[:, k] = read[:, k]
        r = float(np.corrcoef(read[:, k], true[:, k])[0, 1]) if true[:, k].std() > 0 else float("nan")
        print(f"    {name:<20} r {r:+.2f} | AUC {ranked(mixed):.3f} | {scale[k]:+.2f}/SD")
    return 0


if __name__ == "__main__":
    sys.exit(main())
