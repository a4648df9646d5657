"""core.reading.batch_plan: which markers file serves a series (the whole plan is covered end to end
by tests/core/cli/test_batch.py)."""

from __future__ import annotations

from core.reading.batch_plan import MARKERS_NAME, TRUTH_NAME, nearest_markers


def test_the_nearest_markers_file_up_to_root_serves_a_series(tmp_path):
    root = tmp_path / "root"
    series = root / "patient" / "study" / "series"
    series.mkdir(parents=True)
    assert nearest_markers(series, root) is None
    (tmp_path / MARKERS_NAME).write_text("[]")  # above ROOT: never used
    assert nearest_markers(series, root) is None
    (root / MARKERS_NAME).write_text("[]")
    assert nearest_markers(series, root) == root / MARKERS_NAME
    (series.parent / TRUTH_NAME).write_text("{}")  # a phantom's ground truth nearer than markers.json
    assert nearest_markers(series, root) == series.parent / TRUTH_NAME
    (series.parent / MARKERS_NAME).write_text("[]")  # markers.json wins in the same folder
    assert nearest_markers(series, root) == series.parent / MARKERS_NAME


def test_a_folder_outside_root_has_no_markers(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere" / MARKERS_NAME).write_text("[]")
    assert nearest_markers(tmp_path / "elsewhere", tmp_path / "root") is None
