"""``main.py batch``'s ranking: every planned series analysed, its nodules ranked across studies.

``analyse`` loads one series (a ``core.reading.batch_plan.Job``), checks its markers lie inside it,
runs the model once and builds one row per nodule; ``rank`` orders all rows, most suspicious first;
``write_csv`` and ``write_json`` write them atomically (UTF-8).

CSV columns (one row per nodule, most suspicious first; the cells shared with the report's
``ranking.csv`` are built by ``core.report.csv_rows``)::

    rank                    1 = highest malignancy probability across all studies
    rank_in_study           1 = highest within its study (same StudyInstanceUID)
    study                   anonymous study number, 1.. in the order of the studies' folders
    study_uid               StudyInstanceUID
    series_uid              SeriesInstanceUID
    marker_source           "session", "markers.json" or "ground_truth.json" (a phantom's)
    marker_id, marker_name  the marker's id and short name (N1, ...)
    location                side, zone and slice, e.g. "right upper zone, slice 87" (core.imaging.location)
    center_x_mm, center_y_mm, center_z_mm   marker centre, patient LPS mm
    diameter_mm             marker diameter
    malignancy_probability  the model's probability (4 decimals), calibrated by the card's temperature
    malignancy_low, malignancy_high   its TTA interval (core.model.inference; not a coverage-
                            guaranteed confidence interval)
    indeterminate           the interval crosses an edge of the decision band, 10 % or 70 %
                            (core.nodule.prediction)
    ood_warnings            why the nodule is out of the model's distribution ("; "-separated),
                            empty when it is not: then the score is not to be trusted (core.model.ood)
    uncertainty             spread of the slice/mirror probabilities (core.model.inference)
    subtlety, internal_structure, calcification, sphericity, margin, lobulation, spiculation, texture
                            the model's attribute ratings on the original LIDC scales (3 decimals)
    lung_rads, lung_rads_rule   Lung-RADS v2022 baseline estimate and the rule that fired
                                (core.nodule.lungrads)
    reader_malignancy       the session label's malignancy (1-5), empty without one
    reader_label            benign / indeterminate / malignant from that label, empty without one
    label_source            who gave the label: reader, lidc or phantom; empty without one
    model_name, model_version   from the model card
    weights_sha256          first 12 hex digits of the weights hash in the model card

No patient name, patient ID, date or folder name is ever written: studies are known by number and UID.
The JSON holds the same rows (numbers as numbers) with the model's description and device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from core.report.csv_rows import (
    LABEL_SOURCE_COLUMN,
    LUNG_RADS_COLUMNS,
    MARKER_COLUMNS,
    MODEL_COLUMNS,
    POSITION_COLUMNS,
    READER_COLUMNS,
    SCORE_COLUMNS,
    STUDY_COLUMNS,
    csv_text,
    model_cells,
    nodule_cells,
)

SCHEMA = "mtmr-reader/batch-ranking/1"
COLUMNS = (
    "rank",
    "rank_in_study",
    "study",
    *STUDY_COLUMNS,
    "marker_source",
    *MARKER_COLUMNS,
    *POSITION_COLUMNS,
    *SCORE_COLUMNS,
    *LUNG_RADS_COLUMNS,
    *READER_COLUMNS,
    LABEL_SOURCE_COLUMN,
    *MODEL_COLUMNS,
)


def analyse(job, predictor, study_number: int) -> list[dict]:
    """Load the series of ``job`` (a ``core.reading.batch_plan.Job``), check its markers lie inside it,
    predict once with ``predictor`` (a ``core.model.inference.Predictor``), and build its rows: the
    keys of ``COLUMNS`` (ranks 0 until ``rank``) and the unrounded ``_malignancy`` to rank by."""
    from core.dicom.series import load_series
    from core.imaging.location import LungMap
    from core.nodule.lungrads import nodule_category
    from core.nodule.markers import check_inside

    volume = load_series(job.series.files)
    for marker in job.markers:
        try:
            check_inside(volume, marker.centre_mm)
        except ValueError as exc:
            raise ValueError(f"{marker.name or marker.id}: {exc}") from exc
    results = predictor.predict(volume, [m.to_inference() for m in job.markers])
    lungs = LungMap(volume)
    card = predictor.card
    model = model_cells(card.get("name", ""), card.get("version", ""), card.get("weights_sha256", ""))
    rows = []
    for marker, result in zip(job.markers, results, strict=True):
        label = job.labels.get(marker.id)
        category = nodule_category(marker.diameter_mm, result.attributes, label.attributes if label else None)
        location = lungs.describe(marker.centre_mm).text
        cells = nodule_cells(marker, location, result, category, label) | model
        if category is None:
            cells |= {"lung_rads": "", "lung_rads_rule": "not assessed"}
        cells |= {
            "rank": 0,
            "rank_in_study": 0,
            "study": study_number,
            "study_uid": job.study_uid,
            "series_uid": job.series.series_uid,
            "marker_source": job.source,
        }
        rows.append({key: cells[key] for key in COLUMNS} | {"_malignancy": result.malignancy})  # unrounded
    return rows


def rank(rows: Sequence[dict]) -> list[dict]:
    """Rows most suspicious first, with ``rank`` (all studies) and ``rank_in_study`` filled in."""
    ordered = sorted(rows, key=lambda r: (-r["_malignancy"], r["study"]))
    per_study: dict[int, int] = {}
    ranked = []
    for position, row in enumerate(ordered, start=1):
        per_study[row["study"]] = per_study.get(row["study"], 0) + 1
        row = {k: v for k, v in row.items() if not k.startswith("_")}
        row["rank"], row["rank_in_study"] = position, per_study[row["study"]]
        ranked.append(row)
    return ranked


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """The ranked rows as CSV (``COLUMNS``), written atomically."""
    from core.util.atomic import atomic_write_text

    atomic_write_text(path, csv_text(COLUMNS, rows))


def write_json(path: Path, rows: Sequence[dict], predictor, studies_analysed: int) -> None:
    """The ranked rows as JSON (schema ``SCHEMA``) with the model's description, device and notes,
    written atomically."""
    from core.util.atomic import atomic_write_text

    document = {
        "schema": SCHEMA,
        "model": predictor.description,
        "weights_sha256": predictor.card.get("weights_sha256"),
        "device": predictor.device,
        "notes": list(predictor.notes),
        "studies_analysed": studies_analysed,
        "columns": list(COLUMNS),
        "nodules": [{k: row[k] for k in COLUMNS} for row in rows],
    }
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
