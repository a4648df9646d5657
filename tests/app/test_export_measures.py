"""The Export dialog measures every nodule for the report, like the ``report`` command: one never
analysed is segmented and measured; one that cannot be says why; the app's own masks are untouched."""

from __future__ import annotations

import json

from app.export_dialog import ExportDialog
from tests.app.test_nodule_masks import AIR, CENTRE, _mark, _open, series  # noqa: F401


def test_a_nodule_never_analysed_is_measured_for_the_exported_report(qtbot, series, tmp_path):  # noqa: F811
    window = _open(qtbot, series)
    nodule, air = _mark(window, CENTRE), _mark(window, AIR)  # never analysed, never segmented
    seg = window.review.segmentation
    assert seg.mask(nodule.id) is None and seg.measurement(nodule.id) is None
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    done = dialog.export(tmp_path / "out", ["json", "csv"], anonymise=False)
    assert done is not None and not done.failed
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    nodules = {n["marker"]["id"]: n for n in written["nodules"]}
    measured = nodules[nodule.id]["measurement"]
    assert measured is not None and measured["volume_mm3"] > 0 and measured["long_axis_mm"] > 0
    assert nodules[air.id]["measurement"] is None and nodules[air.id]["measurement_error"]
    assert seg.mask(nodule.id) is None  # the report's segmentation is the report's: the view is unchanged
