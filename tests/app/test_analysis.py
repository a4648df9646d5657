"""Analysis in the window: the demo study analysed, ranked, explained, corrected and reopened."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from app.nodule_table import MALIGNANCY
from core.model.inference import Predictor
from core.model.store import default_model_path
from core.reading.session import SessionStore


def _demo(qtbot, analyse: bool = True) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.analyse_on_open = analyse
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=120_000)
    return window


def test_analyse_rank_select_correct_and_reopen(qtbot, demo_home):
    window = _demo(qtbot)
    review, table = window.review, window.review.table
    assert table.rowCount() == len(window.markers) == 6
    probabilities = [table.item(row, MALIGNANCY).data(Qt.ItemDataRole.UserRole + 1) for row in range(6)]
    assert probabilities == sorted(probabilities, reverse=True)  # most suspicious first
    assert [table.item(row, 0).text() for row in range(6)] == [str(r) for r in range(1, 7)]
    assert "research demo" in window.docks["Nodules ranked by malignancy"].windowTitle()
    assert "CPU" in window.model_label.text()
    # The top nodule is selected and every view is centred on it.
    top = window.markers.get(table.marker_at(0))
    assert window.markers.selected == top.id
    np.testing.assert_allclose(
        window.workspace.cursor_mm(), review.focus_mm(top), atol=1.0
    )  # calipers' slice
    # Lung-RADS and location are filled, with the rule in the tooltip.
    assert table.item(0, table.columnCount() - 1).text() in {"2", "3", "4A", "4B", "4X"}
    assert "mm" in table.item(0, table.columnCount() - 1).toolTip()
    assert any(word in table.item(0, 2).text() for word in ("upper", "middle", "lower"))

    # Selecting the second row centres the views on it (on the slice of its calipers, once measured:
    # within the nodule) and fills the detail panel.
    table.selectRow(1)
    second = window.markers.get(table.marker_at(1))
    np.testing.assert_allclose(window.workspace.cursor_mm(), review.focus_mm(second), atol=1.0)
    assert np.linalg.norm(np.subtract(review.focus_mm(second), second.centre_mm)) < second.diameter_mm / 2
    assert second.name in review.detail.title.text()
    assert "Malignancy probability" in review.detail.score.text()
    qtbot.waitUntil(lambda: review.detail.explanation is not None, timeout=30_000)
    assert review.detail.explanation.heatmap.shape == review.detail.explanation.patch.shape
    across = review.detail.explanation.side_mm  # the demo model's paper crops: 1.25x the marker
    assert across == pytest.approx(1.25 * max(second.diameter_mm, 3.0), rel=1e-3)
    assert f"{across:.1f} mm across" in review.detail.cam_note.text()

    # The reader corrects malignancy and spiculation: stored with the session, shown as the reader's.
    review.detail.inputs["malignancy"].setValue(5)
    review.detail.inputs["spiculation"].setValue(4)
    review.detail.confirm.click()
    label = SessionStore().load(*window.key).labels[second.id]
    assert label.malignancy == 5 and label.attributes["spiculation"] == 4 and label.source == "reader"
    row = next(r for r in range(6) if table.marker_at(r) == second.id)
    assert "reader 5" in table.item(row, MALIGNANCY).text()
    # ... and kept in the labelled library, by UIDs only, with its patches cut for the active model.
    from core.reading.library import Library

    [entry] = Library().entries()
    assert entry.nodule.series_uid == window.key[1] and entry.nodule.marker_id == second.id
    assert entry.label.malignancy == 5 and entry.slices > 0
    assert "PHANTOM" not in entry.path.read_bytes().decode("latin-1")
    window.close()

    again = _demo(qtbot, analyse=False)
    assert again.review.labels[second.id].malignancy == 5
    row = next(r for r in range(6) if again.review.table.marker_at(r) == second.id)
    assert "reader 5" in again.review.table.item(row, MALIGNANCY).text()
    assert again.review.table.item(0, 0).text() == "1"  # results came back with the session


def test_app_and_predictor_give_the_same_numbers(qtbot, demo_home):
    window = _demo(qtbot)
    markers = list(window.markers.markers)
    direct = Predictor(default_model_path(), device="cpu").predict(
        window.volume, [m.to_inference() for m in markers]
    )
    shown = window.review.analysis.current(markers)
    for result in direct:
        assert shown[result.id].malignancy == pytest.approx(result.malignancy, abs=1e-5)
        assert shown[result.id].rank == result.rank


def test_only_changed_markers_are_analysed_again(qtbot, demo_home):
    window = _demo(qtbot)
    analysis = window.review.analysis
    started = []
    analysis.started.connect(started.append)
    marker = window.markers.markers.markers[0]
    window.markers.edit(replace(marker, diameter_mm=marker.diameter_mm + 1.0), "resize")
    assert [m.id for m in analysis.stale(window.markers.markers)] == [marker.id]
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert started == [1]
    assert analysis.current(window.markers.markers)[marker.id].id == marker.id


def test_cancel_keeps_markers_and_earlier_results(qtbot, demo_home):
    window = _demo(qtbot, analyse=False)
    before = list(window.markers.markers)
    window.review.analyse()
    window.cancel()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert list(window.markers.markers) == before
    assert window.review.analysis.current(before) == {}
    assert "cancelled" in window.statusBar().currentMessage()


def test_a_model_that_fails_to_load_is_a_message(qtbot, demo_home, tmp_path):
    window = _demo(qtbot, analyse=False)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    window.review.analysis.set_model(bad)
    before = list(window.markers.markers)
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "could not be loaded" in window.statusBar().currentMessage()
    assert "broken.safetensors" in window.statusBar().currentMessage()
    assert list(window.markers.markers) == before


def test_a_marker_at_the_edge_of_the_volume(qtbot, demo_home):
    window = _demo(qtbot, analyse=False)
    volume = window.volume
    corner = volume.voxel_to_mm(np.array([0.0, 0.0, 0.0]))
    window.markers.new_marker(corner, 8.0)
    edge = window.markers.markers.markers[-1]
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    results = window.review.analysis.current(window.markers.markers)
    # The patch is padded with air beyond the edge: analysed like any other marker, no crash.
    assert len(results) == len(window.markers) == 7
    assert 0.0 <= results[edge.id].malignancy <= 1.0


def test_worklist_lists_studies_and_opens_one_at_its_top_nodule(qtbot, demo_home, tmp_path):
    from app.worklist import Worklist
    from tests.dicom_factory import write_series

    window = _demo(qtbot)
    top = window.review.table.marker_at(0)
    other = tmp_path / "other"
    write_series(other, 12)
    window.open_path(other)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy and window.volume.shape[0] == 12)
    window.workspace.views["axial"].clicked.emit(np.array([10.0, 10.0, 3.0]))  # navigate: no marker
    window.save_session()

    worklist = Worklist(window.sessions, window)
    qtbot.addWidget(worklist)
    assert worklist.table.rowCount() == 2
    first = [worklist.table.item(0, c).text() for c in range(6)]
    assert first[1] == "6" and float(first[2]) > 0.5 and first[3] in {"3", "4A", "4B", "4X"}
    assert worklist.table.item(1, 2).text() == ""  # never analysed
    worklist.open_requested.connect(window._open_from_worklist)
    worklist._open(worklist.table.item(0, 0))
    qtbot.waitUntil(lambda: not window.busy and window.volume.shape[0] > 12, timeout=60_000)
    assert window.markers.selected == top
    focus = window.review.focus_mm(window.markers.get(top))  # on its calipers' slice
    np.testing.assert_allclose(window.workspace.cursor_mm(), focus, atol=1.0)


def test_automatic_analysis_after_a_change(qtbot, demo_home):
    window = _demo(qtbot)
    window.auto_action.setChecked(True)
    marker = window.markers.markers.markers[0]
    window.markers.edit(replace(marker, diameter_mm=marker.diameter_mm + 2.0), "resize")
    assert window.review.analysis.running
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert marker.id in window.review.analysis.current(window.markers.markers)
    assert window.settings.value("analysis/auto", 0) == 1
    window.auto_action.setChecked(False)


def test_gpu_out_of_memory_is_a_message_not_a_crash(qtbot, demo_home, monkeypatch):
    import torch

    window = _demo(qtbot, analyse=False)
    before = list(window.markers.markers)

    def out_of_memory(self, volume, markers, progress=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Predictor, "predict", out_of_memory)
    window.review.analyse()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "out of memory" in window.statusBar().currentMessage()
    assert list(window.markers.markers) == before and window.review.analysis.current(before) == {}


def test_activating_another_model_reanalyses_with_it_and_new_windows_use_it(qtbot, demo_home):
    window = _demo(qtbot)
    version = window.registry.add(default_model_path())  # a copy of the demo weights, as a version
    window.registry.activate(version.id)
    window.use_model(version)
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert window.review.analysis.model_path == version.path
    assert len(window.review.analysis.current(window.markers.markers)) == 6
    window.close()
    again = _demo(qtbot, analyse=False)
    assert again.review.analysis.model_path == version.path


def test_export_the_analysed_demo_in_every_format(qtbot, demo_home, tmp_path):
    import json

    from app.export_dialog import ExportDialog

    window = _demo(qtbot)
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    done = dialog.export(tmp_path, ["sr", "pdf", "csv", "json"], anonymise=False)
    assert done is not None
    names = {p.name for p in tmp_path.iterdir()}
    assert {"report.dcm", "report.pdf", "ranking.csv", "report.json"} <= names
    report = json.loads((tmp_path / "report.json").read_text())
    table = window.review.table
    assert [n["marker"]["name"] for n in report["nodules"]] == [
        window.markers.get(table.marker_at(row)).name for row in range(table.rowCount())
    ]  # the report ranks as the table does
    assert report["model"]["name"] in window.model_label.text()


def test_model_menu_dialogs_open_on_the_window(qtbot, demo_home):
    window = _demo(qtbot, analyse=False)
    window.open_library()
    window.open_models()
    window.open_trainer()
    assert window.library_view.isVisible() and window.models_page.isVisible() and window.trainer.isVisible()
    assert window.models_page.table.rowCount() == 1  # the built-in demo, active
    assert window.library_view.table.rowCount() == 0
    trainer = window.trainer
    assert "0 from 0 studies" in trainer.use_library.text() and trainer.with_phantoms.isChecked()
    for dialog in (window.library_view, window.models_page, window.trainer):
        dialog.close()
