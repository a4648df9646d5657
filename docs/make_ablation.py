"""The paper's claim on our data: single-task vs multi-task vs full MTMR, several seeds each.

    .venv/bin/python docs/make_ablation.py [--seeds 0 1 2] [--epochs 8] [--variants 1] [--out FILE.md]
        [--patch-mode fixed-fov|paper] [--neighbours F] [--attribute-weight W] [--randomise]
        [--no-augment]

``--patch-mode paper --neighbours 0.25 --attribute-weight 1.0`` trains with the demo model's inputs
and attribute weight (attribute heads started at the training means, as ``main.py train`` does).
``--randomise`` renders every train and validation nodule with a fresh random scan protocol (as
``main.py train --randomise``); the per-sample augmentation of ``main.py train`` is on unless
``--no-augment``.

Every run trains the compact model on phantom renderings of the train split (same data, same
schedule; only the loss weights differ), selects its epoch on the validation split, and is then
measured once on the validation split. The reserved test split is not touched here. Writes a
Markdown table with mean and standard deviation of AUC and accuracy, and the raw runs as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.model.patches import PatchConfig  # noqa: E402
from core.training.ablations import ABLATIONS  # noqa: E402
from core.training.augment import AugmentConfig  # noqa: E402
from core.training.data import DatasetSpec, cached_dataset, subset  # noqa: E402
from core.training.trainer import TrainConfig, train  # noqa: E402

DESCRIPTIONS = {
    "single-task": "cross-entropy only",
    "multi-task": "cross-entropy + attribute MSE",
    "mtmr": "cross-entropy + attribute MSE + margin ranking",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "docs" / "ablation.md"))
    parser.add_argument("--patch-mode", choices=("fixed-fov", "paper"), default="fixed-fov")
    parser.add_argument("--neighbours", type=float, default=0.0)
    parser.add_argument("--attribute-weight", type=float, help="default: the paper's 0.4")
    parser.add_argument("--randomise", action="store_true", help="random scan protocols (train and val)")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="share of the train nodules used (one fixed draw)"
    )
    args = parser.parse_args()
    from dataclasses import replace

    import torch

    from core.training.trainer import init_attribute_bias
    from models.mtmr import MTMRNet, MTMRNetConfig

    channels = 3 if args.neighbours > 0 else 1
    patch = PatchConfig(
        mode=args.patch_mode, max_slices=3, channels=channels, neighbour_fraction=args.neighbours
    )
    train_data = cached_dataset(
        DatasetSpec(split="train", variants=args.variants, patch=patch, randomise=args.randomise)
    )
    val_data = cached_dataset(DatasetSpec(split="val", variants=0, patch=patch, randomise=args.randomise))
    if args.train_fraction < 1.0:  # the same nodules for every variant and seed
        keep = np.random.default_rng(1234).random(len(train_data.labels)) < args.train_fraction
        train_data = subset(train_data, keep)
    augment = AugmentConfig(hu_range=patch.hu_range).to_dict() if args.augment else None
    runs = []
    for variant in ("single-task", "multi-task", "mtmr"):
        for seed in args.seeds:
            torch.manual_seed(seed)
            config = TrainConfig(
                epochs=args.epochs,
                step_size=max(args.epochs * 2 // 3, 1),
                seed=seed,
                loss=ABLATIONS[variant]
                | (
                    {"attributes": args.attribute_weight}
                    if args.attribute_weight and variant != "single-task"
                    else {}
                ),
                patience=args.epochs,
                augment=augment,
            )
            start = time.perf_counter()
            model = MTMRNet(replace(MTMRNetConfig.compact(), in_channels=channels))
            if args.attribute_weight:
                init_attribute_bias(model, train_data)
            done = [e for e in train(config, train_data, val_data, model)][-1]
            val = done["val"]
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "auc": val["auc"],
                    "accuracy": val["accuracy"],
                    "attribute_mae": val["attributes"]["mean_mae"],
                    "best_epoch": done["best_epoch"],
                    "seconds": round(time.perf_counter() - start),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    write_table(Path(args.out), runs, args)
    return 0


def write_table(path: Path, runs: list[dict], args) -> None:
    lines = [
        "# Ablation: does each MTMR-Net loss term help? (LIDC-shaped phantoms)",
        "",
        f"Compact MTMR-Net (with the marker-diameter input), {args.patch_mode} patches"
        + (f" with neighbour slices at {args.neighbours} x diameter" if args.neighbours else "")
        + (f", attribute loss weight {args.attribute_weight}" if args.attribute_weight else "")
        + f", {args.epochs} epochs, "
        f"seeds {', '.join(map(str, args.seeds))}, "
        f"{args.variants} jittered rendering(s) per train nodule"
        + (", train and validation renderings with random scan protocols" if args.randomise else "")
        + (", per-sample augmentation on" if args.augment else ", no augmentation")
        + (f", {args.train_fraction:.0%} of the train nodules" if args.train_fraction < 1.0 else "")
        + "; epoch chosen on the validation split and "
        "metrics measured on the validation split (LIDC-IDRI-0701..0850, nodules with mean malignancy "
        "exactly 3 left out; the same data selects and measures, so absolute values are optimistic, "
        "alike for every variant). Mean +/- standard deviation over seeds. Produced by "
        f"`docs/make_ablation.py`; raw runs in `docs/{path.with_suffix('.json').name}`.",
        "",
        f"Command: `docs/make_ablation.py {' '.join(sys.argv[1:])}`.",
        "",
        "| model | loss | AUC | accuracy | attribute MAE |",
        "|---|---|---|---|---|",
    ]
    for variant, description in DESCRIPTIONS.items():
        rows = [r for r in runs if r["variant"] == variant]

        def stat(key: str, rows=rows) -> str:
            values = np.array([r[key] for r in rows], dtype=float)
            return f"{values.mean():.3f} +/- {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

        mae = stat("attribute_mae") if variant != "single-task" else "(not trained)"
        lines.append(f"| {variant} | {description} | {stat('auc')} | {stat('accuracy')} | {mae} |")
    lines += ["", "Research demo on phantom images; not a statement about real CT."]
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(runs, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
