"""Measured nodules in the report: segmented or taken from a fitting mask before writing, their numbers
in the JSON (round trip), the CSV columns and the PDF page, Lung-RADS from them; a nodule that cannot
be measured, or a segmenter that fails, never stops the export."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

import core.measure.markers
from core.measure.mask import NoduleMask
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.report.content import build_report, with_measurements
from core.report.export import write_report
from core.report.tables import CSV_COLUMNS, report_csv_rows, report_from_json, report_json
from core.volume import CTVolume
from tests.core.report.test_tables import CARD, NOW, make_volume, nodule_attributes
from tests.measurement_factory import measurement

# make_volume's grid: 0.7 x 0.7 mm pixels, 2.5 mm slices, origin (-10, -12, 0) mm
NODULE = (1.2, -0.8, 20.0)  # voxel (x 16, y 16, slice 8)
AIR = (-6.5, -8.5, 5.0)


def chest_with_a_nodule() -> CTVolume:
    plain = make_volume()
    z, y, x = np.indices(plain.shape)
    hu = plain.array.copy()
    hu[((x - 16) * 0.7) ** 2 + ((y - 16) * 0.7) ** 2 + ((z - 8) * 2.5) ** 2 <= 25] = 40  # 10 mm, solid
    return CTVolume(hu, plain.affine, plain.metadata)


def report_of(volume, **kwargs):
    markers = [NoduleMarker("n", "N1", NODULE, 7.5), NoduleMarker("a", "N2", AIR, 5.0)]
    results = {
        m.id: NoduleResult(m.id, 0.5 - 0.1 * i, 0.1, nodule_attributes(0), i + 1)
        for i, m in enumerate(markers)
    }
    return build_report(volume, markers, results, {}, CARD, now=NOW, **kwargs)


def test_unmeasured_nodules_are_segmented_measured_and_recategorised():
    volume = chest_with_a_nodule()
    before = report_of(volume)
    assert [n.lung_rads.category for n in before.nodules] == ["3", "2"]  # 7.5 and 5 mm markers, solid
    after = with_measurements(before, volume)
    nodule, air = after.nodules
    assert nodule.measurement.long_axis_mm == pytest.approx(10.0, abs=2.5)  # within a 2.5 mm slice
    assert nodule.mask is not None
    assert nodule.lung_rads.category == "4A" and nodule.lung_rads.inputs["size_basis"] == "measured"
    assert air.measurement is None and air.mask is None and air.measurement_error
    assert air.lung_rads.category == "2" and "estimated" in air.lung_rads.basis
    assert after.study_lung_rads.category == "4A"


def test_a_fitting_mask_is_measured_not_resegmented_and_a_measurement_kept():
    volume = chest_with_a_nodule()
    edited = NoduleMask((8, 16, 16), np.ones((1, 3, 3), bool), "edited", NODULE, 7.5, edited=True)
    kept = measurement(mean_diameter_mm=7.0, texture="solid", solid_diameter_mm=None)
    after = with_measurements(report_of(volume, masks={"n": edited}, measurements={"a": kept}), volume)
    nodule, air = after.nodules
    assert nodule.mask is edited and nodule.measurement.edited and nodule.measurement.volume_mm3 < 15
    assert air.measurement is kept and air.lung_rads.category == "3"  # measured 7.0 mm, solid


def test_json_and_csv_carry_the_measurement_and_json_round_trips():
    volume = chest_with_a_nodule()
    report = with_measurements(report_of(volume), volume)
    data = json.loads(json.dumps(report_json(report), allow_nan=False))
    first, second = data["nodules"]
    assert first["measurement"]["volume_mm3"] == report.nodules[0].measurement.volume_mm3
    assert first["measurement"]["touches_pleura"] is False and first["measurement_error"] is None
    assert (
        second["measurement"] is None and second["measurement_error"] == report.nodules[1].measurement_error
    )
    back = report_from_json(data)
    assert back == report and back.nodules[0].measurement == report.nodules[0].measurement
    old = json.loads(json.dumps(data))  # a file written before measuring existed reads as unmeasured
    for item in old["nodules"]:
        del item["measurement"], item["measurement_error"]
    assert all(n.measurement is None for n in report_from_json(old).nodules)

    rows = report_csv_rows(report)
    assert [list(r) for r in rows] == [list(CSV_COLUMNS)] * 2
    m = report.nodules[0].measurement
    assert rows[0]["volume_mm3"] == round(m.volume_mm3) and rows[0]["long_axis_mm"] == round(
        m.long_axis_mm, 1
    )
    assert rows[0]["mean_diameter_mm"] == m.mean_diameter_mm and rows[0]["solid_diameter_mm"] is None
    assert rows[0]["touches_pleura"] is False and rows[0]["mask_method"] == m.method
    assert rows[0]["mask_edited"] is False and rows[0]["lung_rads_basis"] == "measured"
    assert rows[1]["volume_mm3"] is None and rows[1]["lung_rads_basis"] == "estimated"
    assert rows[1]["measurement_error"] == report.nodules[1].measurement_error


def test_a_part_solid_measurement_fills_the_solid_column():
    report = report_of(make_volume(), measurements={"n": measurement()})
    row = next(r for r in report_csv_rows(report) if r["marker_id"] == "n")
    assert row["solid_diameter_mm"] == 6.5 and row["measured_texture"] == "part-solid"
    assert row["touches_pleura"] is True and row["volume_mm3"] == 512


def test_write_report_measures_before_writing(tmp_path):
    volume = chest_with_a_nodule()
    done = write_report(report_of(volume), tmp_path, ["csv", "json"], volume=volume, measure=True)
    assert len(done.written) == 2 and done.report.nodules[0].measurement is not None
    with (tmp_path / "ranking.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["volume_mm3"] and rows[0]["lung_rads"] == "4A" and rows[0]["lung_rads_basis"] == "measured"


def test_without_measure_only_a_given_mask_is_measured_nothing_segmented(tmp_path):
    volume = chest_with_a_nodule()
    edited = NoduleMask((8, 16, 16), np.ones((1, 3, 3), bool), "edited", NODULE, 7.5, edited=True)
    done = write_report(report_of(volume, masks={"n": edited}), tmp_path, ["json"], volume=volume)
    nodule, air = done.report.nodules
    assert nodule.measurement.edited and nodule.lung_rads.inputs["size_basis"] == "measured"
    assert air.measurement is None and not air.measurement_error  # not segmented, so no reason either


def test_a_failing_segmenter_never_stops_the_export(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("segmenter crashed")

    monkeypatch.setattr(core.measure.markers, "measure_markers", broken)
    volume = chest_with_a_nodule()
    done = write_report(report_of(volume), tmp_path, ["csv", "json"], volume=volume, measure=True)
    assert len(done.written) == 2
    nodules = json.loads((tmp_path / "report.json").read_text())["nodules"]
    assert all(
        "measurement failed (RuntimeError: segmenter crashed)" in n["measurement_error"] for n in nodules
    )
    assert [n["lung_rads"]["category"] for n in nodules] == ["3", "2"]  # the marker-based estimates


def test_the_pdf_page_shows_the_measurement_or_why_not(tmp_path):
    from core.report.pdf import write_pdf
    from tests.core.report.test_pdf import pages_text

    volume = chest_with_a_nodule()
    report = with_measurements(report_of(volume), volume)
    notes = "reader's note, long enough to need its own line below the measurement " * 2
    first = replace(report.nodules[0], marker=replace(report.nodules[0].marker, notes=notes))
    report = replace(report, nodules=(first, *report.nodules[1:]))
    texts = pages_text(write_pdf(report, volume, tmp_path / "r.pdf"))
    assert len(texts) == 3  # the summary and one page per nodule: the extra lines do not spill over
    m = report.nodules[0].measurement
    measured = next(t for t in texts[1:] if "Nodule N1" in t)
    assert (
        f"Measured: volume {m.volume_mm3:.0f} mm³" in measured
        and f"mean {m.mean_diameter_mm:.1f} mm" in measured
    )
    assert "Lung-RADS v2022 (measured sizes)" in measured and "size measured" in measured
    unmeasured = next(t for t in texts[1:] if "Nodule N2" in t)
    assert "Not measured: " in unmeasured and "Lung-RADS v2022 (estimate)" in unmeasured
