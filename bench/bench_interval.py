"""What the TTA interval says, measured: its width, how often it crosses the decision band, and whether
the nodules it marks are the ones the model gets wrong.

    .venv/bin/python bench/bench_interval.py [--model PATH] [--splits val test]

Each split's nodules are rendered as ``evaluate`` renders them (seed 1, nominal protocol; cached), fed
to the model exactly as the Predictor feeds them (``core.model.tta.view_stack``: slices, mirror
images, four more views of the central slice) and scored with the card's temperature. Printed per
split: the interval's median width and quartiles, the share of nodules marked indeterminate (the
interval crosses 10 % or 70 %), the AUC on all, determinate and indeterminate nodules, and the median
width of the nodules misclassified at p = 0.5 beside that of the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def split_results(model, card, split: str):
    """(labels, NoduleResults) of the labelled nodules of ``split``."""
    import torch

    from core.model.calibration import apply_temperature, card_calibration
    from core.model.patches import PatchConfig
    from core.model.tta import tta_interval, view_stack
    from core.nodule.prediction import NoduleResult
    from core.training.data import DatasetSpec, cached_dataset

    spec = DatasetSpec(split=split, seed=1, variants=0, patch=PatchConfig.from_dict(card["preprocessing"]))
    data = cached_dataset(spec)
    counts = np.bincount(data.nodule_index, minlength=len(data.labels))
    groups = [view_stack(data.patches[data.nodule_index == n].astype(np.float32)) for n in range(len(counts))]
    x = np.concatenate(groups)
    sizes = np.concatenate([np.full(len(g), data.diameters[n], np.float32) for n, g in enumerate(groups)])
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), 256):
            batch = torch.from_numpy(np.ascontiguousarray(x[start : start + 256]))
            outputs.append(model(batch, torch.from_numpy(sizes[start : start + 256]))["malignancy"].numpy())
    probabilities = np.concatenate(outputs)
    t, b = card_calibration(card)
    results, start = [], 0
    for n, group in enumerate(groups):
        p = probabilities[start : start + len(group)]
        start += len(group)
        score = float(apply_temperature(p[: 2 * counts[n]].mean(), t, b))
        results.append(NoduleResult(str(n), score, 0.0, {}, interval=tta_interval(p, counts[n], t, b)))
    keep = data.labels >= 0
    return data.labels[keep], [r for r, k in zip(results, keep, strict=True) if k]


def main() -> int:
    from core.model.checkpoints import load_checkpoint
    from core.model.store import default_model_path
    from core.training.metrics import roc_auc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=("val", "test"))
    args = parser.parse_args()
    model, card = load_checkpoint(args.model)
    from core.model.calibration import card_calibration

    t, b = card_calibration(card)
    print(f"model: {card.get('name')} {card.get('version')}, temperature {t:.3f}, bias {b:+.3f}")
    for split in args.splits:
        labels, results = split_results(model, card, split)
        width = np.array([r.interval[1] - r.interval[0] for r in results])
        marked = np.array([r.indeterminate for r in results])
        score = np.array([r.malignancy for r in results])
        wrong = (score >= 0.5) != (labels == 1)
        q1, median, q3 = np.percentile(width, [25, 50, 75])
        print(
            f"{split}: n={len(labels)}; width median {median:.3f} (quartiles {q1:.3f}-{q3:.3f}); "
            f"indeterminate {marked.mean():.1%}; AUC all {roc_auc(labels, score):.3f}, "
            f"determinate {roc_auc(labels[~marked], score[~marked]):.3f}, "
            f"indeterminate {roc_auc(labels[marked], score[marked]):.3f}; median width misclassified at "
            f"0.5 {np.median(width[wrong]):.3f} vs correct {np.median(width[~wrong]):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
