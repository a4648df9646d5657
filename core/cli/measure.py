"""``python main.py measure STUDY --markers markers.json --out measures.json [--seg OUT.dcm]``: each
marked nodule measured from its 3D mask (volume, Lung-RADS long/short axis, mean diameter, solid part,
HU, pleura); with ``--seg`` the masks also as a DICOM SEG (``core.report.seg``: one segment per
measured marker, labelled with its name, tracking UID as the report's SR gives it).

The markers file is the one ``predict`` reads (``core.nodule.markers``). A marker's mask is the saved
session's while it still fits the marker (a reader-edited one always does), else a new segmentation
(``core.measure.segment``); the numbers are ``core.measure.axes.measure_nodule``'s, the same the viewer
and the report show. The output, written atomically::

    {"schema": "mtmr-reader/measurements/1",
     "measurements": [{"id": ..., "name": ..., "center_mm": [...], "marker_diameter_mm": ...,
                       "volume_mm3": ..., "long_axis_mm": ..., "short_axis_mm": ...,
                       "mean_diameter_mm": ..., "solid_diameter_mm": null, "touches_pleura": ...,
                       "method": ..., "warnings": [...], ...every NoduleMeasurement field},
                      {"id": ..., "error": "<why this marker has no measurement>"}]}

one entry per marker, in the file's order. A marker that cannot be measured (outside the volume, air,
nothing dense at its centre) gets its ``error`` and the others are still measured.

Exit codes: 0 at least one marker measured; 1 none could be (the file is still written with each
reason), or the file or the SEG could not be written (the results are printed instead); 2 nothing done
(arguments, output paths, study or markers file that cannot be used; ``--seg`` of a volume file, which
has no DICOM images for a SEG to reference).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import add_series, output_problem
from core.cli.progress import Progress
from core.util.json_safe import json_safe

SCHEMA = "mtmr-reader/measurements/1"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "measure", help="volume, Lung-RADS axes, solid part and pleural contact of marked nodules"
    )
    parser.add_argument("study", help="study folder, DICOM file(s) or NIfTI/MHD/NRRD")
    parser.add_argument("--markers", required=True, help="markers.json (patient LPS mm; docs/markers.md)")
    add_series(parser)
    parser.add_argument("--out", required=True, help="measurements JSON to write (its folder must exist)")
    parser.add_argument(
        "--seg", metavar="OUT.dcm", help="also write the masks as a DICOM SEG (DICOM studies only)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.cli.report import saved_session
    from core.dicom.errors import StudyLoadError
    from core.imaging.open_study import open_study
    from core.imaging.volume_files import is_volume_file
    from core.measure.markers import measure_markers
    from core.nodule.markers import read_markers

    err = sys.stderr
    out = Path(args.out)
    seg = Path(args.seg) if args.seg else None
    problem = output_problem(out, example="measures.json")
    if not problem and seg is not None:
        problem = output_problem(seg, example="measures-seg.dcm")
        if not problem and seg.resolve() == out.resolve():
            problem = f"{seg}: --seg and --out name the same file"
        if not problem and is_volume_file(args.study):
            problem = f"{args.study}: --seg needs a DICOM study (a volume file has no images to reference)"
    if problem:  # before any work, never after it
        print(f"error: {problem}", file=err)
        return 2
    progress = Progress(err)
    try:
        markers = read_markers(Path(args.markers))
        if not markers:
            raise ValueError(f"{args.markers}: no markers: nothing to measure")
        progress.say(f"measure: loading {args.study} ...")
        volume, found = open_study(args.study, args.series)
    except (StudyLoadError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    session = saved_session(volume, progress)
    masks = {k: v for k, v in session.masks.items()} if session is not None else {}
    if masks:
        progress.say(f"measure: {len(masks)} mask(s) in the saved session, used where they fit")
    progress.say(f"measure: {len(markers)} marker(s) ...")
    done = measure_markers(volume, markers, masks)

    entries = []
    for marker in markers:
        entry = {
            "id": marker.id,
            "name": marker.name,
            "center_mm": list(marker.centre_mm),
            "marker_diameter_mm": marker.diameter_mm,
        }
        if marker.id in done.measurements:
            entry |= done.measurements[marker.id].to_dict()
        else:
            entry["error"] = done.errors[marker.id]
        entries.append(entry)
    text = json.dumps(json_safe({"schema": SCHEMA, "measurements": entries}), indent=2, allow_nan=False)
    code = 0 if done.measurements else 1
    try:
        from core.util.atomic import atomic_write_text

        atomic_write_text(out, text + "\n")
    except OSError as exc:  # the measuring is done: print it rather than lose it
        print(f"error: {out}: cannot be written ({exc.strerror or exc}); the measurements follow", file=err)
        print(text)
        code = 1
    for marker in markers:
        label = marker.name or marker.id
        if marker.id in done.measurements:
            print(f"{label}: {summary(done.measurements[marker.id])}")
        else:
            print(f"{label}: not measured: {done.errors[marker.id]}", file=err)
    if not done.measurements:
        print(f"error: none of the {len(markers)} marker(s) could be measured", file=err)
    elif seg is not None and not _write_seg(done.masks, volume, found, args.series, markers, seg):
        code = 1
    return code


def _write_seg(masks, volume, found, series_uid, markers, path: Path) -> bool:
    """The masks as a DICOM SEG at ``path``; False (and the reason printed) when it cannot be."""
    from core.report.seg import write_seg

    names = {m.id: m.name or m.id for m in markers}
    try:
        files = found.find_series(series_uid).files
        write_seg(masks, volume, files, path, names=names)
    except Exception as exc:  # a SEG that cannot be made: the measurements are written all the same
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        print(f"error: {path}: the DICOM SEG was not written ({reason})", file=sys.stderr)
        return False
    print(f"wrote {path}: {len(masks)} segment(s)")
    return True


def summary(m) -> str:
    """One line for a reader: volume, axes and plane, mean diameter, texture, solid part, pleura."""
    solid = f", solid part {m.solid_diameter_mm:.1f} mm" if m.solid_diameter_mm is not None else ""
    pleura = ", touches the pleura" if m.touches_pleura else ""
    edited = " (reader-edited mask)" if m.edited else ""
    return (
        f"{m.volume_mm3:.0f} mm3, long {m.long_axis_mm:.1f} x short {m.short_axis_mm:.1f} mm "
        f"({m.plane} slice {m.slice_index + 1}), mean {m.mean_diameter_mm:.1f} mm, {m.texture}{solid}"
        f"{pleura}{edited}"
    )
