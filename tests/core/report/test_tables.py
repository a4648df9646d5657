"""The report as JSON and CSV: schema fields, meanings, reader values apart, round trips, 0 and 30 nodules."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES
from core.report.content import DISCLAIMER, build_report, tracking_uid
from core.report.tables import (
    CSV_COLUMNS,
    SCHEMA,
    report_csv_rows,
    report_csv_text,
    report_from_json,
    report_json,
    write_csv,
    write_json,
)
from core.volume import CTVolume, VolumeMetadata

CARD = {
    "name": "MTMR-Net",
    "version": "2.1",
    "trained_on": "LIDC-IDRI train split",
    "intended_use": "research demo",
    "weights_sha256": "ab" * 32,
}
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def make_volume(metadata: VolumeMetadata | None = None, shape=(20, 32, 32)) -> CTVolume:
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    affine[:3, 3] = (-10.0, -12.0, 0.0)
    array = np.full(shape, -800, np.int16)
    meta = metadata or VolumeMetadata(
        study_uid="1.2.3.4", series_uid="1.2.3.4.5", frame_of_reference_uid="1.2.3.4.6", modality="CT"
    )
    return CTVolume(array, affine, meta)


def nodule_attributes(k: int) -> dict[str, float]:
    return {
        "subtlety": 4.2,
        "internal_structure": 1.1,
        "calcification": 5.9,
        "sphericity": 3.7,
        "margin": 4.1,
        "lobulation": 1.8,
        "spiculation": 1.3 + 0.1 * (k % 3),
        "texture": 4.6,
    }


def make_report(
    volume: CTVolume | None = None, count: int = 3, analysed: int | None = None, reader_name="A. Reader"
):
    """A report of ``count`` markers, the first ``analysed`` (default all but one) with model results,
    the second with a reader label."""
    volume = volume or make_volume()
    analysed = count - 1 if analysed is None else analysed
    markers = [
        NoduleMarker(f"id-{k}", f"N{k + 1}", (-5.0 + k * 0.1, -3.0, 10.0 + k % 30), 5.0 + (k % 12))
        for k in range(count)
    ]
    probabilities = {m.id: 0.01 + 0.98 * ((k * 7) % 31) / 31 for k, m in enumerate(markers[:analysed])}
    order = sorted(probabilities, key=lambda i: -probabilities[i])  # distinct: ranks as the Predictor's
    results = {
        m.id: NoduleResult(
            m.id, probabilities[m.id], 0.05 + 0.01 * k, nodule_attributes(k), order.index(m.id) + 1
        )
        for k, m in enumerate(markers[:analysed])
    }
    labels = {}
    if count >= 2:
        labels[markers[1].id] = NoduleLabel(
            4.0, {"spiculation": 4.0, "texture": 5.0}, "reader", "A. Reader", "2025-05-30T10:00:00+00:00"
        )
    return build_report(
        volume,
        markers,
        results,
        labels,
        CARD,
        reader_name=reader_name,
        locations={m.id: f"right upper zone, slice {5 + k}" for k, m in enumerate(markers)},
        now=NOW,
    )


def test_json_has_every_field_of_the_schema():
    report = make_report()
    data = report_json(report)
    assert data["schema"] == SCHEMA == "mtmr-reader/report/1"
    assert data["disclaimer"] == DISCLAIMER and data["anonymised"] is False
    assert data["created"] == "2025-06-01T12:00:00+00:00"
    assert data["model"]["name"] == "MTMR-Net" and data["model"]["version"] == "2.1"
    assert data["model"]["trained_on"] == "LIDC-IDRI train split"
    assert data["model"]["weights_sha256"] == "ab" * 32 and "MTMR-Net 2.1" in data["model"]["description"]
    assert data["reader"] == {"name": "A. Reader"}
    assert data["study"]["series_uid"] == "1.2.3.4.5"
    assert data["study_lung_rads"]["category"] in {"2", "3", "4A", "4B", "4X"}

    nodules = data["nodules"]
    assert [n["rank"] for n in nodules] == [1, 2, 0]  # the unanalysed one last, rank 0
    probabilities = [n["malignancy_probability"] for n in nodules[:2]]
    assert probabilities == sorted(probabilities, reverse=True)
    first = nodules[0]
    assert set(first) >= {
        "rank", "tracking_uid", "marker", "location", "slice", "malignancy_probability", "uncertainty",
        "attributes", "reader", "lung_rads",
    }  # fmt: skip
    assert first["tracking_uid"] == tracking_uid("1.2.3.4.5", first["marker"]["id"])
    assert first["location"].startswith("right upper zone") and isinstance(first["slice"], int)
    assert len(first["marker"]["center_mm"]) == 3 and first["marker"]["diameter_mm"] > 0
    assert list(first["attributes"]) == list(ATTRIBUTES)
    spiculation = first["attributes"]["spiculation"]
    assert spiculation["scale"] == [1, 5] and spiculation["meaning"] == "no spiculation"
    assert first["attributes"]["calcification"]["meaning"] == "no calcification"
    rads = first["lung_rads"]
    assert set(rads) == {"category", "rule", "follow_up", "texture", "basis", "inputs"}
    assert "mm" in rads["rule"] and rads["follow_up"] and "texture" in rads["basis"]

    # The reader's values stand apart from the model's.
    confirmed = next(n for n in nodules if n["marker"]["id"] == "id-1")
    assert confirmed["reader"]["malignancy"] == 4.0
    assert confirmed["reader"]["malignancy_meaning"] == "moderately suspicious"
    assert confirmed["reader"]["classification"] == "malignant"
    assert confirmed["reader"]["attributes"]["spiculation"]["score"] == 4.0
    assert confirmed["attributes"]["spiculation"]["score"] != 4.0  # the model's own score
    assert nodules[-1]["analysed"] is False and nodules[-1]["attributes"] == {}
    assert nodules[-1]["malignancy_probability"] is None and nodules[-1]["lung_rads"] is None
    json.dumps(data, allow_nan=False)


def test_json_file_round_trips_to_the_same_report(tmp_path):
    report = make_report(count=4)
    path = tmp_path / "report.json"
    write_json(report, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == report_json(report)
    assert report_from_json(data) == report
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left
    with pytest.raises(ValueError, match="not a report document"):
        report_from_json({"schema": "mtmr-reader/predictions/1"})
    with pytest.raises(ValueError, match="not a report document"):
        report_from_json({"schema": SCHEMA, "nodules": [{}]})


def test_csv_rows_and_file_agree(tmp_path):
    report = make_report(count=3)
    rows = report_csv_rows(report)
    assert [list(row) for row in rows] == [list(CSV_COLUMNS)] * 3
    path = tmp_path / "ranking.csv"
    path.write_text("old")
    write_csv(report, path)
    with path.open(encoding="utf-8", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == CSV_COLUMNS
    assert read == [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    assert [r["rank"] for r in read] == ["1", "2", ""]
    top = read[0]
    assert float(top["malignancy_probability"]) >= float(read[1]["malignancy_probability"])
    assert top["lung_rads"] and top["lung_rads_follow_up"] and top["model_version"] == "2.1"
    assert top["tracking_uid"].startswith("2.25.") and top["series_uid"] == "1.2.3.4.5"
    confirmed = next(r for r in read if r["marker_id"] == "id-1")
    assert confirmed["reader_malignancy"] == "4.0" and confirmed["reader_spiculation"] == "4.0"
    assert confirmed["reader_label"] == "malignant" and confirmed["label_source"] == "reader"
    assert read[2]["malignancy_probability"] == "" and read[2]["lung_rads"] == ""


def test_no_nodules_and_thirty_nodules(tmp_path):
    empty = make_report(count=0)
    write_csv(empty, tmp_path / "empty.csv")
    assert (tmp_path / "empty.csv").read_text().splitlines() == [",".join(CSV_COLUMNS)]
    write_json(empty, tmp_path / "empty.json")
    data = json.loads((tmp_path / "empty.json").read_text())
    assert data["nodules"] == [] and data["study_lung_rads"] is None
    assert report_from_json(data) == empty

    many = make_report(count=30, analysed=30)
    rows = report_csv_rows(many)
    assert [r["rank"] for r in rows] == list(range(1, 31))
    write_json(many, tmp_path / "many.json")
    assert report_from_json(json.loads((tmp_path / "many.json").read_text())) == many
    assert len({r["tracking_uid"] for r in rows}) == 30


def test_non_finite_scores_become_null():
    report = make_report(count=1, analysed=1)
    nodule = report.nodules[0]
    from dataclasses import replace

    broken = replace(nodule.result, uncertainty=float("nan"))
    report = replace(report, nodules=(replace(nodule, result=broken),))
    data = report_json(report)
    assert data["nodules"][0]["uncertainty"] is None
    json.dumps(data, allow_nan=False)
    assert report_csv_rows(report)[0]["uncertainty"] is None


def test_interval_and_warnings_in_json_and_csv(tmp_path):
    report = make_report(count=3)
    first, second = (n for n in report.nodules if n.result is not None)
    results = {
        first.marker.id: replace(first.result, interval=(0.05, 0.2)),
        second.marker.id: replace(second.result, interval=(0.3, 0.5), warnings=("a", "b")),
    }
    markers = [n.marker for n in report.nodules]
    report = build_report(make_volume(), markers, results, {}, CARD)
    data = report_json(report)
    items = {item["marker"]["id"]: item for item in data["nodules"]}
    assert items[first.marker.id]["malignancy_interval"] == [0.05, 0.2]
    assert items[first.marker.id]["indeterminate"] is True and items[first.marker.id]["ood_warnings"] == []
    assert items[second.marker.id]["indeterminate"] is False
    assert items[second.marker.id]["ood_warnings"] == ["a", "b"]
    assert report_from_json(json.loads(json.dumps(data))) == report  # read back with them
    rows = {row["marker_id"]: row for row in csv.DictReader(io.StringIO(report_csv_text(report)))}
    assert (rows[first.marker.id]["malignancy_low"], rows[first.marker.id]["malignancy_high"]) == (
        "0.05",
        "0.2",
    )
    assert rows[first.marker.id]["indeterminate"] == "True" and rows[first.marker.id]["ood_warnings"] == ""
    assert rows[second.marker.id]["ood_warnings"] == "a; b"
