"""The protocol matrix of a model: AUC, diameter-only AUC, their difference (paired bootstrap 95 % CI),
the rating oracle, ECE and the floors' verdicts in every cell, plus what the score adds beyond size.

    .venv/bin/python bench/bench_robustness.py MODEL [--cells 1.25mm-soft-standard,5mm-sharp-low]
        [--nodules 40] [--seed 20] [--bootstrap 1000] [--json OUT] [--record]

The reserved split (LIDC 0851-1012) is rendered once per cell (``core.phantom.protocol.MATRIX``) with
seed 20, which no training or evaluate run uses; whole-split renderings are cached like training data,
so a rerun costs the inference only. ``--nodules N`` takes N evenly spaced nodules (not cached) for a
quick check. Prints a Markdown table and the time it took; ``--json`` writes every figure; ``--record``
(whole matrix only) keeps it in MODEL's card (``core.training.robustness.card_record``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from core.phantom.protocol import MATRIX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint (.safetensors) with its model card")
    parser.add_argument("--cells", help=f"comma-separated cells (default all): {', '.join(MATRIX)}")
    parser.add_argument("--nodules", type=int, help="evenly spaced nodules of the split (default all)")
    parser.add_argument("--seed", type=int, default=20, help="rendering seed (default 20: never trained on)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--chest-size", type=int, default=512, help=argparse.SUPPRESS)  # small for tests
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    parser.add_argument(
        "--record",
        action="store_true",
        help="also keep the matrix in MODEL's card (weights untouched; all cells and nodules only)",
    )
    args = parser.parse_args(argv)
    cells = list(MATRIX) if not args.cells else [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in MATRIX]
    if unknown:
        print(f"error: unknown cell(s) {', '.join(unknown)}; cells: {', '.join(MATRIX)}", file=sys.stderr)
        return 2
    if args.record and (args.cells or args.nodules is not None):
        print(
            "error: --record keeps the whole matrix only: give it without --cells and --nodules",
            file=sys.stderr,
        )
        return 2
    if (args.nodules is not None and args.nodules < 2) or args.bootstrap < 1:
        print("error: --nodules must be at least 2 and --bootstrap at least 1", file=sys.stderr)
        return 2

    from core.cli.progress import Progress
    from core.lidc.table import load_nodules
    from core.model.checkpoints import CheckpointError, load_checkpoint
    from core.training.robustness import markdown, run_matrix
    from core.util.atomic import atomic_write_text

    try:
        model, card = load_checkpoint(args.model, args.device)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = Progress()
    start = time.perf_counter()
    result = run_matrix(
        model,
        card,
        load_nodules(),
        cells=cells,
        nodules=args.nodules,
        seed=args.seed,
        samples=args.bootstrap,
        chest_size=args.chest_size,
        device=args.device,
        progress=lambda label, done, total: shown.status(
            f"rendering {label}: {done}/{total}", done=done == total
        ),
    )
    seconds = time.perf_counter() - start
    result["model"] = {k: card.get(k) for k in ("name", "version", "weights_sha256")}
    result["seconds"] = round(seconds, 1)
    print(markdown(result))
    print(f"\n{len(cells)} cell(s) in {seconds:.0f} s")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result, indent=2, allow_nan=False) + "\n")
    if args.record:
        import datetime as dt

        from core.model.checkpoints import rewrite_card
        from core.training.robustness import card_record

        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        try:
            rewrite_card(args.model, {"robustness": card_record(result, date)})
        except (CheckpointError, OSError) as exc:
            print(
                f"error: {args.model}: cannot be rewritten ({exc}); the model is unchanged", file=sys.stderr
            )
            return 1
        print(f"kept the matrix in {args.model}'s card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
