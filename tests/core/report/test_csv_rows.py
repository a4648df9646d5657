"""core.report.csv_rows: the cells the report's ranking.csv and ``main.py batch``'s ranking share."""

from __future__ import annotations

import csv
import io

from core.nodule.labels import NoduleLabel
from core.nodule.lungrads import nodule_category
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES
from core.report.batch_ranking import COLUMNS
from core.report.csv_rows import NODULE_COLUMNS, csv_text, model_cells, nodule_cells, rounded
from core.report.tables import CSV_COLUMNS

MARKER = NoduleMarker("id-1", "N1", (-5.123, -3.456, 10.789), 7.256)
RESULT = NoduleResult("id-1", 0.123456, 0.0456789, {name: 2.34567 for name in ATTRIBUTES}, 1)
LABEL = NoduleLabel(4.0, {"spiculation": 4.0}, "reader", "A. Reader", "2025-05-30T10:00:00+00:00")


def test_both_tables_hold_every_shared_column():
    assert set(NODULE_COLUMNS) <= set(CSV_COLUMNS) and set(NODULE_COLUMNS) <= set(COLUMNS)
    assert {"model_name", "model_version", "weights_sha256"} <= set(CSV_COLUMNS) & set(COLUMNS)


def test_an_analysed_nodule_is_rounded_the_same_way_everywhere():
    rads = nodule_category(MARKER.diameter_mm, RESULT.attributes, LABEL.attributes)
    cells = nodule_cells(MARKER, "right upper zone, slice 5", RESULT, rads, LABEL)
    assert tuple(cells) == NODULE_COLUMNS
    assert (cells["center_x_mm"], cells["center_y_mm"], cells["center_z_mm"]) == (-5.12, -3.46, 10.79)
    assert cells["diameter_mm"] == 7.26
    assert cells["malignancy_probability"] == 0.1235 and cells["uncertainty"] == 0.0457
    assert all(cells[name] == 2.346 for name in ATTRIBUTES)
    assert (cells["lung_rads"], cells["lung_rads_rule"]) == (rads.category, rads.rule)
    assert (cells["reader_malignancy"], cells["reader_label"], cells["label_source"]) == (
        4.0,
        LABEL.classification,
        "reader",
    )


def test_an_unanalysed_nodule_has_empty_scores_and_no_label():
    cells = nodule_cells(MARKER, "")
    assert cells["marker_id"] == "id-1" and cells["marker_name"] == "N1"
    empty = (
        "malignancy_probability",
        "uncertainty",
        *ATTRIBUTES,
        "lung_rads",
        "reader_label",
        "label_source",
    )
    assert all(cells[name] is None for name in empty)


def test_non_finite_scores_become_empty():
    assert rounded(float("nan"), 3) is None and rounded(float("inf"), 3) is None and rounded(None, 2) is None
    assert rounded(0.12345, 3) == 0.123


def test_model_cells_keep_12_hex_digits_of_the_hash():
    assert model_cells("MTMR-Net", "2.1", "ab" * 32) == {
        "model_name": "MTMR-Net",
        "model_version": "2.1",
        "weights_sha256": "ab" * 6,
    }


def test_csv_text_writes_the_columns_in_order_and_none_as_empty():
    text = csv_text(("b", "a"), [{"a": 1, "b": None}, {"a": "x,y", "b": 2.5, "extra": "ignored"}])
    assert text.splitlines()[0] == "b,a" and text.endswith("\n") and "\r" not in text
    assert list(csv.reader(io.StringIO(text))) == [["b", "a"], ["", "1"], ["2.5", "x,y"]]
