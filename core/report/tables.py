"""The report as data: a JSON document with everything, and a CSV of the ranked table.

``report_json(report)`` is the schema ``mtmr-reader/report/1`` documented in ``docs/report-json.md``;
``report_from_json`` reads it back into the same ``StudyReport``. ``report_csv_rows(report)`` gives one
row per nodule, most suspicious first (unanalysed nodules last, with empty scores), with the columns
of ``CSV_COLUMNS`` (the cells it shares with ``main.py batch``'s ranking are built by
``core.report.csv_rows``). Both files are written atomically (``core.util.atomic``): UTF-8, ``\\n`` line ends.

Neither holds more about the patient than the report does: an anonymised report gives anonymised
files. The CSV holds no patient data at all (studies are known by UID, as in ``main.py batch``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.nodule.meanings import TITLES, meaning
from core.nodule.ratings import ATTRIBUTES, RATING_MAX
from core.report.content import ModelIdentity, NoduleReport, StudyReport
from core.report.csv_rows import (
    LABEL_SOURCE_COLUMN,
    LUNG_RADS_COLUMNS,
    MARKER_COLUMNS,
    MEASURE_COLUMNS,
    MODEL_COLUMNS,
    POSITION_COLUMNS,
    PRIOR_COLUMNS,
    READER_COLUMNS,
    SCORE_COLUMNS,
    STUDY_COLUMNS,
    csv_text,
    measure_cells,
    model_cells,
    nodule_cells,
    prior_cells,
)
from core.util.json_safe import json_safe

SCHEMA = "mtmr-reader/report/1"
CSV_COLUMNS = (
    "rank",
    *MARKER_COLUMNS,
    "slice",
    *POSITION_COLUMNS,
    *SCORE_COLUMNS,
    *LUNG_RADS_COLUMNS,
    "lung_rads_follow_up",
    *MEASURE_COLUMNS,
    *PRIOR_COLUMNS,
    *READER_COLUMNS,
    *(f"reader_{name}" for name in ATTRIBUTES),
    LABEL_SOURCE_COLUMN,
    "tracking_uid",
    *STUDY_COLUMNS,
    *MODEL_COLUMNS,
    "warnings",
)


# -- JSON ------------------------------------------------------------------------------------------------
def report_json(report: StudyReport) -> dict:
    """Everything the report says, as JSON-ready data (non-finite numbers become ``null``)."""
    model = report.model
    return {
        "schema": SCHEMA,
        "created": report.created,
        "anonymised": report.anonymised,
        "disclaimer": report.disclaimer,
        "patient": {key: report.patient.get(key, "") for key in ("name", "id", "birth_date", "sex")},
        "study": {key: _finite(value) for key, value in report.study.items()},
        "warnings": list(report.warnings),
        "model": {
            "name": model.name,
            "version": model.version,
            "trained_on": model.trained_on,
            "intended_use": model.intended_use,
            "weights_sha256": model.weights_sha256,
            "description": model.text,
        },
        "reader": {"name": report.reader_name},
        "study_lung_rads": _lung_rads(report.study_lung_rads),
        "nodules": [_nodule(n) for n in report.nodules],
    }


def _nodule(nodule: NoduleReport) -> dict:
    marker, result, label = nodule.marker, nodule.result, nodule.reader
    return {
        "rank": nodule.rank,
        "tracking_uid": nodule.tracking_uid,
        "marker": {
            "id": marker.id,
            "name": marker.name,
            "center_mm": [float(v) for v in marker.centre_mm],
            "diameter_mm": float(marker.diameter_mm),
            "notes": marker.notes,
        },
        "location": nodule.location,
        "slice": nodule.slice_number,
        "analysed": result is not None,
        "malignancy_probability": _finite(result.malignancy) if result else None,
        "malignancy_interval": [_finite(v) for v in result.interval] if result and result.interval else None,
        "indeterminate": result.indeterminate if result else None,
        "ood_warnings": list(result.warnings) if result else [],
        "uncertainty": _finite(result.uncertainty) if result else None,
        "attributes": _scores(result.attributes) if result else {},
        "reader": None
        if label is None
        else {
            "malignancy": _finite(label.malignancy),
            "malignancy_meaning": _meaning("malignancy", label.malignancy),
            "classification": label.classification,
            "attributes": _scores(label.attributes),
            "source": label.source,
            "reader": label.reader,
            "confirmed_at": label.confirmed_at,
        },
        "lung_rads": _lung_rads(nodule.lung_rads),
        "measurement": json_safe(nodule.measurement.to_dict()) if nodule.measurement else None,
        "measurement_error": nodule.measurement_error or None,
        "follow_up_status": nodule.follow_up_status,
        # the pair's tracking UID is the nodule's (remapped with it when anonymised): not repeated
        "prior": None if nodule.prior is None else _prior(nodule.prior),
    }


def _prior(pair) -> dict:
    return {k: _finite(v) for k, v in pair.to_dict().items() if k != "tracking_uid"}


def _scores(attributes: Mapping[str, float]) -> dict:
    return {
        name: {
            "score": _finite(attributes[name]),
            "scale": [1, RATING_MAX[name]],
            "title": TITLES[name],
            "meaning": _meaning(name, attributes[name]),
        }
        for name in ATTRIBUTES
        if name in attributes
    }


def _meaning(name: str, value: float | None) -> str:
    return "" if value is None else meaning(name, float(value))


def _lung_rads(rads) -> dict | None:
    if rads is None:
        return None
    return {
        "category": rads.category,
        "rule": rads.rule,
        "follow_up": rads.follow_up,
        "texture": rads.texture,
        "basis": rads.basis,
        "inputs": {key: _finite(value) for key, value in rads.inputs.items()},
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_from_json(data: Mapping) -> StudyReport:
    """The ``StudyReport`` a ``report_json`` document describes; ValueError when it is not one."""
    from core.measure.measurement import NoduleMeasurement
    from core.nodule.labels import NoduleLabel
    from core.nodule.lungrads import LungRads
    from core.nodule.markers import NoduleMarker
    from core.nodule.prediction import NoduleResult

    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, Mapping) else None
        raise ValueError(f"not a report document (schema {schema!r}, expected {SCHEMA!r})")

    def rads(item):
        return None if item is None else LungRads(**item)

    try:
        nodules = []
        for item in data["nodules"]:
            m = item["marker"]
            marker = NoduleMarker(m["id"], m["name"], tuple(m["center_mm"]), m["diameter_mm"], m["notes"])
            scores = {name: entry["score"] for name, entry in item["attributes"].items()}
            result = None
            if item["analysed"]:
                interval = item.get("malignancy_interval")
                result = NoduleResult(
                    marker.id,
                    item["malignancy_probability"],
                    item["uncertainty"],
                    scores,
                    item["rank"],
                    interval=tuple(interval) if interval else None,
                    warnings=tuple(item.get("ood_warnings", ())),
                )
            measured = item.get("measurement")
            label = None
            if item["reader"] is not None:
                r = item["reader"]
                label = NoduleLabel(
                    r["malignancy"],
                    {name: entry["score"] for name, entry in r["attributes"].items()},
                    r["source"],
                    r["reader"],
                    r["confirmed_at"],
                )
            nodules.append(
                NoduleReport(
                    rank=item["rank"],
                    marker=marker,
                    slice_number=item["slice"],
                    location=item["location"],
                    result=result,
                    reader=label,
                    lung_rads=rads(item["lung_rads"]),
                    tracking_uid=item["tracking_uid"],
                    # both absent in files written before nodules were measured
                    measurement=NoduleMeasurement.from_dict(measured) if measured else None,
                    measurement_error=item.get("measurement_error") or "",
                    prior=_read_prior(item.get("prior"), item["tracking_uid"]),  # absent before follow-ups
                    follow_up_status=str(item.get("follow_up_status", "")),
                )
            )
        model = {k: v for k, v in data["model"].items() if k != "description"}
        return StudyReport(
            patient=dict(data["patient"]),
            study=dict(data["study"]),
            model=ModelIdentity(**model),
            reader_name=data["reader"]["name"],
            nodules=tuple(nodules),
            study_lung_rads=rads(data["study_lung_rads"]),
            created=data["created"],
            anonymised=bool(data["anonymised"]),
            disclaimer=data["disclaimer"],
            warnings=tuple(str(w) for w in data.get("warnings", ())),  # absent in files written before
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a report document ({exc.__class__.__name__}: {exc})") from exc


def _read_prior(data, uid: str):
    from core.followup.compare import PairedNodule

    if data is None:
        return None
    try:
        return PairedNodule.from_dict({**data, "tracking_uid": uid})
    except ValueError as exc:
        raise ValueError(f"not a report document (a damaged prior: {exc})") from exc


def write_json(report: StudyReport, path: str | Path) -> None:
    """``report_json(report)`` as indented UTF-8 JSON, written atomically."""
    from core.util.atomic import atomic_write_text

    text = json.dumps(report_json(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(path, text)


# -- CSV -------------------------------------------------------------------------------------------------
def report_csv_rows(report: StudyReport) -> list[dict]:
    """One dict per nodule with the keys of ``CSV_COLUMNS``; ``None`` where there is no value."""
    model = report.model
    rows = []
    for nodule in report.nodules:
        result, label, rads = nodule.result, nodule.reader, nodule.lung_rads
        reader_attributes = dict(label.attributes) if label else {}
        cells = nodule_cells(nodule.marker, nodule.location, result, rads, label)
        cells |= measure_cells(nodule.measurement, rads, nodule.measurement_error) | {
            "rank": nodule.rank if result else None,
            "slice": nodule.slice_number,
            "lung_rads_follow_up": rads.follow_up if rads else None,
            **prior_cells(nodule.follow_up_status, nodule.prior),
            **{f"reader_{name}": reader_attributes.get(name) for name in ATTRIBUTES},
            "tracking_uid": nodule.tracking_uid,
            "study_uid": report.study.get("study_uid", ""),
            "series_uid": report.study.get("series_uid", ""),
            **model_cells(model.name, model.version, model.weights_sha256),
            "warnings": "; ".join(report.warnings) or None,
        }
        rows.append({key: cells[key] for key in CSV_COLUMNS})
    return rows


def report_csv_text(report: StudyReport) -> str:
    """The CSV file's text: a header row, then ``report_csv_rows`` (empty cells for ``None``)."""
    return csv_text(CSV_COLUMNS, report_csv_rows(report))


def write_csv(report: StudyReport, path: str | Path) -> None:
    """The ranked table as CSV, written atomically."""
    from core.util.atomic import atomic_write_text

    atomic_write_text(path, report_csv_text(report))
