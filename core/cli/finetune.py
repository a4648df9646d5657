"""``python main.py finetune --library``: fine-tune the active model on the reader's confirmed nodules.

    python main.py finetune --library [--with-phantoms] [--epochs 5] [--lr 1e-3] [--freeze-trunk]
        [--out DIR] [--activate [--force]] [--continue]

Starts from the active model (``core.model.registry``), learns from the labelled-nodule library
(``core.reading.library``), optionally mixed with the phantom train split, holds out a part of the library's
studies to check the result, then prints the new model and the active one side by side on that
held-out part and keeps the new model as a version. It is activated only with ``--activate``, and
then only if it is not worse on the held-out data (``--force`` activates it anyway).

While it trains, the run's state is kept in ``DIR/finetune.state.safetensors`` (default DIR: the
user data folder's ``finetune``) after every epoch; an interrupted run goes on with the same command
and ``--continue``. A run started while another one is using DIR gets files of its own
(``finetune-2.*``...; ``core.training.state.claim_run``), and ``--continue`` never takes over a live
run. Nothing is written to the library or the active model until the run is over. Under ``torchrun``
the training runs data-parallel, as ``train`` does (then one run per DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.cli.interrupted import interrupted
from core.cli.options import add_device, positive_int
from core.cli.progress import Progress

RUN_SCHEMA = "mtmr-reader/finetune-run/1"


# core.reading.finetune.options.FinetuneOptions' defaults (a test keeps them equal), without its imports
class _DEFAULTS:
    epochs, lr, trunk_lr_factor, batch_size, val_fraction, seed, device = 5, 1e-3, 0.1, 32, 0.25, 0, "auto"


def add_parser(subparsers) -> None:
    from core.reading.finetune.options import FinetuneOptions

    d = FinetuneOptions()
    parser = subparsers.add_parser(
        "finetune", help="fine-tune the active model on the labelled-nodule library"
    )
    parser.add_argument("--library", action="store_true", help="learn from the local labelled-nodule library")
    parser.add_argument(
        "--with-phantoms", action="store_true", help="mix in the phantom train split (keeps what it knew)"
    )
    parser.add_argument(
        "--randomise",
        action=argparse.BooleanOptionalAction,
        default=d.randomise,
        help="with --with-phantoms: render them under random scan protocols (default on)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=d.augment,
        help="per-sample flips, turns, rotation, scale, blur/sharpen and HU jitter (default on)",
    )
    parser.add_argument("--epochs", type=positive_int, default=d.epochs, help="epochs to train")
    parser.add_argument("--lr", type=float, default=d.lr, help="learning rate of the heads")
    parser.add_argument(
        "--trunk-lr-factor", type=float, default=d.trunk_lr_factor, help="trunk learning rate / head rate"
    )
    parser.add_argument("--freeze-trunk", action="store_true", help="train the heads only")
    parser.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help="nodule slices per step"
    )
    parser.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help="share of studies held out (at least one)"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="fixes the held-out studies and the batches")
    add_device(parser, d.device)
    parser.add_argument("--out", help="folder for the run's state and report (default: user data /finetune)")
    parser.add_argument("--activate", action="store_true", help="activate the new model if it is not worse")
    parser.add_argument("--force", action="store_true", help="with --activate: activate it even if worse")
    parser.add_argument(
        "--continue",
        dest="continue_run",
        action="store_true",
        help="continue an interrupted run from its state in DIR (finetune.state.safetensors); same options",
    )
    parser.set_defaults(func=run)


def _step_line(event: dict) -> str:
    """A training step as the progress line shows it: epoch, bar, step, loss and time left."""
    done = event["step"] / event["steps"]
    bar = "#" * round(20 * done) + "." * (20 - round(20 * done))
    return (
        f"epoch {event['epoch']} [{bar}] step {event['step']}/{event['steps']} "
        f"loss {event['loss']['total']:.4f} eta {event['eta_s']:.0f}s"
    )


def run(args: argparse.Namespace) -> int:
    from core.training.state import MAX_RUNS, claim_run, run_files
    from core.util.paths import user_dir

    if not args.library:
        print("error: choose the data: --library (the local labelled-nodule library)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else user_dir("data") / "finetune"
    world = int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1
    if world > 1 and os.environ["RANK"] != "0":
        files = run_files(out, "finetune")  # rank 0 holds the run's lock
    else:
        try:
            files = claim_run(out, "finetune", args.continue_run, slots=1 if world > 1 else MAX_RUNS)
        except OSError as exc:
            print(f"error: {out}: cannot be written ({exc.strerror or exc})", file=sys.stderr)
            return 2
    if files is None:
        print(
            f"error: nothing to continue: no training state of an interrupted run in {out}"
            if args.continue_run
            else f"error: another fine-tune run is using {out}: wait for it, or give this one its own --out",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(args, out, files)
    finally:
        files.release()


def _run(args: argparse.Namespace, out: Path, files) -> int:
    from core.model.checkpoints import CheckpointError
    from core.model.registry import ModelRegistry, RegistryError
    from core.reading.finetune.comparison import describe_effect, format_comparison
    from core.reading.finetune.options import FinetuneOptions
    from core.reading.finetune.run import keep, run_finetune
    from core.reading.finetune.split import FinetuneError
    from core.reading.library import Library, LibraryError
    from core.training.distributed import init_from_environment, shutdown
    from core.training.state import TrainingStateError
    from core.util.atomic import atomic_write_text
    from core.util.json_safe import json_safe

    state_path, run_path = files.state, files.record
    parent_id = None
    if args.continue_run:
        try:
            parent_id = str(json.loads(run_path.read_text(encoding="utf-8"))["parent"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {run_path}: cannot tell which model the run started from ({exc})", file=sys.stderr)
            return 2
    elif state_path.exists():
        print(
            f"error: {state_path} holds the state of an unfinished run: add --continue to go on with it, "
            "or delete it to start afresh",
            file=sys.stderr,
        )
        return 2
    options = FinetuneOptions(
        epochs=args.epochs,
        lr=args.lr,
        trunk_lr_factor=args.trunk_lr_factor,
        freeze_trunk=args.freeze_trunk,
        batch_size=args.batch_size,
        with_phantoms=args.with_phantoms,
        randomise=args.randomise,
        augment=args.augment,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
    )
    rank, _ = init_from_environment()
    registry, library = ModelRegistry(), Library()
    progress, result = Progress(), None
    try:
        for event in run_finetune(registry, library, options, state_path, parent_id=parent_id):
            kind = event["event"]
            if rank != 0:
                continue
            if kind == "parent":
                version = event["version"]
                if event["note"]:
                    print(f"warning: {event['note']}", file=sys.stderr)
                print(f"starting from {version.label} ({version.id})", flush=True)
                if state_path.name != "finetune.state.safetensors":
                    print(f"another run is using {out}: this one keeps its state in {state_path.name}")
                if not args.continue_run:
                    out.mkdir(parents=True, exist_ok=True)
                    run_record = {"schema": RUN_SCHEMA, "parent": version.id, "options": options.to_dict()}
                    atomic_write_text(run_path, json.dumps(run_record, indent=1, allow_nan=False))
            elif kind == "data":
                print(f"data: {event['text']}", flush=True)
            elif kind == "resumed":
                print(f"continuing from {state_path} after epoch {event['epoch']}", flush=True)
            elif kind == "step":
                progress.status(_step_line(event), always=event["step"] == event["steps"])
            elif kind == "epoch":
                progress.clear()
                v = event["val"]
                print(
                    f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']['total']:.4f} "
                    f"held-out AUC {v['auc']:.3f} acc {v['accuracy']:.3f} "
                    f"attr MAE {v['attributes']['mean_mae']:.3f} eta {event['eta_s']:.0f}s",
                    flush=True,
                )
            elif kind == "finished":
                result = event
    except (FinetuneError, LibraryError, CheckpointError, RegistryError, TrainingStateError) as exc:
        progress.clear()
        print(f"error: {exc}", file=sys.stderr)
        shutdown()
        return 2
    except KeyboardInterrupt:
        progress.clear()
        return interrupted(rank, state_path)
    if rank == 0 and result is not None:
        print("\nheld-out studies, active model and new model side by side:")
        print(format_comparison(result["comparison"]))
        print(describe_effect(result["effect"]))
        version = keep(registry, result)
        report = {
            "version": version.id,
            "parent": result["parent"].id,
            "data": result["data"],
            "comparison": result["comparison"],
            "effect": result["effect"],
        }
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out / f"finetune-{version.id}.json", json.dumps(json_safe(report), indent=1, allow_nan=False)
        )
        state_path.unlink(missing_ok=True)  # the run is over and kept: nothing left to continue
        run_path.unlink(missing_ok=True)
        print(f"kept as version {version.id} ({version.path})")
        if args.activate:
            ok, why = result["verdict"]
            if ok or args.force:
                activated = registry.activate(version.id)  # this run's own model, named as activated
                print(
                    f"activated {activated.id} ({activated.label})"
                    + (f" although it is worse ({why})" if not ok else "")
                )
            else:
                print(
                    f"not activated: it is worse than the active model on the held-out studies ({why}); "
                    f"activate it anyway with --force, or later from the models page",
                    file=sys.stderr,
                )
        else:
            print("not activated (add --activate, or activate it from the models page)")
    shutdown()
    return 0
