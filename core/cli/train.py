"""``python main.py train`` and ``python main.py evaluate``: MTMR-Net on LIDC-shaped phantoms.

    python main.py train --out model.safetensors [--epochs 20] [--variants 2] [--seed 0]
        [--ablation single-task|multi-task|mtmr] [--patch-mode fixed-fov|paper] [--randomise] [--continue]
    python main.py evaluate --split val|test [--model PATH] [--protocol CELL] --out metrics.json

With ``--data CACHE`` (a folder written by ``python main.py lidc prepare``) both run on real LIDC-IDRI
instead: train on the cache's train patients, select on its val patients, evaluate on its val or test
patients; the preprocessing is the cache's.

While it trains, the run's state (weights, optimiser, schedule, random state...) is kept beside the
checkpoint, ``model.state.safetensors`` for ``--out model.safetensors``, after every epoch; a cancelled,
crashed or interrupted run goes on from there with the same command and ``--continue``. The state
file is removed once the checkpoint is written.

Under ``torchrun`` the training runs data-parallel (see ``core.training.distributed``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from core.cli.interrupted import interrupted
from core.cli.options import (
    add_device,
    add_model,
    model_path,
    non_negative_int,
    output_problem,
    positive_float,
    positive_int,
    unit_fraction,
)
from core.cli.progress import Progress
from core.phantom.protocol import DOMAIN, MATRIX, nominal_domain
from core.training.ablations import ABLATIONS
from core.training.card import plain_metrics, training_card


def add_parsers(subparsers) -> None:
    train = subparsers.add_parser("train", help="train MTMR-Net on phantom studies of the train split")
    train.add_argument(
        "--out",
        required=True,
        help="checkpoint to write (.safetensors); until it is written, the run's state is kept after every "
        "epoch in OUT.state.safetensors (OUT's .safetensors suffix replaced, e.g. model.state.safetensors)",
    )
    train.add_argument("--epochs", type=positive_int, default=15, help="most epochs to train")
    train.add_argument(
        "--step-size", type=positive_int, default=10, help="epochs between learning-rate drops (x0.1)"
    )
    train.add_argument("--batch-size", type=positive_int, default=64, help="nodule slices per step")
    train.add_argument("--lr", type=positive_float, default=3e-3, help="initial learning rate (Adam)")
    train.add_argument(
        "--variants", type=non_negative_int, default=2, help="jittered renderings per training nodule"
    )
    train.add_argument(
        "--seed", type=int, default=0, help="fixes the renderings, the initial weights and the batches"
    )
    train.add_argument("--patience", type=int, default=8, help="epochs without a better val AUC, then stop")
    train.add_argument(
        "--ema", type=unit_fraction, default=0.0, help="keep an EMA of the weights (e.g. 0.998)"
    )
    train.add_argument(
        "--attribute-weight", type=float, default=None, help="weight of the attribute loss (paper: 0.4)"
    )
    train.add_argument(
        "--max-attribute-mae",
        type=float,
        default=0.0,
        help="select the best validation AUC only among epochs whose attribute MAE is at most this",
    )
    train.add_argument(
        "--ablation",
        choices=sorted(ABLATIONS),
        default="mtmr",
        help="losses: malignancy only, + attributes, + ranking",
    )
    train.add_argument(
        "--patch-mode",
        choices=("fixed-fov", "paper"),
        default="fixed-fov",
        help="fixed-fov: --fov-mm squares; paper: 1.25x the nodule",
    )
    train.add_argument(
        "--fov-mm", type=float, default=48.0, help="fixed-fov: side of the patch in mm (default 48)"
    )
    train.add_argument(
        "--neighbours",
        type=float,
        default=0.0,
        metavar="F",
        help="> 0: three channels, the slices F x diameter below, at and above each input slice (2.5D)",
    )
    train.add_argument(
        "--data",
        metavar="CACHE",
        help="train on real LIDC-IDRI prepared by `lidc prepare` (its train patients; val selects) instead "
        "of phantoms; the cache's preprocessing replaces --patch-mode, --variants does not apply",
    )
    train.add_argument(
        "--randomise",
        action="store_true",
        help="domain randomisation: every training and validation rendering gets a fresh random scan "
        "protocol (slice thickness 0.625-5 mm and overlap, kernel, dose, HU offset, lungs); the card "
        "states the domain",
    )
    train.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-sample flips, quarter turns, z flip, +-15 deg rotation, +-10%% scale, blur/sharpen and HU "
        "jitter of every training batch (core.training.augment; recorded in the card); default on",
    )
    add_device(train)
    train.add_argument("--deterministic", action="store_true", help="deterministic torch kernels (slower)")
    train.add_argument("--name", default="mtmr-compact", help="the model's name in its card")
    train.add_argument("--resume", help="start from this checkpoint's weights (the optimiser starts afresh)")
    train.add_argument(
        "--continue",
        dest="continue_run",
        action="store_true",
        help="continue a cancelled, crashed or interrupted run from OUT.state.safetensors where it stopped "
        "(weights, optimiser, schedule, random state); give the same options as the first time",
    )
    train.set_defaults(func=run_train)
    evaluate = subparsers.add_parser("evaluate", help="metrics of a model on phantom studies of a split")
    evaluate.add_argument(
        "--split",
        choices=("val", "test"),
        required=True,
        help="validation, or the reserved test split (final figures only)",
    )
    add_model(evaluate)
    evaluate.add_argument("--seed", type=int, default=1, help="fixes the phantom renderings")
    evaluate.add_argument("--slice-thickness", type=float, default=1.25, help="phantom slice thickness, mm")
    evaluate.add_argument("--pixel-spacing", type=float, default=0.7, help="phantom pixel spacing, mm")
    evaluate.add_argument("--noise", type=float, default=20.0, help="phantom noise standard deviation, HU")
    evaluate.add_argument(
        "--protocol",
        metavar="CELL",
        choices=sorted(MATRIX),
        help="render with a scan protocol of the robustness matrix instead of the three options above: "
        + ", ".join(MATRIX),
    )
    add_device(evaluate)
    evaluate.add_argument(
        "--data", metavar="CACHE", help="evaluate on a split of a `lidc prepare` cache instead of phantoms"
    )
    evaluate.add_argument("--out", required=True, help="metrics JSON to write")
    evaluate.add_argument("--record", action="store_true", help="also write the metrics into the model card")
    evaluate.add_argument(
        "--png", metavar="OUT", help="also write the split's reliability diagram (as trained | as calibrated)"
    )
    evaluate.set_defaults(func=run_evaluate)


def _progress(label: str):
    """A ``(done, total)`` callback that shows ``label: done/total`` on stderr (``core.cli.progress``)."""
    progress = Progress()

    def report(done: int, total: int) -> None:
        progress.status(f"{label}: {done}/{total}", done=done == total)

    return report


def run_train(args: argparse.Namespace) -> int:
    import torch

    from core.model.checkpoints import save_checkpoint
    from core.model.patches import PatchConfig
    from core.training.augment import AugmentConfig
    from core.training.data import DatasetSpec, cached_dataset
    from core.training.distributed import init_from_environment, shutdown
    from core.training.state import TrainingStateError, state_path_for
    from core.training.trainer import TrainConfig, init_attribute_bias, manifest, train
    from models.mtmr import MTMRNet, MTMRNetConfig

    problem = output_problem(Path(args.out), "model.safetensors", makes_folder=True)  # as the state does
    if problem:  # before the data is rendered and the model trained, never after
        print(f"error: {problem}", file=sys.stderr)
        return 2
    state_path = state_path_for(args.out)
    if args.continue_run and not state_path.is_file():
        print(f"error: nothing to continue: no training state at {state_path}", file=sys.stderr)
        return 2
    if not args.continue_run and state_path.exists():
        print(
            f"error: {state_path} holds the state of an unfinished run: add --continue to go on with it, "
            "or delete it to start afresh",
            file=sys.stderr,
        )
        return 2
    torch.manual_seed(args.seed)
    # 3 slices: the CPU inference budget
    try:  # --fov-mm 0 or --neighbours -1 were ValueError tracebacks
        patch = PatchConfig(
            mode=args.patch_mode,
            fov_mm=args.fov_mm,
            max_slices=3,
            channels=3 if args.neighbours > 0 else 1,
            neighbour_fraction=args.neighbours,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model, parent = None, None
    if args.resume:  # continue from its weights, with its preprocessing
        from core.model.checkpoints import CheckpointError, load_checkpoint

        try:
            model, parent = load_checkpoint(args.resume)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        patch = PatchConfig.from_dict(parent["preprocessing"])
    rank, world = init_from_environment()
    if args.data:
        from core.training.lidc_cache import CacheError

        try:
            patch, train_data = _cache_split(args.data, "train", patch if args.resume else None)
            _, val_data = _cache_split(args.data, "val", patch)
        except CacheError as exc:
            print(f"error: {exc}", file=sys.stderr)
            shutdown()
            return 2
        specs = {split: {"cache": str(Path(args.data).resolve())} for split in ("train", "val")}
    else:
        train_spec = DatasetSpec(
            split="train", seed=0, variants=args.variants, patch=patch, randomise=args.randomise
        )
        val_spec = DatasetSpec(split="val", seed=0, variants=0, patch=patch, randomise=args.randomise)
        train_data = cached_dataset(train_spec, progress=_progress("rendering train nodules"))
        val_data = cached_dataset(val_spec, progress=_progress("rendering val nodules"))
        specs = {"train": {"spec": train_spec.key()}, "val": {"spec": val_spec.key()}}
    if model is None:  # a fresh model takes its input channels from the patches (a cache's, with --data)
        torch.manual_seed(args.seed)
        model = MTMRNet(replace(MTMRNetConfig.compact(), in_channels=patch.channels))
    config = TrainConfig(
        epochs=args.epochs,
        step_size=args.step_size,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        ema=args.ema,
        patience=args.patience,
        max_attribute_mae=args.max_attribute_mae,
        deterministic=args.deterministic,
        device=args.device,
        augment=AugmentConfig(hu_range=patch.hu_range).to_dict() if args.augment else None,
        loss=ABLATIONS[args.ablation]
        | ({} if args.attribute_weight is None else {"attributes": args.attribute_weight}),
    )
    if not args.resume:  # a fresh model: attribute heads start at the training means
        init_attribute_bias(model, train_data)
    result = None
    try:
        for event in train(config, train_data, val_data, model, state_path=state_path):
            if event["event"] == "resumed" and rank == 0:
                print(f"continuing from {state_path} after epoch {event['epoch']}", flush=True)
            elif event["event"] == "epoch":
                v = event["val"]
                print(
                    f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']['total']:.4f} "
                    f"val AUC {v['auc']:.3f} acc {v['accuracy']:.3f} "
                    f"attr MAE {v['attributes']['mean_mae']:.3f} eta {event['eta_s']:.0f}s",
                    flush=True,
                )
            elif event["event"] == "done":
                result = event
    except TrainingStateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        shutdown()
        return 2
    except KeyboardInterrupt:
        return interrupted(rank, state_path)
    if rank == 0 and result is not None:
        card = training_card(
            name=args.name,
            on_cache=bool(args.data),
            randomised=bool(args.randomise and not args.data),
            parent=parent,
            preprocessing=patch.to_dict(),
            training=config.to_dict()
            | {
                "ablation": args.ablation,
                "world_size": world,
                "device": result["device"],
                "best_epoch": result["best_epoch"],
                "seconds": round(result["seconds"]),
            },
            data={
                "train": manifest(train_data, "train") | specs["train"],
                "val": manifest(val_data, "val") | specs["val"],
            },
            val_metrics=result["val"],
        )
        if not args.data:  # the scan protocols the phantom training data covered
            card["domain"] = DOMAIN if args.randomise else nominal_domain()
            card["training"]["randomise"] = args.randomise
        save_checkpoint(Path(args.out), result["model"], card)
        state_path.unlink(missing_ok=True)  # the run is over: nothing left to continue
        print(f"wrote {args.out} (best epoch {result['best_epoch']}, val AUC {result['val']['auc']:.3f})")
    shutdown()
    return 0


def _cache_split(cache: str, split: str, patch=None):
    """(preprocessing, data) of one split of a prepared LIDC cache; ``patch``, when given (a parent
    model's), must be the cache's. Raises ``CacheError``."""
    from core.training.lidc_cache import CacheError, load_prepared, read_settings

    cached = read_settings(cache).patch
    if patch is not None and patch != cached:
        raise CacheError(cache, f"its patches ({cached}) are not the model's preprocessing ({patch})")
    return cached, load_prepared(cache, split)


def run_evaluate(args: argparse.Namespace) -> int:
    from core.lidc.table import load_nodules
    from core.model.checkpoints import CheckpointError, load_checkpoint, read_card
    from core.model.device import pick_device
    from core.model.patches import PatchConfig
    from core.training.baselines import baselines
    from core.training.data import DatasetSpec, cached_dataset
    from core.training.metrics import youden_threshold
    from core.training.reliability import RESERVED_ECE_FLOOR
    from core.training.trainer import aggregate, nodule_metrics, slice_outputs

    problem = output_problem(Path(args.out), "metrics.json")
    if not problem and args.png:
        problem = output_problem(Path(args.png), "reliability.png")
    legacy = (args.slice_thickness, args.pixel_spacing, args.noise) != (1.25, 0.7, 20.0)
    if not problem and args.protocol and (legacy or args.data):
        problem = (
            "--protocol sets the rendering: give it without --slice-thickness, --pixel-spacing, --noise "
            "and --data"
        )
    if not problem and not args.data:  # the phantom's ranges: 0 mm was a ZeroDivisionError traceback
        from core.phantom.study import PhantomOptions

        try:
            PhantomOptions(
                pixel_spacing=args.pixel_spacing, slice_thickness=args.slice_thickness, noise=args.noise
            )
            legacy_spec = DatasetSpec(
                split=args.split,
                pixel_spacing=args.pixel_spacing,
                slice_thickness=args.slice_thickness,
                noise=args.noise,
            )
            legacy_spec.scan_protocol()  # the scan protocol's own limits (noise <= 200 HU)
        except ValueError as exc:
            problem = str(exc)
    if problem:  # before the data is rendered and the model evaluated, never after
        print(f"error: {problem}", file=sys.stderr)
        return 2
    path = model_path(args)
    try:
        card = read_card(path)
        device = pick_device(args.device)
        model, _ = load_checkpoint(path, device)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.data:
        from core.training.crossval import dataset_baselines
        from core.training.lidc_cache import CacheError, load_prepared

        try:
            _, data = _cache_split(args.data, args.split, PatchConfig.from_dict(card["preprocessing"]))
            try:
                fitted = load_prepared(args.data, "train")
            except CacheError:  # no train patients prepared: no baselines to fit
                fitted = None
        except CacheError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        source = {"data": {"cache": str(Path(args.data).resolve())}}
        baseline_metrics = None if fitted is None else dataset_baselines(fitted, data)
        if baseline_metrics is not None:
            baseline_metrics["fitted_on"] = "train"
    else:
        patch = PatchConfig.from_dict(card["preprocessing"])
        if args.protocol:
            spec = DatasetSpec(
                split=args.split, seed=args.seed, variants=0, patch=patch, protocol=MATRIX[args.protocol]
            )
            phantom = {"seed": args.seed, "protocol": args.protocol, **MATRIX[args.protocol].to_dict()}
        else:
            spec = DatasetSpec(
                split=args.split,
                seed=args.seed,
                variants=0,
                patch=patch,
                pixel_spacing=args.pixel_spacing,
                slice_thickness=args.slice_thickness,
                noise=args.noise,
            )
            phantom = {
                "seed": args.seed,
                "slice_thickness": args.slice_thickness,
                "pixel_spacing": args.pixel_spacing,
                "noise": args.noise,
            }
        pool = load_nodules()
        data = cached_dataset(spec, pool, progress=_progress(f"rendering {args.split} nodules"))
        source = {"phantom": phantom}
        baseline_metrics = baselines(replace(spec, split="train").select(pool), spec.select(pool))
    threshold = float(card.get("threshold", 0.5))
    slice_probs, slice_attrs = slice_outputs(model, data, device)
    if args.split == "val" and args.record:  # thresholds are chosen on validation, never on test
        probs, _ = aggregate(data, slice_probs, slice_attrs)
        labelled = data.labels >= 0
        threshold = youden_threshold(data.labels[labelled], probs[labelled])
        card["threshold"] = threshold
    metrics = nodule_metrics(data, slice_probs, slice_attrs, threshold)
    metrics.update(_ece(card, data, slice_probs, slice_attrs))
    report = {
        "model": {key: card.get(key) for key in ("name", "version", "trained_on", "weights_sha256")}
        | {"path": str(path)},
        "split": args.split,
        **source,
        "metrics": plain_metrics(metrics),
        "baselines": plain_metrics(baseline_metrics) if baseline_metrics else None,
    }
    from core.util.atomic import atomic_write_text

    # not OUT with a .tmp suffix: that replaced a reader's own metrics.tmp beside metrics.json
    atomic_write_text(Path(args.out), json.dumps(report, indent=2, allow_nan=False))
    if args.record:
        from core.model.checkpoints import save_checkpoint

        card.setdefault("metrics", {})[args.split] = report["metrics"] | {
            "split": args.split,
            **source,
            "baselines": report["baselines"],
        }
        save_checkpoint(path, model.cpu(), card)
    if args.png:
        _write_reliability(args.png, card, args.split, data, slice_probs, slice_attrs)
    b = report["baselines"]
    print(
        f"{args.split}: AUC {metrics['auc']:.3f} acc {metrics['accuracy']:.3f} "
        f"sens {metrics['sensitivity']:.3f} spec {metrics['specificity']:.3f} "
        f"attribute MAE {metrics['attributes']['mean_mae']:.3f} ECE {metrics['ece']:.3f} "
        f"(p {metrics['ece_p_value']:.3f}; perfectly calibrated: {metrics['ece_if_calibrated']:.3f}, 90 % "
        f"{metrics['ece_if_calibrated_90'][0]:.3f}-{metrics['ece_if_calibrated_90'][1]:.3f}, <= "
        f"{RESERVED_ECE_FLOOR} in {metrics['ece_if_calibrated_within_floor']:.0%}; n={metrics['n']}); "
        + (
            f"diameter-only AUC {b['diameter_only']['auc']:.3f}, "
            f"rating oracle AUC {b['rating_oracle']['auc']:.3f}"
            if b
            else "no baselines (no labelled train patients of both classes to fit them on)"
        )
    )
    return 0


def _write_reliability(path: str, card: dict, split: str, data, slice_probs, slice_attrs) -> None:
    from core.model.calibration import apply_temperature, card_calibration
    from core.training.reliability import diagram_title, write_reliability_png
    from core.training.trainer import aggregate

    probs, _ = aggregate(data, slice_probs, slice_attrs)
    labelled = data.labels >= 0
    temperature, bias = card_calibration(card)
    title = diagram_title(card, split, temperature, bias)
    labels, probs = data.labels[labelled], probs[labelled]
    write_reliability_png(path, labels, probs, apply_temperature(probs, temperature, bias), title)


def _ece(card: dict, data, slice_probs, slice_attrs) -> dict:
    """ECE (15 bins) of the nodule probabilities as the app shows them (after the card's calibration)."""
    from core.model.calibration import card_calibration
    from core.training.reliability import calibrated_ece
    from core.training.trainer import aggregate

    probs, _ = aggregate(data, slice_probs, slice_attrs)
    labelled = data.labels >= 0
    return calibrated_ece(data.labels[labelled], probs[labelled], *card_calibration(card))
