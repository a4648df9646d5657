""" "Compare with prior" (P) in the window, on a small phantom follow-up pair: the prior found beside the
current study, compared in the background, shown beside it and linked through the registration; the
reading saved with the session and reused; a patient mismatch asked; a cancel changes nothing."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pydicom
import pytest
from PySide6.QtWidgets import QMessageBox

import app.compare_prior as compare_prior
from app.compare_columns import FOLLOW_UP_COLUMNS
from app.main_window import MainWindow
from app.nodule_table import FOLLOW_UP
from core.dicom import loader_process
from core.followup import compare as compare_module
from core.nodule.markers import read_markers
from tests.core.dicom.test_loader_process import _mapped


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    from core.phantom.followup import FollowUpOptions, write_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    out = tmp_path_factory.mktemp("window-compare") / "patient"
    return write_follow_up(out, SMALL, FollowUpOptions(interval_days=400), four_nodules())


def _open(qtbot, folder, markers=True) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(folder)
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=60_000)
    if markers and not window.markers.markers:
        window.markers.reset(read_markers(folder / "markers.json"))
        window.save_session()
    return window


def _press_compare(qtbot, window) -> None:
    window.actions_by_key["compare_prior"].trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=120_000)


def _follow_up_texts(window) -> dict[str, list[str]]:
    table = window.review.table
    return {
        table.marker_at(row): [table.item(row, FOLLOW_UP + k).text() for k in range(len(FOLLOW_UP_COLUMNS))]
        for row in range(table.rowCount())
    }


def test_p_finds_the_prior_shows_it_beside_the_current_pairs_the_nodules_and_links_the_views(
    qtbot, follow_up
):
    truth = json.loads((follow_up / "ground_truth.json").read_text())
    window = _open(qtbot, follow_up / "current")
    assert window.prior_view.isHidden() and window.review.table.isColumnHidden(FOLLOW_UP)
    _press_compare(qtbot, window)
    message = window.statusBar().currentMessage()
    assert "Compared with the prior of" in message, message
    assert not window.prior_view.isHidden()
    assert window.prior_view.volume.metadata.study_uid == truth["prior"]["study_uid"]
    if loader_process.available():  # loaded beside the current study, in the loader's own process
        assert _mapped(window.prior_view.volume.array)
    reading = compare_module.FollowUp.from_dict(window.follow_up)
    assert {(p.prior_id, p.current_id) for p in reading.pairs} == {
        (p["prior_id"], p["current_id"]) for p in truth["pairs"]
    }
    assert [n.current_id for n in reading.new] == truth["new"] and list(reading.resolved) == truth["resolved"]
    # the table's follow-up columns: each pair's trend, the new nodule as new
    texts = _follow_up_texts(window)
    assert not window.review.table.isColumnHidden(FOLLOW_UP)
    for pair in reading.pairs:
        assert texts[pair.current_id][3] == pair.growth.trend and texts[pair.current_id][0]
        assert texts[pair.current_id][4] == pair.lung_rads.category  # Lung-RADS with the prior
    assert texts[truth["new"][0]][3] == "new"
    assert texts[truth["new"][0]][4] == reading.new[0].lung_rads.category  # as a new nodule
    # the reading is saved with the current study's session
    assert window.sessions.load(*window.key).follow_up == window.follow_up
    # selecting a paired nodule centres both studies on it: the prior's crosshair on the prior nodule
    prior_markers = {m.id: m for m in read_markers(follow_up / "prior" / "markers.json")}
    for pair in reading.pairs:
        window.review.table.select("")
        row = next(
            r
            for r in range(window.review.table.rowCount())
            if window.review.table.marker_at(r) == pair.current_id
        )
        window.review.table.selectRow(row)
        current = window.markers.get(pair.current_id)
        qtbot.waitUntil(lambda c=current: np.linalg.norm(window.workspace.cursor_mm() - c.centre_mm) < 3.0)
        where = window.prior_view.centre_mm()
        assert np.linalg.norm(where - prior_markers[pair.prior_id].centre_mm) < 4.0
        # under the prior view: the pair's numbers and its volume at both time points (log axis)
        history = window.prior_view.history
        g = pair.growth
        assert history.points == [(0.0, g.prior_volume_mm3), (400.0, g.current_volume_mm3)]
        assert g.trend in history.text.text() and history.plot.getPlotItem().ctrl.logYCheck.isChecked()
    # scrolling the current study moves the prior with it, through the registration
    before = window.prior_view.view.index
    window.workspace.scroll(5, "axial")
    assert window.prior_view.view.index != before
    # zooming the current axial view zooms the prior's to the same mm per screen pixel
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    before = window.prior_view.view.box.viewPixelSize()
    window.workspace.views["axial"].box.scaleBy((0.5, 0.5))
    shown = window.prior_view.view.box.viewPixelSize()
    assert shown[0] == pytest.approx(before[0] / 2, rel=0.05)
    assert shown == pytest.approx(window.workspace.views["axial"].box.viewPixelSize(), rel=0.02)
    # the window/level is shared
    window.workspace.set_window(400.0, 40.0)
    assert tuple(window.prior_view.view.image.levels) == pytest.approx((-160.0, 240.0))


def test_the_saved_reading_is_shown_on_reopening_and_its_registration_reused(qtbot, follow_up, monkeypatch):
    window = _open(qtbot, follow_up / "current")
    _press_compare(qtbot, window)
    saved = window.follow_up
    assert saved
    window.close()
    again = _open(qtbot, follow_up / "current")
    assert again.follow_up == saved  # restored with the session, not computed again
    assert not again.review.table.isColumnHidden(FOLLOW_UP)
    assert any(texts[3] for texts in _follow_up_texts(again).values())
    again.markers.select(next(iter(again.markers.markers)).id)  # a later save keeps the reading
    again.save_session()
    assert again.sessions.load(*again.key).follow_up == saved

    def no_registering(*args, **kwargs):
        raise AssertionError("registered again")

    monkeypatch.setattr(compare_module, "register", no_registering)
    _press_compare(qtbot, again)
    assert "Compared with the prior of" in again.statusBar().currentMessage()
    assert again.follow_up["registration"] == saved["registration"]


def test_a_prior_of_another_patient_identity_is_compared_only_once_confirmed(
    qtbot, follow_up, tmp_path, monkeypatch
):
    patient = tmp_path / "patient"
    shutil.copytree(follow_up / "current", patient / "current")
    shutil.copytree(follow_up / "prior", patient / "prior")
    for path in (patient / "prior").rglob("*.dcm"):
        dataset = pydicom.dcmread(path)
        dataset.PatientBirthDate = "19000101"
        dataset.save_as(path)
    asked = []

    def answer(reply):
        def question(parent, title, text, *args):
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    window = _open(qtbot, patient / "current")
    _press_compare(qtbot, window)
    assert len(asked) == 1 and "birth date differs" in asked[0] and "19000101" not in asked[0]
    assert "not confirmed" in window.statusBar().currentMessage()
    assert window.follow_up == {} and window.prior_view.isHidden()
    assert not window.sessions.load(*window.key).follow_up
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    _press_compare(qtbot, window)
    assert len(asked) == 2 and window.follow_up and not window.prior_view.isHidden()


def test_cancelling_the_comparison_leaves_the_window_as_it_was(qtbot, follow_up, monkeypatch):
    window = _open(qtbot, follow_up / "current")
    markers = list(window.markers.markers)
    cancelled = threading.Event()
    real = compare_prior.compare

    def waits_for_the_cancel(*args, **kwargs):
        assert cancelled.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare_prior, "compare", waits_for_the_cancel)
    window.actions_by_key["compare_prior"].trigger()
    qtbot.waitUntil(lambda: "Comparing with the prior" in window.statusBar().currentMessage(), timeout=60_000)
    window.cancel_button.click()
    cancelled.set()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "Cancelled" in window.statusBar().currentMessage()
    assert window.follow_up == {} and window.prior_view.isHidden()
    assert window.review.table.isColumnHidden(FOLLOW_UP)
    assert list(window.markers.markers) == markers
    assert not window.sessions.load(*window.key).follow_up


def test_a_study_without_an_earlier_one_says_so(qtbot, follow_up):
    window = _open(qtbot, follow_up / "prior")
    _press_compare(qtbot, window)
    assert "No earlier study of this patient" in window.statusBar().currentMessage()
    assert window.follow_up == {} and window.prior_view.isHidden() and window.error_box is None


def test_a_folder_above_of_more_than_a_patients_studies_is_not_read_through(qtbot, follow_up, monkeypatch):
    monkeypatch.setattr(compare_prior, "PARENT_FILES", 3)  # the pair's folder holds more
    window = _open(qtbot, follow_up / "current")
    _press_compare(qtbot, window)
    assert "No earlier study of this patient" in window.statusBar().currentMessage()


def test_a_prior_that_cannot_be_used_is_one_line_naming_the_file_and_changes_nothing(
    qtbot, follow_up, tmp_path
):
    patient = tmp_path / "patient"
    shutil.copytree(follow_up / "current", patient / "current")
    shutil.copytree(follow_up / "prior", patient / "prior")
    (patient / "prior" / "markers.json").write_text("{not json")
    window = _open(qtbot, patient / "current")
    _press_compare(qtbot, window)
    text = window.error_box.text()
    assert "markers.json" in text and "\n" not in text and "Traceback" not in text
    assert "Not compared" in window.statusBar().currentMessage()
    assert window.follow_up == {} and window.prior_view.isHidden()
    assert not window.sessions.load(*window.key).follow_up
