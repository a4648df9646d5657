"""``python main.py calibrate MODEL``: fit the malignancy calibration on the validation split.

Options: ``[--protocols nominal|random|matrix] [--method temperature|temperature+bias] [--data CACHE]
[--png OUT]``.

The validation nodules are rendered as ``evaluate`` renders them (same seed, slice thickness, pixel
spacing and noise), or under a spread of scan protocols (``--protocols random``: one protocol of the
domain-randomisation distribution per nodule; ``matrix``: every nodule under each of the twelve cells
of the robustness matrix), or, with ``--data CACHE``, taken from a ``lidc prepare`` cache's validation
patients (real CT). The model's nodule-level probabilities are computed as ``evaluate`` computes them,
and a temperature (and with ``--method temperature+bias`` a logit bias) fitted by minimising their NLL
(``core.model.calibration``). It is written into MODEL's card (``"calibration"``: the parameters,
where and how they were fitted, ECE and NLL before and after on those nodules) by an atomic rewrite of
the file with the very same weights (checked against the card's weights hash). The reserved test split
is refused: fitting on it would spoil its figures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from dataclasses import replace
from pathlib import Path

from core.cli.options import add_device, output_problem

PROTOCOLS = ("nominal", "random", "matrix")
METHODS = ("temperature", "temperature+bias")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="fit the malignancy calibration on the validation split, write it into the card"
    )
    parser.add_argument("model", help="checkpoint (.safetensors) whose card receives the temperature")
    parser.add_argument(
        "--split", default="val", help="split to fit on: val only (the reserved test split is refused)"
    )
    parser.add_argument(
        "--protocols",
        choices=PROTOCOLS,
        default="nominal",
        help="scan protocols of the phantom renderings: nominal (evaluate's, default), random (one draw "
        "of the domain-randomisation distribution per nodule) or matrix (the 12 robustness cells)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="temperature",
        help="temperature (default) or temperature+bias (also shifts the logit: undoes a protocol's shift)",
    )
    parser.add_argument(
        "--data", metavar="CACHE", help="fit on the validation patients of a `lidc prepare` cache (real CT)"
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
    from core.training.lidc_cache import CacheError

    if args.split != "val":
        reason = "the reserved test split must stay unseen" if args.split == "test" else "unknown split"
        print(f"error: --split {args.split}: calibration is fitted on val only ({reason})", file=sys.stderr)
        return 2
    problem = output_problem(Path(args.png), "reliability.png") if args.png else ""
    legacy = (args.slice_thickness, args.pixel_spacing, args.noise) != (1.25, 0.7, 20.0)
    if not problem and args.data and (legacy or args.protocols != "nominal"):
        problem = "--data fits on the cache's CT: give it without --protocols and the phantom settings"
    elif not problem and args.protocols != "nominal" and legacy:
        problem = (
            f"--protocols {args.protocols} sets the renderings: give it without --slice-thickness, "
            "--pixel-spacing and --noise"
        )
    if not problem and not args.data:
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
    try:
        labels, probs, source = _validation_outputs(args, model, card, device)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from core.model.calibration import fit_temperature, fit_temperature_bias
    from core.training.reliability import calibration_summary, write_reliability_png

    try:
        if args.method == "temperature":
            temperature, bias = fit_temperature(labels, probs), 0.0
        else:
            temperature, bias = fit_temperature_bias(labels, probs)
    except ValueError as exc:
        print(f"error: {args.data or path}: {exc}", file=sys.stderr)
        return 2
    summary = calibration_summary(labels, probs, temperature, bias)
    calibration = {
        "method": args.method,
        "temperature": temperature,
        **({"bias": bias} if args.method != "temperature" else {}),
        "fitted_on": {
            "split": "val",
            **source,
            "n": len(labels),
            "n_malignant": int(labels.sum()),
            "objective": "nodule-level NLL",
        },
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **summary,
    }
    update = {"calibration": calibration}
    if card.get("robustness") is not None:  # its ECEs were measured under the old calibration
        update["robustness"] = None
    try:
        rewrite_card(path, update)
    except (CheckpointError, OSError) as exc:
        print(f"error: {path}: cannot be rewritten ({exc}); the model is unchanged", file=sys.stderr)
        return 1
    if args.png:
        from core.model.calibration import apply_temperature
        from core.training.reliability import diagram_title

        title = diagram_title(card, f"val ({_where(args)})", temperature, bias)
        write_reliability_png(args.png, labels, probs, apply_temperature(probs, temperature, bias), title)
    if "robustness" in update:
        print(
            f"{path}: the protocol matrix kept in its card was measured under the old calibration and was "
            "removed (bench/bench_robustness.py MODEL --record measures it again)"
        )
    shift = f", bias {bias:+.3f}" if args.method != "temperature" else ""
    print(
        f"{path}: temperature {temperature:.3f}{shift} fitted on val, {_where(args)} (n={len(labels)}); "
        f"ECE {summary['ece_before']:.3f} -> {summary['ece_after']:.3f}, "
        f"NLL {summary['nll_before']:.3f} -> {summary['nll_after']:.3f}"
    )
    return 0


def _where(args) -> str:
    return "the cache's CT" if args.data else f"{args.protocols} protocols"


def _validation_outputs(args, model, card: dict, device: str):
    """(labels, nodule probabilities, where they came from) of the labelled validation nodules, rendered
    and aggregated as ``evaluate --split val`` does, or read from ``--data``'s cache (``CacheError``)."""
    import numpy as np

    from core.cli.train import _cache_split, _progress
    from core.model.patches import PatchConfig
    from core.phantom.protocol import MATRIX
    from core.training.data import DatasetSpec, cached_dataset
    from core.training.trainer import aggregate, slice_outputs

    patch = PatchConfig.from_dict(card["preprocessing"])
    if args.data:
        _, data = _cache_split(args.data, "val", patch)
        datasets, source = [data], {"data": {"cache": str(Path(args.data).resolve())}}
    else:
        base = DatasetSpec(split="val", seed=args.seed, variants=0, patch=patch)
        if args.protocols == "matrix":
            specs = [replace(base, protocol=p) for p in MATRIX.values()]
        elif args.protocols == "random":
            specs = [replace(base, randomise=True)]
        else:
            legacy = {"pixel_spacing": args.pixel_spacing, "slice_thickness": args.slice_thickness}
            specs = [replace(base, **legacy, noise=args.noise)]
        datasets = [
            cached_dataset(spec, progress=_progress(f"rendering val nodules ({k + 1}/{len(specs)})"))
            for k, spec in enumerate(specs)
        ]
        phantom = {"seed": args.seed, "protocols": args.protocols}
        if args.protocols == "nominal":
            phantom |= {"slice_thickness": args.slice_thickness, "pixel_spacing": args.pixel_spacing}
            phantom |= {"noise": args.noise}
        source = {"phantom": phantom | {"spec": [spec.key() for spec in specs]}}
    labels, probs = [], []
    for data in datasets:
        slice_probs, slice_attrs = slice_outputs(model, data, device)
        nodule_probs, _ = aggregate(data, slice_probs, slice_attrs)
        labelled = data.labels >= 0
        labels.append(data.labels[labelled].astype(float))
        probs.append(nodule_probs[labelled])
    return np.concatenate(labels), np.concatenate(probs), source
