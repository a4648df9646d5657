"""``python main.py info PATH [--json] [--load [--series UID]]``: what a study holds."""

from __future__ import annotations

import argparse
import json
import sys

from core.dicom.catalogue import SCHEMA, Catalogue, catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.series import load_series
from core.imaging.volume_files import is_volume_file, load_volume_file
from core.imaging.volume_summary import volume_summary
from core.report.anonymise import anonymised_info, new_salt


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="catalogue a study (and optionally load a series)")
    parser.add_argument("path", nargs="+", help="folder, DICOM file(s), or a NIfTI/MHD/NRRD file")
    parser.add_argument("--json", action="store_true", help="machine-readable output (docs/info-json.md)")
    parser.add_argument("--load", action="store_true", help="also load a CT series and describe it")
    parser.add_argument("--series", help="SeriesInstanceUID to load (default: the largest CT series)")
    parser.add_argument("--resample", action="store_true", help="regularise uneven slice spacing")
    parser.add_argument("--anonymise", action="store_true", help="leave out names, IDs and dates")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = args.path[0] if len(args.path) == 1 else args.path
    report: dict = {"schema": SCHEMA}
    try:
        found: Catalogue | None = None
        if isinstance(paths, str) and is_volume_file(paths):
            report |= {"root": paths, "patients": [], "skipped": []}
            volume = load_volume_file(paths)  # nothing to catalogue: describe the volume
        else:
            found = catalogue(paths)
            report |= found.to_dict()
            volume = None
            if args.load:
                volume = load_series(found.find_series(args.series).files, resample=args.resample)
        if volume is not None:
            report["volume"] = volume_summary(volume)
    except StudyLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.anonymise:
        names = [path.name for path in found.paths()] if found is not None else []
        report = anonymised_info(report, new_salt(), names)
    if args.json:
        json.dump(report, sys.stdout, indent=2, allow_nan=False)
        print()
    else:
        print_text(report)
    return 0


def print_text(report: dict) -> None:
    for patient in report["patients"]:
        print(f"Patient {patient['patient_id'] or '(no ID)'} {patient['name']}".rstrip())
        for study in patient["studies"]:
            print(f"  Study {study['study_uid']} {study['date']} {study['description']}".rstrip())
            for s in study["series"]:
                flag = "" if s["is_ct"] else "  [not CT]"
                spacing = s["pixel_spacing_mm"] or ["?", "?"]
                print(
                    f"    Series {s['number'] if s['number'] is not None else '-'} {s['modality'] or '?'} "
                    f"'{s['description']}': {s['n_images']} images {s['rows']}x{s['columns']}, "
                    f"pixel {spacing[0]} x {spacing[1]} mm, slices {s['slice_spacing_mm'] or '-'} mm"
                    f"{flag}\n      UID {s['series_uid']}"
                )
                for problem in s["problems"]:
                    print(f"      ! {problem}")
    if not report["patients"] and not report["skipped"] and not report.get("volume"):
        where = f" under {report['root']}" if report.get("root") else ""  # anonymised: no path
        print(f"No DICOM files found{where}")  # silence looked like a hang or a crash
    if report["skipped"]:
        print(f"Skipped {len(report['skipped'])} file(s):")
        for item in report["skipped"]:
            print(f"  {item['path']}: {item['reason']}")
    volume = report.get("volume")
    if volume:
        print("Loaded volume:")
        for key in ("shape_zyx", "spacing_xyz_mm", "origin_lps_mm", "direction"):
            print(f"  {key}: {volume[key]}")
        print(f"  HU min/max/mean: {volume['hu_min']} / {volume['hu_max']} / {volume['hu_mean']}")
        for warning in volume["warnings"]:
            print(f"  ! {warning}")
