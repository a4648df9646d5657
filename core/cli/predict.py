"""``python main.py predict STUDY --markers markers.json --out results.json``: rank marked nodules.

``markers.json`` is ``{"markers": [{"id": "...", "center_mm": [x, y, z], "diameter_mm": d}]}`` in
patient LPS mm, the file the app imports and exports and ``phantom`` writes (its full format:
``core.nodule.markers``, docs/markers.md); a phantom's ``ground_truth.json`` is read as one too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import add_device, add_model, add_series, model_path, output_problem
from core.cli.progress import Progress
from core.util.json_safe import json_safe


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="malignancy ranking and attributes of marked nodules")
    parser.add_argument("study", help="study folder, DICOM file(s) or NIfTI/MHD/NRRD")
    parser.add_argument("--markers", required=True, help="markers.json (patient LPS mm; docs/markers.md)")
    add_model(parser)
    add_series(parser)
    add_device(parser)
    parser.add_argument("--out", required=True, help="results JSON to write (its folder must exist)")
    parser.set_defaults(func=run)


def read_markers(path: Path):
    """The file's markers as the Predictor takes them; MarkerError (a ValueError) names file and reason."""
    from core.nodule.markers import read_markers as read

    return [marker.to_inference() for marker in read(path)]


def run(args: argparse.Namespace) -> int:
    from core.dicom.errors import StudyLoadError
    from core.imaging.open_study import open_study
    from core.model.checkpoints import CheckpointError
    from core.model.inference import Predictor
    from core.util.atomic import atomic_write_text

    out = Path(args.out)
    problem = output_problem(out)
    if problem:  # before any work, never after it
        print(f"error: {problem}", file=sys.stderr)
        return 2
    progress = Progress()
    try:
        markers = read_markers(Path(args.markers))
        if not markers:
            raise ValueError(f"{args.markers}: no markers: nothing to predict")
        progress.say(f"predict: loading {args.study} ...")
        volume, _ = open_study(args.study, args.series)
        predictor = Predictor(model_path(args), device=args.device)
        progress.say(f"predict: {len(markers)} marker(s); model {predictor.description}")
        results = predictor.predict(volume, markers)
    except (StudyLoadError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {
        "schema": "mtmr-reader/predictions/1",
        "model": predictor.description,
        "weights_sha256": predictor.card.get("weights_sha256"),
        "device": predictor.device,
        "notes": predictor.notes,
        "nodules": [r.to_dict() for r in sorted(results, key=lambda r: r.rank)],
    }
    text = json.dumps(json_safe(report), indent=2, allow_nan=False)
    code = 0
    try:
        atomic_write_text(out, text + "\n")
    except OSError as exc:  # the prediction is done: print it rather than lose it
        print(f"error: {out}: cannot be written ({exc.strerror or exc}); the results follow", file=sys.stderr)
        print(text)
        code = 1
    for r in sorted(results, key=lambda r: r.rank):
        print(f"{r.rank}. {r.id}: malignancy {r.malignancy:.2f} +/- {r.uncertainty:.2f}{r.flags_text}")
    print(f"model: {predictor.description}")
    return code
