"""``python main.py calibrate MODEL [--split val] [--png OUT]``: fit the malignancy temperature.

The validation nodules are rendered as ``evaluate`` renders them (same seed, slice thickness, pixel
spacing and noise), the model's nodule-level probabilities computed as ``evaluate`` computes them,
and one temperature fitted by minimising their NLL (``core.model.calibration``). It is written into
MODEL's card (``"calibration"``: the temperature, where and how it was fitted, ECE and NLL before and
after on those nodules) by an atomic rewrite of the file with the very same weights (checked against
the card's weights hash). The reserved test split is refused: fitting on it would spoil its figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from core.cli.options import add_device, output_problem


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit the malignancy temperature on the validation split, write it into the card"
    )
    parser.add_argument("model", help="checkpoint (.safetensors) whose card receives the temperature")
    parser.add_argument(
        "--split", default="val", help="split to fit on: val only (the reserved test split is refused)"
    )
    parser.add_argument("--seed", type=int, default=1, help="phantom renderings, as evaluate's --seed")
    parser.add_argument("--slice-thickness", type=float, default=1.25, help="phantom slice thickness, mm")
    parser.add_argument("--pixel-spacing", type=float, default=0.7, help="phantom pixel spacing, mm")
    parser.add_argument("--noise", type=float, default=20.0, help="phantom noise standard deviation, HU")
    parser.add_argument("--png", metavar="OUT", help="also write the reliability diagram (before | after)")
    add_device(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.model.checkpoints import CheckpointError, load_checkpoint, rewrite_card

    if args.split != "val":
        reason = "the reserved test split must stay unseen" if args.split == "test" else "unknown split"
        print(f"error: --split {args.split}: calibration is fitted on val only ({reason})", file=sys.stderr)
        return 2
    problem = output_problem(Path(args.png), "reliability.png") if args.png else ""
    if not problem:
        from core.phantom.study import PhantomOptions

        try:  # the phantom's ranges, checked before any rendering
            PhantomOptions(
                pixel_spacing=args.pixel_spacing, slice_thickness=args.slice_thickness, noise=args.noise
            )
        except ValueError as exc:
            problem = str(exc)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    path = Path(args.model)
    try:
        from core.model.device import pick_device

        device = pick_device(args.device)
        model, card = load_checkpoint(path, device)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels, probs, phantom = _validation_outputs(args, model, card, device)
    from core.model.calibration import fit_temperature
    from core.training.reliability import calibration_summary, write_reliability_png

    try:
        temperature = fit_temperature(labels, probs)
    except ValueError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    summary = calibration_summary(labels, probs, temperature)
    calibration = {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": {
            "split": "val",
            "phantom": phantom,
            "n": len(labels),
            "n_malignant": int(labels.sum()),
            "objective": "nodule-level NLL",
        },
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **summary,
    }
    try:
        rewrite_card(path, {"calibration": calibration})
    except (CheckpointError, OSError) as exc:
        print(f"error: {path}: cannot be rewritten ({exc}); the model is unchanged", file=sys.stderr)
        return 1
    if args.png:
        from core.model.calibration import apply_temperature

        title = f"{card.get('name', 'model')} {card.get('version', '')}: val, T = {temperature:.3f}"
        write_reliability_png(args.png, labels, probs, apply_temperature(probs, temperature), title)
    print(
        f"{path}: temperature {temperature:.3f} fitted on val (n={len(labels)}); "
        f"ECE {summary['ece_before']:.3f} -> {summary['ece_after']:.3f}, "
        f"NLL {summary['nll_before']:.3f} -> {summary['nll_after']:.3f}"
    )
    return 0


def _validation_outputs(args, model, card: dict, device: str):
    """(labels, nodule probabilities, phantom settings) of the labelled validation nodules, rendered and
    aggregated exactly as ``evaluate --split val`` does."""
    from core.cli.train import _progress
    from core.model.patches import PatchConfig
    from core.training.data import DatasetSpec, cached_dataset
    from core.training.trainer import aggregate, slice_outputs

    spec = DatasetSpec(
        split="val",
        seed=args.seed,
        variants=0,
        patch=PatchConfig.from_dict(card["preprocessing"]),
        pixel_spacing=args.pixel_spacing,
        slice_thickness=args.slice_thickness,
        noise=args.noise,
    )
    data = cached_dataset(spec, progress=_progress("rendering val nodules"))
    slice_probs, slice_attrs = slice_outputs(model, data, device)
    probs, _ = aggregate(data, slice_probs, slice_attrs)
    labelled = data.labels >= 0
    phantom = {
        "seed": args.seed,
        "slice_thickness": args.slice_thickness,
        "pixel_spacing": args.pixel_spacing,
        "noise": args.noise,
        "spec": spec.key(),
    }
    return data.labels[labelled].astype(float), probs[labelled], phantom
