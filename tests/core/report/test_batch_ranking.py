"""core.report.batch_ranking: ranking rows across studies and writing them (the analysis itself is
covered end to end by tests/core/cli/test_batch.py)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

from core.report.batch_ranking import COLUMNS, SCHEMA, rank, write_csv, write_json


def row(study: int, malignancy: float, marker: str) -> dict:
    cells = dict.fromkeys(COLUMNS)
    cells |= {"study": study, "marker_id": marker, "malignancy_probability": round(malignancy, 4)}
    return cells | {"_malignancy": malignancy}


def test_rank_orders_across_and_within_studies_and_drops_private_keys():
    rows = [row(1, 0.2, "a"), row(2, 0.9, "b"), row(1, 0.5, "c"), row(2, 0.5, "d")]
    ranked = rank(rows)
    assert [(r["marker_id"], r["rank"], r["rank_in_study"]) for r in ranked] == [
        ("b", 1, 1),
        ("c", 2, 1),
        ("d", 3, 2),
        ("a", 4, 2),
    ]
    assert all(not key.startswith("_") for r in ranked for key in r)


def test_csv_and_json_hold_the_same_rows(tmp_path):
    ranked = rank([row(1, 0.25, "a"), row(1, 0.75, "b")])
    write_csv(tmp_path / "r.csv", ranked)
    with (tmp_path / "r.csv").open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == COLUMNS and [r["marker_id"] for r in read] == ["b", "a"]
    assert read[0]["reader_label"] == ""  # None is an empty cell
    predictor = SimpleNamespace(description="m 1", card={"weights_sha256": "ab" * 32}, device="cpu", notes=[])
    write_json(tmp_path / "r.json", ranked, predictor, 1)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == SCHEMA and data["studies_analysed"] == 1 and data["columns"] == list(COLUMNS)
    assert [n["malignancy_probability"] for n in data["nodules"]] == [0.75, 0.25]
    assert data["nodules"][0]["reader_label"] is None
