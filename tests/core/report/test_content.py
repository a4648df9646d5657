"""build_report: a nodule's measurement reaches its Lung-RADS (measured size and solid part)."""

from __future__ import annotations

from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.report.content import build_report
from tests.core.report.test_tables import CARD, NOW, make_volume, nodule_attributes
from tests.measurement_factory import measurement


def test_a_measured_nodule_is_categorised_by_its_measurement_the_others_by_their_marker():
    markers = [
        NoduleMarker("a", "A", (-5.0, -3.0, 10.0), 5.0),
        NoduleMarker("b", "B", (-4.0, -3.0, 20.0), 5.0),
    ]
    results = {m.id: NoduleResult(m.id, 0.5, 0.1, nodule_attributes(0), 1) for m in markers}
    measured = measurement(mean_diameter_mm=10.3, texture="part-solid", solid_diameter_mm=6.5)
    report = build_report(
        make_volume(), markers, results, {}, CARD, now=NOW, measurements={"a": measured}, masks={}
    )
    by_id = {n.marker.id: n for n in report.nodules}
    a, b = by_id["a"], by_id["b"]
    assert a.measurement is measured and b.measurement is None
    # the marker alone (5 mm, texture 4.6 -> solid) is category 2; measured: part-solid, solid part 6.5 mm
    assert b.lung_rads.category == "2" and "estimated" in b.lung_rads.basis
    assert a.lung_rads.category == "4A" and a.lung_rads.texture == "part-solid"
    assert a.lung_rads.inputs["solid_part_basis"] == "measured" and "measured" in a.lung_rads.basis
    assert report.study_lung_rads.category == "4A"
