"""The malignancy as the reader sees it: ``p = 0.34 (0.22-0.47)`` in the detail panel, the ranked table
marking an interval that crosses the decision band, and a warning instead of a confident score for a
nodule out of the model's distribution."""

from __future__ import annotations

from app.detail_panel import DetailPanel
from app.nodule_table import MALIGNANCY, NoduleTable
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from tests.app.test_detail_panel import SCORES
from tests.core.model.test_patches import sphere_volume

MARKERS = [NoduleMarker(f"m{i}", f"N{i}", (0.0, 0.0, 0.0), 8.0) for i in range(3)]
RESULTS = {
    "m0": NoduleResult("m0", 0.34, 0.02, dict(SCORES), 1, interval=(0.22, 0.47)),
    "m1": NoduleResult("m1", 0.12, 0.02, dict(SCORES), 2, interval=(0.06, 0.19)),
    "m2": NoduleResult(
        "m2", 0.3, 0.02, dict(SCORES), 3, interval=(0.2, 0.4), warnings=("modality MR, not CT",)
    ),
}


def test_detail_panel_shows_the_interval_or_the_warning(qtbot):
    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show_nodule(sphere_volume(6.0), MARKERS[0], RESULTS["m0"], None, "model")
    text = panel.score.text()
    assert (
        "p = 0.34 (0.22-0.47)" in text and "Indeterminate" not in text and "Out of distribution" not in text
    )
    panel.show_nodule(sphere_volume(6.0), MARKERS[1], RESULTS["m1"], None, "model")
    assert "p = 0.12 (0.06-0.19)" in panel.score.text() and "Indeterminate" in panel.score.text()
    panel.show_nodule(sphere_volume(6.0), MARKERS[2], RESULTS["m2"], None, "model")
    text = panel.score.text()
    assert "Out of distribution" in text and "modality MR, not CT" in text and "not reliable" in text
    assert "<b>Malignancy" not in text  # no confident score


def test_detail_panel_shows_one_uncertainty_the_interval_else_the_spread(qtbot):
    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show_nodule(sphere_volume(6.0), MARKERS[0], RESULTS["m0"], None, "model")
    text = panel.score.text()
    assert "(0.22-0.47)" in text and "±" not in text and "(model; rank 1)" in text
    saved = NoduleResult("m0", 0.34, 0.05, dict(SCORES), 1)  # a result saved before intervals existed
    panel.show_nodule(sphere_volume(6.0), MARKERS[0], saved, None, "model")
    text = panel.score.text()
    assert "p = 0.34</b></span> ± 0.05 (model; rank 1)" in text and "(0." not in text


def test_ranked_table_marks_indeterminate_and_out_of_distribution(qtbot):
    table = NoduleTable()
    qtbot.addWidget(table)
    table.fill(MARKERS, RESULTS, {}, {}, {})
    cells = {table.item(r, 1).data(0x0100): table.item(r, MALIGNANCY) for r in range(3)}  # UserRole: id
    assert cells["m0"].text() == "0.34 (0.22-0.47)"  # within one band: no mark
    assert cells["m1"].text() == "0.12 (0.06-0.19)  ?" and "indeterminate" in cells["m1"].toolTip()
    assert cells["m2"].text() == "⚠ out of distribution" and "modality MR, not CT" in cells["m2"].toolTip()


def test_every_cell_with_a_bar_is_painted_by_the_bar_delegate_and_only_those(qtbot):
    from app.nodule_table import BAR, _BarDelegate

    table = NoduleTable()
    qtbot.addWidget(table)
    table.fill(MARKERS, RESULTS, {}, {}, {})
    barred = {
        c
        for r in range(table.rowCount())
        for c in range(table.columnCount())
        if table.item(r, c) is not None and table.item(r, c).data(BAR) is not None
    }
    assert MALIGNANCY in barred and len(barred) >= 10  # diameter, malignancy, eight attributes
    delegated = {
        c for c in range(table.columnCount()) if isinstance(table.itemDelegateForColumn(c), _BarDelegate)
    }
    # a column painted through Python costs ~40 us a cell: the table's repaint took ~4.5 ms as a study opened
    assert delegated == barred
